"""Issue 19 on a real run of a simulated night: the suspected new variable in the run summary,
`stars` and `variables`; files still being written counted in the summary; a file that failed
before its header was read gets its folder's night; the simulated config's AAVSO target and
why no file is written without an observer code; `clinepipe aavso` for past nights; a missing
catalog file named once, with its key."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import time

import pytest

from clinepipe.cli import main
from clinepipe.products.aavso_format import validate_file

SIM = dict(seed=8, nights=1, n_stars=120, width=256, height=256, lights_per_filter=12)


def _cli(capsys, *args):
    """(exit code, stdout, stderr) of ``clinepipe ARGS``."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def _run(capsys, *args):
    """``main`` ends with SystemExit only on an error: (0, stdout, stderr) otherwise."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _csv(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("first_run")
    sim = simulate_night(out, **SIM)
    capture = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(capture):
        try:
            main(["--config", str(sim.config_path), "run"])
        except SystemExit as exc:
            assert exc.code == 0
    return {"sim": sim, "summary": capture.getvalue()}


def _variable(sim, vtype):
    return [v for v in sim.variables if v["type"] == vtype][0]


def _star_rows(capsys, sim):
    code, out, _ = _run(capsys, "--config", sim.config_path, "stars", "--csv")
    assert code == 0
    return {r["catalog_id"]: r for r in _csv(out)}


def test_summary_lists_the_suspected_new_variable(night, capsys):
    sim, summary = night["sim"], night["summary"]
    pulsator = _variable(sim, "DSCT")
    stars = _star_rows(capsys, sim)
    sid = stars[pulsator["catalog_id"]]["star_id"]
    lines = [ln for ln in summary.splitlines() if ln.startswith("suspected new variable")]
    assert len(lines) == 1, summary
    assert lines[0].startswith(f"suspected new variable: star {sid} ({pulsator['catalog_id']}, ")
    m = re.search(r"RA ([\d.]+) Dec ([+-][\d.]+)\): reduced chi-square ([\d.]+) \(limit 10\)",
                  lines[0])
    assert m and abs(float(m[1]) - float(pulsator["ra"])) < 1e-3
    assert abs(float(m[2]) - float(pulsator["dec"])) < 1e-3 and float(m[3]) > 10


def test_stars_and_variables_show_the_type(night, capsys):
    sim = night["sim"]
    stars = _star_rows(capsys, sim)
    pulsator, eb = _variable(sim, "DSCT"), _variable(sim, "EA")
    assert stars[pulsator["catalog_id"]]["type"] == "suspected"
    assert stars[eb["catalog_id"]]["type"] == "EA" and stars[eb["catalog_id"]]["name"] == "V0001 Sim"
    others = {r["type"] for c, r in stars.items() if c not in (pulsator["catalog_id"], eb["catalog_id"])}
    assert others == {""}
    code, out, _ = _run(capsys, "--config", sim.config_path, "variables", "--csv")
    assert code == 0
    rows = _csv(out)
    types = {r["star_id"]: r["type"] for r in rows}
    assert types[stars[pulsator["catalog_id"]]["star_id"]] == "suspected"
    assert types[stars[eb["catalog_id"]]["star_id"]] == "EA"


def test_simulated_config_has_the_variable_as_target_and_says_why_no_file(night):
    sim, summary = night["sim"], night["summary"]
    assert (f"warning: no AAVSO files written: [aavso] obscode is empty; set it to the observer "
            f"code AAVSO assigned you in {sim.config_path}.") in summary
    assert not (sim.out_dir / "archive" / "aavso").exists()


def test_aavso_command_writes_past_nights(night, capsys, tmp_path):
    sim = night["sim"]
    night_name = sim.nights[0]
    # the same database and archive, with an observer code (relative paths: same folder)
    cfg = sim.out_dir / "with-code.toml"
    cfg.write_text(sim.config_path.read_text().replace('obscode = ""', 'obscode = "TEST"'))
    code, _, err = _cli(capsys, "--config", sim.config_path, "aavso")
    assert code == 1 and "no AAVSO observer code" in err  # the simulated config has none
    code, out, err = _run(capsys, "--config", cfg, "aavso", "--night", night_name)
    target = sim.out_dir / "archive" / "aavso" / night_name / "V0001_Sim.txt"
    assert code == 0, err
    assert out == f"wrote {target}\n"
    assert validate_file(target) == []
    body = [ln for ln in target.read_text().splitlines() if not ln.startswith("#")]
    assert len(body) >= 12 and all(ln.startswith("V0001 Sim,") for ln in body)
    target.unlink()
    date = f"{night_name[:4]}-{night_name[4:6]}-{night_name[6:]}"
    code, out, _ = _run(capsys, "--config", cfg, "aavso", "--since", date, "--target", "V0001 Sim")
    assert code == 0 and out == f"wrote {target}\n" and target.is_file()
    code, _, err = _cli(capsys, "--config", cfg, "aavso", "--since", "20990101")
    assert code == 1 and "no calibrated lights on nights from 20990101 on" in err
    code, _, err = _cli(capsys, "--config", cfg, "aavso", "--night", "1", "--since", "20260101")
    assert code == 2 and "--night or --since" in err
    code, _, err = _cli(capsys, "--config", cfg, "aavso", "--night", "20261399")
    assert code == 2 and "--night 20261399: not a date" in err


def test_files_still_being_written_are_counted_and_failed_files_get_their_folder_night(
        night, capsys):
    """Runs last in this module: it adds files to the night's incoming folder."""
    sim = night["sim"]
    incoming = sim.incoming
    hour_ago = time.time() - 3600
    dated = incoming / "20260316" / "broken.fits"
    undated = incoming / "misc" / "broken.fits"
    for path in (dated, undated):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a FITS file at all" * 100)
        os.utime(path, (hour_ago, hour_ago))
    light = sorted(p for p in incoming.rglob("*.fit*") if "light" in p.name.lower())[0]
    (incoming / "late").mkdir()
    for i in range(3):  # copied just now: still being written for a 600 s settle time
        shutil.copyfile(light, incoming / "late" / f"late_{i}.fits")
    code, out, _ = _run(capsys, "--config", sim.config_path, "run", "--settle", "600")
    assert code == 0
    assert "3 file(s) still being written (changed < 600 s ago): the next run takes them." in out
    assert "run 2: 2 new file(s)" in out
    code, out, _ = _run(capsys, "--config", sim.config_path, "frames", "--csv")
    nights = {r["frame"]: r["night"] for r in _csv(out)}
    assert nights["20260316/broken.fits"] == "20260316"
    assert nights["misc/broken.fits"] == ""
    assert not any(f.startswith("late/") for f in nights)


def test_night_from_folders():
    from clinepipe.run.ingest_step import night_from_folders

    assert night_from_folders("20260316/Light_001.fit") == "20260316"
    assert night_from_folders("2026-03-16/M42/Light_001.fit") == "20260316"
    assert night_from_folders("M42/2026_03_16/Light_001.fit") == "20260316"
    assert night_from_folders("20260316/20260317/x.fit") == "20260317"  # the innermost
    assert night_from_folders("20261399/x.fit") is None  # not a date
    assert night_from_folders("20260316.fit") is None    # a file name, not a folder
    assert night_from_folders("lights/x.fit") is None


def test_missing_catalog_named_once_with_its_key(tmp_path, capsys):
    from clinepipe.simulate import simulate_night

    sim = simulate_night(tmp_path, seed=3, width=160, height=160, n_stars=60,
                         lights_per_filter=3, n_bias=3, n_dark=3, n_flat=3, variables=False)
    sim.catalog_path.unlink()
    code, out, _ = _run(capsys, "--config", sim.config_path, "run")
    assert code == 0
    reason = f"waiting for catalog: catalog file missing: {sim.catalog_path} ([catalog] path)"
    code, frames, _ = _run(capsys, "--config", sim.config_path, "frames", "--csv")
    lights = [r for r in _csv(frames) if r["type"] == "light"]
    assert len(lights) == 6 and {r["reason"] for r in lights} == {reason}
    # the summary: one line for the six lights, not six
    assert out.count("catalog file missing") == 1
    assert "  6 files (e.g. " in out and f"waiting at calibrate: {reason}" in out
    log = (sim.out_dir / "archive" / "logs" / "clinepipe.log").read_text()
    warnings = [ln for ln in log.splitlines() if " WARNING " in ln and "catalog file" in ln]
    assert len(warnings) == 1
    assert (f"{sim.catalog_path}: the catalog file does not exist (set [catalog] path in "
            f"{sim.config_path})") in warnings[0]


def test_demo_shows_a_nightly_aavso_file_with_its_own_code(tmp_path, monkeypatch):
    """`clinepipe demo` (on a small night, to keep the test short): its own configuration has
    the demo's observer code, so it writes and names the target's AAVSO file; `simulate`'s
    configuration keeps an empty code."""
    import clinepipe.simulate as simulate
    from clinepipe.config import load_config
    from clinepipe.demo import DEMO_OBSCODE, run_demo

    real = simulate.simulate_night
    monkeypatch.setattr(simulate, "simulate_night",
                        lambda out, seed, nights: real(out, **{**SIM, "seed": seed, "nights": nights}))
    lines = []
    run_demo(tmp_path / "demo", nights=1, seed=8, echo=lines.append)
    cfg = load_config(tmp_path / "demo" / "clinepipe.toml")
    assert (cfg.aavso.obscode, cfg.aavso.targets) == (DEMO_OBSCODE, ["V0001 Sim"])
    files = sorted((tmp_path / "demo" / "archive" / "aavso").glob("*/*.txt"))
    assert [f.name for f in files] == ["V0001_Sim.txt"] and validate_file(files[0]) == []
    assert f"#OBSCODE={DEMO_OBSCODE}" in files[0].read_text()
    assert (f"AAVSO file:    {files[0]} (observer code CPDEMO: the demo's, not for upload)"
            in lines)
    assert not any(line.startswith("warning:") for line in lines)
