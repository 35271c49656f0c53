"""One measuring path: `clinepipe measure` on a frame the nightly run calibrated gives the numbers
the run stored for it (the same light stages, the same parameters, the same mask bits)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from run_snapshots import copy_night
from sqlalchemy import select
from typer.testing import CliRunner

from clinepipe.cli import app
from clinepipe.config import load_config
from clinepipe.run.measure import measure_image
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Measurement, ZeroPoint


@pytest.fixture(scope="module")
def night_run(small_night, tmp_path_factory):
    """A copy of ``small_night`` after `clinepipe run`: (config path, config, engine)."""
    cfg_path = copy_night(small_night, tmp_path_factory.mktemp("one_path"))
    cfg = load_config(cfg_path)
    run_pipeline(cfg)
    engine = open_database(cfg.database.url)
    yield cfg_path, cfg, engine
    engine.dispose()


def _frame(cfg, engine, filt: str = "V"):
    """(calibrated file, its raw .SRC list, stored measurements rows, stored zero point) of the
    run's first calibrated light in ``filt``."""
    with session_scope(engine) as s:
        frame = s.scalars(select(Frame).where(Frame.kind == "light", Frame.state == "calibrated",
                                              Frame.filter == filt).order_by(Frame.id)).first()
        assert frame is not None and frame.calibrated_path
        rows = s.execute(select(Measurement.x, Measurement.y, Measurement.flux,
                                Measurement.flux_err, Measurement.background,
                                Measurement.inst_mag, Measurement.flags, Measurement.fwhm)
                         .where(Measurement.frame_id == frame.id)).all()
        zp = s.scalars(select(ZeroPoint.value).where(ZeroPoint.frame_id == frame.id)).first()
        calibrated = cfg.paths.archive / frame.calibrated_path
        src = (cfg.paths.archive / frame.archive_path).with_suffix(".SRC")
    return calibrated, src, np.array(rows, dtype=float), zp


def _match(stored: np.ndarray, x, y, tol: float = 1e-9) -> np.ndarray:
    """Index into (x, y) of each stored row's position (1-based both), -1 when none within
    ``tol`` px."""
    d = np.hypot(stored[:, 0][:, None] - x[None, :], stored[:, 1][:, None] - y[None, :])
    k = np.argmin(d, axis=1)
    return np.where(d[np.arange(k.size), k] <= tol, k, -1)


def test_measure_gives_the_runs_numbers(night_run):
    _, cfg, engine = night_run
    calibrated, src, stored, _ = _frame(cfg, engine)
    assert calibrated.is_file() and src.is_file() and len(stored) > 30
    res = measure_image(calibrated, config=cfg, sources=src)
    m = res.measurements
    k = _match(stored, m["x"] + 1.0, m["y"] + 1.0)
    print(f"{calibrated.name}: {len(stored)} stored, {len(m)} measured, "
          f"{int((k >= 0).sum())} at the same positions")
    assert np.all(k >= 0)
    # the same stage functions on the same float32 planes: the same numbers, bit for bit
    # (up to the float64 the database stores)
    np.testing.assert_allclose(m["flux"][k], stored[:, 2], rtol=1e-12, atol=0)
    np.testing.assert_allclose(m["flux_err"][k], stored[:, 3], rtol=1e-12, atol=0)
    np.testing.assert_allclose(m["background"][k], stored[:, 4], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(m["flags"][k], stored[:, 6].astype(int))
    np.testing.assert_allclose(m["inst_mag"][k], stored[:, 5], rtol=1e-12, atol=0)
    # the frame's FWHM from the same PSF box (2 x the guess, at most 15 px)
    np.testing.assert_allclose(m["fwhm"][k], stored[:, 7], rtol=1e-12, atol=0)


def test_measure_command_csv_and_zero_point_agree_with_the_run(night_run, tmp_path):
    cfg_path, cfg, engine = night_run
    calibrated, src, stored, zp = _frame(cfg, engine)
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(app, ["--config", str(cfg_path), "measure", str(calibrated),
                                 "--sources", str(src), "--catalog",
                                 str(Path(cfg_path).parent / "catalog.csv"), "--filter", "V",
                                 "--output", str(out)])
    assert r.exit_code == 0, r.output
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    x = np.array([float(r["x"]) for r in rows])
    y = np.array([float(r["y"]) for r in rows])
    k = _match(stored, x, y, tol=1e-3)  # the CSV has 3 decimals of pixel
    assert np.all(k >= 0)
    flux = np.array([float(r["flux"]) for r in rows])[k]
    flux_err = np.array([float(r["flux_err"]) for r in rows])[k]
    flags = np.array([int(r["flags"]) for r in rows])[k]
    np.testing.assert_allclose(flux, stored[:, 2], rtol=1e-8)
    np.testing.assert_allclose(flux_err, stored[:, 3], rtol=1e-8)
    np.testing.assert_array_equal(flags, stored[:, 6].astype(int))
    # the zero point: the run's calibration function on the same instrumental magnitudes, the
    # configured known variable (the simulated EB) left out of the ensemble as in the run;
    # printed with 4 decimals
    line = next(l for l in r.output.splitlines() if "zero point" in l)
    value = float(line.split("zero point ")[1].split()[0])
    print(line, "| run:", zp)
    assert zp is not None and abs(value - zp) <= 5.1e-5
