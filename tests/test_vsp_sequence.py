"""Issue 19 item 10: an AAVSO comparison sequence saved from VSP (``[aavso.sequences]``).

A simulated night is run with a sequence written from the simulator's truth (true V and R
magnitudes of field stars, as VSP's API writes them); the target's AAVSO file must then carry
the chart id, the sequence's AUIDs as comparison and check star, and magnitudes that match
the truth within their errors.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from clinepipe.catalogs.vsp_sequence import load_sequence, sequence_band
from clinepipe.cli import main
from clinepipe.config import load_config
from clinepipe.errors import ConfigError, UsageError
from clinepipe.products.aavso_format import validate_file
from clinepipe.products.export import AAVSO_FIELDS
from clinepipe.run.pipeline import run_pipeline
from clinepipe.simulate.field import true_light_curve

CHART = "X12345ABC"
TARGET = "V0001 Sim"


def _cli(capsys, *args):
    """(exit code, stdout + stderr) of ``clinepipe ARGS``."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_.value.code or 0, out.out + out.err


def _sexagesimal(ra: float, dec: float) -> tuple[str, str]:
    h = ra / 15.0
    hh, mm = int(h), int((h - int(h)) * 60)
    ss = (h - hh - mm / 60.0) * 3600.0
    sign, d = ("-" if dec < 0 else "+"), abs(dec)
    dd, dm = int(d), int((d - int(d)) * 60)
    ds = (d - dd - dm / 60.0) * 3600.0
    return f"{hh:02d}:{mm:02d}:{ss:06.3f}", f"{sign}{dd:02d}:{dm:02d}:{ds:05.2f}"


def _sequence_stars(sim, n: int = 6):
    """The ``n`` brightest constant, unsaturated field stars near the target (truth rows)."""
    target = [v for v in sim.variables if v["name"] == TARGET][0]
    var_ids = {int(v["star_id"]) for v in sim.variables}
    rows = [r for r in sim.stars if int(r["id"]) not in var_ids and 11.0 < r["V"] < 16.0
            and 20 < r["x_nominal"] < sim.spec.width - 20
            and 20 < r["y_nominal"] < sim.spec.height - 20]
    rows.sort(key=lambda r: r["V"])
    assert len(rows) >= n, "the simulated field has too few sequence stars"
    return target, rows[:n]


def _vsp_json(rows, *, chart=CHART, bands=("V", "R"), shift_deg=0.0) -> dict:
    """What the VSP API returns (``format=json``) for these truth rows: R is VSP's ``Rc``."""
    phot = []
    for k, r in enumerate(rows):
        ra, dec = _sexagesimal(float(r["ra"]) + shift_deg, float(r["dec"]))
        phot.append({"auid": f"000-BCD-{100 + k:03d}", "ra": ra, "dec": dec,
                     "label": str(int(round(float(r["V"]) * 10))),
                     "bands": [{"band": "Rc" if b == "R" else b, "mag": round(float(r[b]), 3),
                                "error": 0.005} for b in bands],
                     "comments": None})
    return {"chartid": chart, "image_uri": f"https://app.aavso.org/vsp/chart/{chart}.png",
            "star": TARGET, "fov": 18.0, "maglimit": 16.0, "title": "", "comment": "",
            "resolution": 150, "dss": False, "special": None, "photometry": phot}


def _write_config(sim, sequence_file: str) -> Path:
    text = sim.config_path.read_text()
    text += f'\n[aavso.sequences]\n"{TARGET}" = "{sequence_file}"\n'
    sim.config_path.write_text(re.sub(r'(?m)^obscode = "[^"]*"', 'obscode = "TEST"', text))
    return sim.config_path


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("vsp")
    sim = simulate_night(out, seed=8, nights=1, n_stars=120, width=288, height=288,
                         lights_per_filter=10)
    target, rows = _sequence_stars(sim)
    (out / f"{CHART}.json").write_text(json.dumps(_vsp_json(rows), indent=1))
    cfg = load_config(_write_config(sim, f"{CHART}.json"))
    run_pipeline(cfg)
    return {"sim": sim, "cfg": cfg, "target": target, "rows": rows,
            "file": cfg.paths.archive / "aavso" / sim.nights[0] / "V0001_Sim.txt"}


def _records(path: Path) -> list[dict]:
    return [dict(zip(AAVSO_FIELDS, ln.split(","))) for ln in
            path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]


def _truth(night, rec) -> float:
    """The target's true magnitude in the record's band at its date."""
    target = night["target"]
    star = [r for r in night["sim"].stars if int(r["id"]) == int(target["star_id"])][0]
    return float(star[rec["FILTER"]]) + true_light_curve(target, float(rec["DATE"]))


def test_the_nightly_file_is_calibrated_on_the_sequence(night):
    rec = _records(night["file"])
    assert len(rec) >= 15 and {r["FILTER"] for r in rec} == {"V", "R"}
    assert validate_file(night["file"]) == []
    auids = {f"000-BCD-{100 + k:03d}": r for k, r in enumerate(night["rows"])}
    assert {r["CHART"] for r in rec} == {CHART}
    assert {(r["TRANS"], r["MTYPE"], r["CNAME"], r["CMAG"]) for r in rec} == {
        ("NO", "STD", "ENSEMBLE", "na")}
    for r in rec:
        assert r["KNAME"] in auids  # the check star is a sequence star, named by its AUID
        notes = dict(p.split("=") for p in r["NOTES"].split("|"))
        k = auids[r["KNAME"]]
        assert float(notes["KREFMAG"]) == pytest.approx(round(float(k[r["FILTER"]]), 3),
                                                        abs=5e-4)
        assert float(r["KMAG"]) == pytest.approx(float(notes["KREFMAG"]), abs=0.05)
        assert float(notes["VMAGINS"]) - float(notes["CMAGINS"]) + float(notes["CREFMAG"]) \
            == pytest.approx(float(r["MAGNITUDE"]), abs=0.0015)
    # the target's magnitudes are the truth within their errors
    z = np.array([(float(r["MAGNITUDE"]) - _truth(night, r)) / float(r["MAGERR"]) for r in rec])
    assert np.mean(np.abs(z) < 3) >= 0.9, z
    assert abs(np.mean(z)) < 3 / math.sqrt(len(z)) + 0.5, z.mean()


def test_a_csv_photometry_table_reads_as_the_json(night, tmp_path):
    data = _vsp_json(night["rows"])
    lines = ["AUID,RA,Dec,Label,V,V error,Rc,Rc error,Comments,Chart ID"]
    for s in data["photometry"]:
        b = {x["band"]: x for x in s["bands"]}
        lines.append(f'{s["auid"]},{s["ra"]},{s["dec"]},{s["label"]},{b["V"]["mag"]},'
                     f'{b["V"]["error"]},{b["Rc"]["mag"]} ({b["Rc"]["error"]}),,,{CHART}')
    (tmp_path / "seq.csv").write_text("\n".join(lines) + "\n")
    shutil.copy(night["file"].parent.parent.parent.parent / f"{CHART}.json", tmp_path)
    a, b = load_sequence(tmp_path / "seq.csv", TARGET), load_sequence(tmp_path / f"{CHART}.json")
    assert a.chart_id == b.chart_id == CHART
    assert [(s.auid, s.label, s.mags) for s in a.stars] == [(s.auid, s.label, s.mags)
                                                            for s in b.stars]
    assert np.allclose([(s.ra, s.dec) for s in a.stars], [(s.ra, s.dec) for s in b.stars])
    assert sequence_band(a, "R") == "Rc" and sequence_band(a, "V") == "V"
    # the VSD API's pipe-delimited form: no header row, U..SZ as magnitude|error|source
    vsd = []
    for s in data["photometry"]:
        mags = {x["band"]: x for x in s["bands"]}
        cells = [s["auid"], s["ra"], s["dec"], s["label"]] + ["", "", ""] * 2
        cells += [str(mags["V"]["mag"]), str(mags["V"]["error"]), "APASS"]
        cells += [str(mags["Rc"]["mag"]), str(mags["Rc"]["error"]), "APASS"] + ["", "", ""] * 9
        vsd.append("|".join(cells + ["", CHART]))
    (tmp_path / "vsd.txt").write_text("\n".join(vsd + [f"Count={len(vsd)}"]) + "\n")
    c = load_sequence(tmp_path / "vsd.txt", TARGET)
    assert c.chart_id == CHART and [(s.auid, s.mags) for s in c.stars] == [
        (s.auid, s.mags) for s in b.stars]


def test_one_comparison_star_is_named_with_its_instrumental_magnitude(night, tmp_path, capsys):
    """Two sequence stars: one comparison (CNAME its AUID, CMAG/KMAG instrumental, as AAVSO's
    format says), one check star."""
    seq = tmp_path / "two.json"
    seq.write_text(json.dumps(_vsp_json(night["rows"][:2], chart="X99999ZZ")))
    cfg = night["cfg"].source_file
    text = cfg.read_text().replace(f'"{CHART}.json"', f'"{seq}"')
    (tmp_path / "c.toml").write_text(text.replace('"archive"', f'"{night["cfg"].paths.archive}"')
                                     .replace('"incoming"', f'"{night["cfg"].paths.incoming}"')
                                     .replace("sqlite:///clinepipe.db",
                                              f"sqlite:///{cfg.parent / 'clinepipe.db'}"))
    out = tmp_path / "two.txt"
    code, output = _cli(capsys, "--config", tmp_path / "c.toml", "export", "--format",
                        "aavso", "--star", TARGET, "--output", out)
    assert code == 0, output
    rec = _records(out)
    assert validate_file(out) == []
    assert {r["CHART"] for r in rec} == {"X99999ZZ"}
    assert {r["CNAME"] for r in rec} | {r["KNAME"] for r in rec} == {"000-BCD-100",
                                                                      "000-BCD-101"}
    for r in rec:
        notes = dict(p.split("=") for p in r["NOTES"].split("|"))
        assert r["CNAME"] != r["KNAME"]
        assert float(r["CMAG"]) == pytest.approx(float(notes["CMAGINS"]), abs=1e-3)
        assert float(r["KMAG"]) == pytest.approx(float(notes["KMAGINS"]), abs=1e-3)


def _config_with(night, tmp_path, sequence_text: str | None, name="seq.json") -> Path:
    if sequence_text is not None:
        (tmp_path / name).write_text(sequence_text)
    src = night["cfg"].source_file
    text = (src.read_text().replace(f'"{CHART}.json"', f'"{tmp_path / name}"')
            .replace('"archive"', f'"{night["cfg"].paths.archive}"')
            .replace('"incoming"', f'"{night["cfg"].paths.incoming}"')
            .replace("sqlite:///clinepipe.db", f"sqlite:///{src.parent / 'clinepipe.db'}"))
    (tmp_path / "c.toml").write_text(text)
    return tmp_path / "c.toml"


def test_a_missing_sequence_file_names_the_file_and_the_key(night, tmp_path, capsys):
    cfg = _config_with(night, tmp_path, None, "gone.json")
    code, output = _cli(capsys, "--config", str(cfg), "aavso", "--night", night["sim"].nights[0])
    assert code == 2
    assert f"{tmp_path / 'gone.json'} ([aavso.sequences] \"{TARGET}\")" in output
    assert "does not exist" in output and "Traceback" not in output
    with pytest.raises(ConfigError, match="not a VSP photometry table"):
        (tmp_path / "bad.json").write_text('{"chartid": "X1", "photometry": 3}')
        load_sequence(tmp_path / "bad.json", TARGET)


def test_a_band_the_sequence_lacks_is_an_error(night, tmp_path, capsys):
    cfg = _config_with(night, tmp_path, json.dumps(_vsp_json(night["rows"], bands=("V",))))
    code, output = _cli(capsys, "--config", str(cfg), "export", "--format", "aavso", "--star",
                            TARGET, "--filter", "R", "--output", str(tmp_path / "r.txt"))
    assert code == 2, output
    assert "has no R magnitudes for filter 'R' (its bands: V)" in output
    assert not (tmp_path / "r.txt").exists()
    with pytest.raises(UsageError, match=r"\[aavso.sequences\] \"V0001 Sim\""):
        sequence_band(load_sequence(tmp_path / "seq.json", TARGET), "B")
    # without --filter: the R measurements are left out, and the export says why
    code, output = _cli(capsys, "--config", str(cfg), "export", "--format", "aavso", "--star",
                            TARGET, "--output", str(tmp_path / "v.txt"))
    assert code == 0, output
    assert {x["FILTER"] for x in _records(tmp_path / "v.txt")} == {"V"}
    assert "which the sequence of chart X12345ABC has no magnitudes for" in output


def test_no_sequence_star_measured_is_an_error(night, tmp_path, capsys):
    cfg = _config_with(night, tmp_path, json.dumps(_vsp_json(night["rows"], shift_deg=0.5)))
    code, output = _cli(capsys, "--config", str(cfg), "export", "--format", "aavso", "--star",
                            TARGET, "--output", str(tmp_path / "x.txt"))
    assert code == 1, output
    assert "no star of the sequence was measured" in output
    assert str(tmp_path / "seq.json") in output and "Traceback" not in output


def test_check_star_option_with_a_sequence_is_refused(night, tmp_path, capsys):
    cfg = _config_with(night, tmp_path, json.dumps(_vsp_json(night["rows"])))
    code, output = _cli(capsys, "--config", cfg, "export", "--format", "aavso", "--star",
                        TARGET, "--check-star", "none", "--output", tmp_path / "k.txt")
    assert code == 2 and "comes from its comparison sequence" in output
    assert not (tmp_path / "k.txt").exists()


def test_the_run_logs_a_missing_sequence_and_writes_no_file_for_it(night, tmp_path, caplog):
    import dataclasses
    import logging

    from clinepipe.products.aavso import write_night_aavso
    from clinepipe.store.db import open_database

    cfg = night["cfg"]
    gone = dataclasses.replace(cfg, aavso=dataclasses.replace(
        cfg.aavso, sequences={TARGET: tmp_path / "gone.json"}))
    before = night["file"].read_bytes()
    engine = open_database(cfg.database.url)
    with caplog.at_level(logging.WARNING, logger="clinepipe"):
        assert write_night_aavso(gone, engine, night["sim"].nights[0]) == []
    engine.dispose()
    assert night["file"].read_bytes() == before  # not rewritten without its comparisons
    assert any(f"{tmp_path / 'gone.json'} ([aavso.sequences] \"{TARGET}\"): the comparison "
               "sequence file does not exist" in r.getMessage() for r in caplog.records)
