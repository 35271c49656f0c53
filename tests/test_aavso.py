"""Known variables by name, suspected new variables, the check star and the nightly AAVSO files.

A small simulated observatory is run night by night (the second night's files arrive after the
first run), with ``[aavso] targets = ["V0001 Sim"]``: the eclipsing binary is in the local
known-variable list (``vsx.csv``), the pulsator is not and must be found in our own data.
A second, one-night run takes the known variables from a mocked VSX (Vizier) instead.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from astroquery.utils.commons import TableList
from astroquery.vizier import VizierClass
from sqlalchemy import select
from typer.testing import CliRunner

from clinepipe.config import DEFAULT_CONFIG, config_from_dict, load_config
from clinepipe.products.aavso import choose_check_star, sanitise_name
from clinepipe.products.aavso_format import validate_file
from clinepipe.products.export import AAVSO_FIELDS
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Measurement, Star, ZeroPoint
from clinepipe.variability.suspects import SUSPECTED, recalibrate_frames

NIGHTS = ("20260314", "20260315")
AAVSO_TOML = '\n[aavso]\nobscode = "TEST"\ntargets = ["V0001 Sim", "No Such Star"]\n'


def _with_aavso(text: str) -> str:
    """The simulated config with its ``[aavso]`` section (no obscode) replaced by AAVSO_TOML."""
    start = text.index("\n[aavso]\n")
    end = text.find("\n[", start + 1)
    return text[:start] + (text[end:] if end >= 0 else "") + AAVSO_TOML


def _simulate(out: Path, nights: int, **kw):
    from clinepipe.simulate import simulate_night

    return simulate_night(out, seed=8, nights=nights, n_stars=120, **kw)


@pytest.fixture(scope="module")
def obs(tmp_path_factory):
    """Two nights, processed by two runs (as the observatory would: one each morning)."""
    out = tmp_path_factory.mktemp("aavso")
    sim = _simulate(out, 2, width=288, height=288, lights_per_filter=14)
    sim.config_path.write_text(_with_aavso(sim.config_path.read_text()), encoding="utf-8")
    cfg = load_config(sim.config_path)
    held = out / "held"
    shutil.move(str(sim.incoming / NIGHTS[1]), str(held))
    run_pipeline(cfg)
    first_night_file = (cfg.paths.archive / "aavso" / NIGHTS[0] / "V0001_Sim.txt").read_text()
    shutil.move(str(held), str(sim.incoming / NIGHTS[1]))
    run_pipeline(cfg)
    engine = open_database(cfg.database.url)
    return {"sim": sim, "cfg": cfg, "engine": engine, "night1_after_run1": first_night_file}


def _star_of(engine, catalog_id):
    with session_scope(engine) as s:
        star = s.scalars(select(Star).where(Star.catalog_id == catalog_id)).one()
        s.expunge(star)
    return star


def _ensemble_flags(engine, star_id):
    with session_scope(engine) as s:
        return s.execute(select(Frame.night, Measurement.in_ensemble)
                         .join(Frame, Frame.id == Measurement.frame_id)
                         .where(Measurement.star_id == star_id)).all()


def _variable(sim, vtype):
    return [v for v in sim.variables if v["type"] == vtype][0]


# ----------------------------------------------------------------------------- known variables

def test_known_variable_named_from_the_local_file_and_out_of_the_ensemble(obs):
    eb = _star_of(obs["engine"], _variable(obs["sim"], "EA")["catalog_id"])
    assert (eb.name, eb.var_type) == ("V0001 Sim", "EA")
    assert eb.var_period == pytest.approx(0.37)
    flags = _ensemble_flags(obs["engine"], eb.id)
    assert {n for n, _ in flags} == set(NIGHTS) and len(flags) >= 50
    assert not any(f for _, f in flags)


def test_known_variables_from_a_mocked_vsx(tmp_path, monkeypatch):
    sim = _simulate(tmp_path, 1, width=256, height=256, lights_per_filter=12)
    names = {"EA": "V0001 Sim", "DSCT": "V0002 Sim"}
    table = Table(rows=[(names[v["type"]], float(v["ra"]), float(v["dec"]), v["type"],
                         float(v["period_days"])) for v in sim.variables],
                  names=("Name", "RAJ2000", "DEJ2000", "Type", "Period"))
    table["RAJ2000"].unit = table["DEJ2000"].unit = "deg"
    table["Period"].unit = "d"
    calls = []

    def query_region(self, coordinates, radius=None, catalog=None, **kwargs):
        calls.append(catalog)
        return TableList({catalog: table})

    monkeypatch.setattr(VizierClass, "query_region", query_region)
    text = sim.config_path.read_text().replace('source = "file"\npath = "vsx.csv"',
                                               'source = "vsx"')
    assert 'source = "vsx"' in text
    sim.config_path.write_text(_with_aavso(text))
    cfg = load_config(sim.config_path)
    assert cfg.known_variables.source == "vsx"
    run_pipeline(cfg)
    assert calls and set(calls) == {"B/vsx/vsx"}
    engine = open_database(cfg.database.url)
    for vtype, name in names.items():
        star = _star_of(engine, _variable(sim, vtype)["catalog_id"])
        assert (star.name, star.var_type) == (name, vtype)
        assert not any(f for _, f in _ensemble_flags(engine, star.id))
    with session_scope(engine) as s:  # a known variable is never "suspected"
        assert not s.scalars(select(Star.id).where(Star.var_type == SUSPECTED)).all()
    assert (cfg.paths.archive / "aavso" / NIGHTS[0] / "V0001_Sim.txt").is_file()


# ----------------------------------------------------------------------------- suspects

def test_the_pulsator_is_a_suspected_new_variable_and_leaves_the_ensemble(obs):
    engine, cfg = obs["engine"], obs["cfg"]
    pulsator = _star_of(engine, _variable(obs["sim"], "DSCT")["catalog_id"])
    assert pulsator.var_type == SUSPECTED and pulsator.name is None
    flags = _ensemble_flags(engine, pulsator.id)
    assert {n for n, _ in flags} == set(NIGHTS) and len(flags) >= 50
    assert not any(f for _, f in flags)  # night 1 re-calibrated, night 2 excluded from the start
    with session_scope(engine) as s:  # nothing else: the constant stars stay in the ensemble
        suspects = s.scalars(select(Star.id).where(Star.var_type == SUSPECTED)).all()
    assert suspects == [pulsator.id]
    log = (cfg.paths.archive / "logs" / "clinepipe.log").read_text()
    assert re.search(rf"star {pulsator.id} \([^)]*\) is a suspected new variable", log)
    for night in NIGHTS:
        report = (cfg.paths.archive / "reports" / night / "index.html").read_text()
        assert "Suspected new variables" in report
        assert _variable(obs["sim"], "DSCT")["catalog_id"] in report


def test_recalibrated_frames_are_consistent(obs):
    engine, cfg = obs["engine"], obs["cfg"]
    with session_scope(engine) as s:
        rows = s.execute(select(Frame.night, Measurement.inst_mag, Measurement.mag,
                                ZeroPoint.value, Measurement.in_ensemble)
                         .join(Frame, Frame.id == Measurement.frame_id)
                         .join(ZeroPoint, ZeroPoint.frame_id == Frame.id)
                         .where(Measurement.mag.is_not(None))).all()
        n_used = s.execute(select(ZeroPoint.frame_id, ZeroPoint.n_used)).all()
        in_ens = s.scalars(select(Measurement.frame_id).where(
            Measurement.in_ensemble.is_(True))).all()
    assert {r[0] for r in rows} == set(NIGHTS)
    assert max(abs(r[2] - (r[1] + r[3])) for r in rows) < 1e-9  # mag = inst + zero point
    assert len(n_used) == 56  # every light calibrated, its ensemble as large as its row says
    assert all(n >= 10 and in_ens.count(fid) == n for fid, n in n_used)
    # doing it again changes nothing (the pipeline's own calibration gives the same answer)
    with session_scope(engine) as s:
        fid = s.scalars(select(Frame.id).where(Frame.night == NIGHTS[1], Frame.kind == "light")
                        .order_by(Frame.id)).first()
        before = s.execute(select(Measurement.id, Measurement.mag, Measurement.in_ensemble)
                           .where(Measurement.frame_id == fid).order_by(Measurement.id)).all()
    assert recalibrate_frames(cfg, engine, [fid]) == 1
    with session_scope(engine) as s:
        after = s.execute(select(Measurement.id, Measurement.mag, Measurement.in_ensemble)
                          .where(Measurement.frame_id == fid).order_by(Measurement.id)).all()
    assert [(a, b) for a, _, b in after] == [(a, b) for a, _, b in before]
    assert np.allclose([m for _, m, _ in after if m is not None],
                       [m for _, m, _ in before if m is not None], rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- AAVSO files

def _read_aavso(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln for ln in lines if ln.startswith("#")], [ln.split(",") for ln in lines
                                                       if not ln.startswith("#")]


def test_nightly_aavso_files(obs):
    engine, cfg = obs["engine"], obs["cfg"]
    knames = set()
    for night in NIGHTS:
        path = cfg.paths.archive / "aavso" / night / "V0001_Sim.txt"
        header, data = _read_aavso(path)
        assert header[0] == "#TYPE=EXTENDED" and "#OBSCODE=TEST" in header
        assert any(h.startswith("#SOFTWARE=clinepipe") for h in header)
        assert {"#DELIM=,", "#DATE=JD", "#OBSTYPE=CCD"} <= set(header)
        assert len(data) >= 20 and all(len(row) == 15 for row in data)
        rec = [dict(zip(AAVSO_FIELDS, row)) for row in data]
        with session_scope(engine) as s:
            jds = s.scalars(select(Frame.jd_mid).where(Frame.night == night,
                                                       Frame.kind == "light")).all()
        dates = [float(r["DATE"]) for r in rec]
        assert min(jds) - 1e-5 <= min(dates) and max(dates) <= max(jds) + 1e-5
        assert dates == sorted(dates)
        assert {r["STARID"] for r in rec} == {"V0001 Sim"}
        assert {r["FILTER"] for r in rec} == {"V", "R"}
        assert {(r["TRANS"], r["MTYPE"], r["CNAME"], r["CMAG"]) for r in rec} == {
            ("NO", "STD", "ENSEMBLE", "na")}
        assert all(1.0 <= float(r["AMASS"]) < 4 for r in rec)
        assert all(0 < float(r["MAGERR"]) < 0.1 for r in rec)
        assert validate_file(path) == []  # issue 21: what AAVSO's upload tool accepts
        for r in rec:  # NOTES for the Transform Applier: MAG = VMAGINS - CMAGINS + CREFMAG
            notes = dict(part.split("=") for part in r["NOTES"].split("|"))
            assert {"VMAGINS", "CMAGINS", "CREFMAG", "ZPERR"} <= set(notes)
            assert float(notes["VMAGINS"]) - float(notes["CMAGINS"]) + float(notes["CREFMAG"]) \
                == pytest.approx(float(r["MAGNITUDE"]), abs=0.0015)
            assert ("KMAGINS" in notes) == (r["KMAG"] != "na")
        # alternating V, R frames: each group holds one V and one R
        groups = {}
        for r in rec:
            groups.setdefault(r["GROUP"], []).append(r["FILTER"])
        assert all(sorted(g) in (["R", "V"], ["V"], ["R"]) for g in groups.values())
        assert sum(len(g) == 2 for g in groups.values()) >= 10
        knames |= {r["KNAME"] for r in rec}
        kmags = [float(r["KMAG"]) for r in rec if r["KMAG"] != "na"]
        assert len(kmags) >= 0.8 * len(rec)
    # the same check star on both nights, written by two different runs
    assert len(knames) == 1 and knames != {"na"}
    assert _read_aavso_header_kname(obs["night1_after_run1"]) == knames
    # a constant catalog star near the target's brightness, neither known nor suspected
    (kname,) = knames
    check = _star_of(engine, kname)
    assert check.var_type is None and check.name is None
    stars = obs["sim"].stars
    truth = stars[stars["catalog_id"] == kname][0]
    assert not truth["var_type"]
    assert abs(float(truth["V"]) - float(_variable(obs["sim"], "EA")["V"])) < 1.0
    with session_scope(engine) as s:
        target = s.scalars(select(Star.id).where(Star.name == "V0001 Sim")).one()
    assert choose_check_star(engine, target) == check.id


def _read_aavso_header_kname(text: str) -> set:
    return {ln.split(",")[9] for ln in text.splitlines() if ln and not ln.startswith("#")}


def test_unmatched_target_is_logged_once_per_run_and_not_fatal(obs):
    log = (obs["cfg"].paths.archive / "logs" / "clinepipe.log").read_text()
    assert log.count("AAVSO target 'No Such Star' matches no star") == 2  # two runs
    assert not (obs["cfg"].paths.archive / "aavso" / NIGHTS[0] / "No_Such_Star.txt").exists()
    assert sanitise_name("V0001 Sim") == "V0001_Sim"
    assert sanitise_name("283.5 +36.2") == "283.5_+36.2"
    assert sanitise_name("../..") == "target"


def test_morning_report_has_the_target_light_curve(obs):
    report = (obs["cfg"].paths.archive / "reports" / NIGHTS[1] / "index.html").read_text()
    assert "<h2>Targets</h2>" in report
    assert re.search(r"V0001 Sim \(star \d+\): 28 point\(s\) tonight, 56 in 30 days", report)
    m = re.search(r"data-plot='target' src='data:image/png;base64,([A-Za-z0-9+/=]+)'", report)
    assert m and len(m.group(1)) > 10000
    assert "No Such Star: no star of the database matches it yet." in report


# ----------------------------------------------------------------------------- by name

def test_lc_export_and_web_accept_the_name(obs, tmp_path):
    from clinepipe.cli import app

    cfg_path = str(obs["sim"].config_path)
    runner = CliRunner()
    r = runner.invoke(app, ["--config", cfg_path, "lc", "v0001 SIM", "--csv",
                            str(tmp_path / "lc.csv")])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "lc.csv").read_text().splitlines()) >= 50
    nightly = _read_aavso(obs["cfg"].paths.archive / "aavso" / NIGHTS[0] / "V0001_Sim.txt")[1]
    r = runner.invoke(app, ["--config", cfg_path, "export", "--format", "aavso", "--star",
                            "V0001 Sim", "--output", str(tmp_path / "auto.txt")])
    assert r.exit_code == 0, r.output
    assert validate_file(tmp_path / "auto.txt") == []
    _, data = _read_aavso(tmp_path / "auto.txt")
    assert len(data) >= 50 and {row[0] for row in data} == {"V0001 Sim"}
    assert {row[9] for row in data} == {nightly[0][9]}  # the automatic check star
    r = runner.invoke(app, ["--config", cfg_path, "export", "--format", "aavso", "--star",
                            "V0001 Sim", "--check-star", "none", "--output",
                            str(tmp_path / "none.txt")])
    assert r.exit_code == 0, r.output
    assert {row[9] for row in _read_aavso(tmp_path / "none.txt")[1]} == {"na"}
    assert validate_file(tmp_path / "none.txt") == []

    from fastapi.testclient import TestClient

    from clinepipe.web.app import create_app

    with session_scope(obs["engine"]) as s:
        sid = s.scalars(select(Star.id).where(Star.name == "V0001 Sim")).one()
    client = TestClient(create_app(obs["cfg"]))
    r = client.get("/stars", params={"q": "V0001 Sim"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/stars/{sid}"


def test_default_config_documents_the_new_keys():
    import tomllib

    cfg = config_from_dict(tomllib.loads(DEFAULT_CONFIG))
    assert cfg.variables.suspect_chi2 == 10.0 and cfg.variables.suspect_min_points == 10
    assert cfg.aavso.targets == [] and cfg.aavso.obscode == ""


def test_a_run_without_obscode_writes_no_aavso_file_and_says_so(obs, capsys):
    """Issue 19 item 8 / issue 21: ``N/A`` is no observer code; the run summary says why there
    is no AAVSO file (this test runs last: it adds a run to the module's database)."""
    import dataclasses

    from clinepipe.cli.nightly import _print_summary
    from clinepipe.products.aavso import write_aavso_reports

    cfg = obs["cfg"]
    cfg_na = dataclasses.replace(cfg, aavso=dataclasses.replace(cfg.aavso, obscode="N/A"))
    files = sorted((cfg.paths.archive / "aavso").rglob("*.txt"))
    before = {p: p.stat().st_mtime_ns for p in files}
    assert write_aavso_reports(cfg_na, obs["engine"], 1) == []
    summary = run_pipeline(cfg_na)
    assert {p: p.stat().st_mtime_ns for p in files} == before  # nothing rewritten
    assert summary.warnings == [
        f"no AAVSO files written: [aavso] obscode is 'N/A', a placeholder, not a code; set it "
        f"to the observer code AAVSO assigned you in {cfg.source_file}."]
    _print_summary(summary)
    assert "warning: no AAVSO files written: [aavso] obscode is 'N/A'" in capsys.readouterr().out
