"""End to end: a simulated night through `clinepipe run`, compared with the simulator's truth."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from truth_match import measurements_with_truth

from clinepipe.config import load_config
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Master, Measurement, Star, ZeroPoint


def sha_tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A 320x320 night with 12 lights per filter, processed once."""
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("e2e")
    sim = simulate_night(out, seed=5, width=320, height=320, n_stars=150, lights_per_filter=12)
    before = sha_tree(sim.incoming)
    cfg = load_config(sim.config_path)
    summary = run_pipeline(cfg)
    engine = open_database(cfg.database.url)
    return {"sim": sim, "cfg": cfg, "engine": engine, "summary": summary, "raw_before": before}


def test_every_file_has_a_state_and_lights_are_calibrated(night):
    sim, engine = night["sim"], night["engine"]
    n_files = sum(1 for _ in sim.incoming.rglob("*.fit"))
    with session_scope(engine) as s:
        states = dict(s.execute(select(Frame.state, func.count()).group_by(Frame.state)).all())
        n_masters = s.scalar(select(func.count(Master.id)))
    assert sum(states.values()) == n_files
    assert states.get("calibrated") == 24, states
    assert states.get("used", 0) + states.get("rejected", 0) == n_files - 24
    assert n_masters == 4  # bias, dark, flat V, flat R


def test_raw_files_untouched(night):
    assert sha_tree(night["sim"].incoming) == night["raw_before"]


def test_bright_star_magnitudes_match_truth(night):
    pts = [p for p in measurements_with_truth(night) if p["snr"] > 100]
    assert len(pts) > 150
    delta = np.array([p["mag"] - p["true_mag"] for p in pts])
    assert np.median(np.abs(delta)) <= 0.02, np.median(np.abs(delta))
    assert abs(np.median(delta)) <= 0.01


def test_magnitude_errors_are_honest(night):
    pts = [p for p in measurements_with_truth(night) if 20 < p["snr"] < 200]
    pull = np.array([(p["mag"] - p["true_mag"]) / p["mag_err"] for p in pts])
    # catalog errors shift each frame's zero point; the spread must still be near 1
    robust = 1.4826 * np.median(np.abs(pull - np.median(pull)))
    assert 0.7 < robust < 1.4, robust


def test_zero_points_consistent_with_truth(night):
    sim, engine = night["sim"], night["engine"]
    truth = {row["file"]: row for row in sim.frames if row["kind"] == "light"}
    pts = measurements_with_truth(night)
    with session_scope(engine) as s:
        zps = s.execute(select(Frame.raw_path, ZeroPoint.value, ZeroPoint.error, ZeroPoint.n_used)
                        .join(ZeroPoint, ZeroPoint.frame_id == Frame.id)).all()
    assert len(zps) == 24
    pulls = []
    for raw_path, value, error, n_used in zps:
        # the fitted zero point absorbs the aperture's enclosed fraction of the light
        ratio = [p["flux"] / p["true_flux"] for p in pts if p["frame"] == raw_path and p["snr"] > 100]
        aperture_term = 2.5 * np.log10(np.median(ratio))
        true_zp = float(truth[raw_path]["zero_point"])
        pulls.append((value - aperture_term - true_zp) / np.hypot(error, 0.005))
        assert n_used >= 10
    assert np.max(np.abs(pulls)) < 4, pulls


def test_variable_amplitude_recovered(night):
    sim, engine = night["sim"], night["engine"]
    var = [v for v in sim.variables if v["type"] == "DSCT"][0]
    pts = [p for p in measurements_with_truth(night) if p["truth_id"] == int(var["star_id"])]
    assert len(pts) >= 20
    with session_scope(engine) as s:
        jd = dict(s.execute(select(Frame.raw_path, Frame.jd_mid)).all())
    t = np.array([jd[p["frame"]] for p in pts])
    mags = np.array([p["mag"] for p in pts])
    band = np.array([p["filter"] for p in pts])
    phase = 2 * np.pi * (t - float(var["epoch_jd"])) / float(var["period_days"])
    # sinusoid at the known period with a separate mean per filter
    design = np.column_stack([np.cos(phase), np.sin(phase), band == "V", band == "R"]).astype(float)
    coef, *_ = np.linalg.lstsq(design, mags, rcond=None)
    amplitude = np.hypot(coef[0], coef[1])
    assert abs(amplitude - float(var["amplitude"])) < 0.03, amplitude


def test_star_ids_stable_within_the_night(night):
    pts = measurements_with_truth(night)
    ids_per_truth: dict[int, set] = {}
    for p in pts:
        ids_per_truth.setdefault(p["truth_id"], set()).add(p["star_id"])
    assert all(len(v) == 1 for v in ids_per_truth.values())


def test_rerun_adds_no_rows(night):
    cfg, engine = night["cfg"], night["engine"]

    def counts():
        with session_scope(engine) as s:
            return [s.scalar(select(func.count(m.id))) for m in (Frame, Star, Measurement, ZeroPoint, Master)]

    before = counts()
    summary = run_pipeline(cfg)
    assert summary.new_files == 0 and summary.lights_done == 0
    assert counts() == before


def test_known_variable_named(night):
    with session_scope(night["engine"]) as s:
        names = s.scalars(select(Star.name).where(Star.name.is_not(None))).all()
    assert names == ["V0001 Sim"]


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "clinepipe.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_cli_lc_plot_status_and_export(night, tmp_path):
    cfg_path = str(night["sim"].config_path)
    r = cli("--config", cfg_path, "lc", "V0001 Sim", "--plot", str(tmp_path / "lc.png"),
            "--csv", str(tmp_path / "lc.csv"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lc.png").stat().st_size > 10000
    with (tmp_path / "lc.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 20 and {"star_id", "bjd_tdb", "mag", "frame"} <= set(rows[0])
    r = cli("--config", cfg_path, "status", "--failed", "--csv")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "file,stage,reason"
    r = cli("--config", cfg_path, "export", "--format", "csv", "--output", str(tmp_path / "all.csv"))
    assert r.returncode == 0, r.stderr
    with (tmp_path / "all.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    keys = [(row["star_id"], row["frame"]) for row in rows]
    assert len(keys) == len(set(keys)) > 1000
    r = cli("--config", cfg_path, "lc", "no-such-star")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no-such-star" in r.stderr


def test_cli_errors_are_one_sentence(tmp_path):
    bad = tmp_path / "clinepipe.toml"
    bad.write_text("[camera]\ngain = 'x'\n")
    r = cli("--config", str(bad), "status")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "camera.gain" in r.stderr and str(bad) in r.stderr
    r = cli("--config", str(tmp_path / "missing.toml"), "run")
    assert r.returncode == 2 and "missing.toml" in r.stderr and "Traceback" not in r.stderr


def test_serial_run_reports_a_light_only_once_its_file_is_written(monkeypatch):
    """A serial run measures the next light while the previous one's file is written; a
    failed write still fails that light (named reason), the run goes on, and a full disk
    stops it at that light."""
    import errno
    from concurrent.futures import Future
    from types import SimpleNamespace

    import clinepipe.run.lights_step as lights_step
    from clinepipe.run.light_stages import LightResult, PendingLight

    outcome = {2: ValueError("disk controller said no"),
               4: OSError(errno.ENOSPC, "No space left on device")}
    started = []

    def start(task):
        started.append(task.frame_id)
        writing = Future()
        if task.frame_id in outcome:
            writing.set_exception(outcome[task.frame_id])
        else:
            writing.set_result(None)
        return PendingLight(task, LightResult(task.frame_id, True), writing)

    monkeypatch.setattr(lights_step, "start_light", start)
    cfg = SimpleNamespace(execution=SimpleNamespace(scheduler="serial"))
    tasks = [SimpleNamespace(frame_id=i, raw_path=Path(f"/night/light_{i}.fit"),
                             output=Path(f"/archive/light_{i}_calibrated.fits")) for i in range(1, 7)]
    results = []
    for result in lights_step.light_results(cfg, tasks, None):
        results.append(result)
        if result.stop:  # as lights_stage does
            break
    assert [r.frame_id for r in results] == [1, 2, 3, 4]
    assert [r.ok for r in results] == [True, False, True, False]
    assert results[1].stage == "reduce" and "disk controller said no" in results[1].reason
    assert results[3].stop and "No space left on device" in results[3].reason
    assert started[:4] == [1, 2, 3, 4] and len(started) <= 5  # at most one light ahead
