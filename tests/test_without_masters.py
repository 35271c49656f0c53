"""Nights without (some) calibration frames, ``[reduction] without_masters``, against the
simulator's truth; and the one master path's warm-dark rejection in the nightly run."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from run_snapshots import copy_night
from sqlalchemy import select
from truth_match import measurements_with_truth

from clinepipe.ccd.reduce import (
    calstat_of,
    missing_masters_reason,
    pedestal_estimate,
    reduce_frame,
)
from clinepipe.config import load_config
from clinepipe.photometry.aperture import aperture_photometry
from clinepipe.run.pipeline import run_pipeline
from clinepipe.simulate import render_light, simulate_night
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Master

NIGHT = dict(seed=5, width=320, height=320, n_stars=150, lights_per_filter=12)
GAIN, READ_NOISE, BIAS_LEVEL = 0.4, 9.3, 1000.0  # the simulator's defaults


def _with_annulus(config_path: Path) -> None:
    """A local annulus background: the pedestal left in must be taken as sky there."""
    text = config_path.read_text()
    ap = float(re.search(r"^aperture = ([0-9.]+)", text, re.M).group(1))
    config_path.write_text(text.replace("[photometry]\n",
                                        f"[photometry]\nannulus = [{ap + 3}, {ap + 9}]\n", 1))


def _lights(engine):
    with session_scope(engine) as s:
        return s.execute(select(Frame.raw_path, Frame.state, Frame.reason, Frame.calibrated_path,
                                Frame.bias_master_id, Frame.flat_master_id)
                         .where(Frame.kind == "light")).all()


def _calstats(cfg, lights) -> set:
    return {fits.getheader(cfg.paths.archive / row.calibrated_path)["CALSTAT"] for row in lights}


def _bright_deltas(sim, engine) -> np.ndarray:
    pts = [p for p in measurements_with_truth({"sim": sim, "engine": engine}) if p["snr"] > 100]
    return np.array([p["mag"] - p["true_mag"] for p in pts])


# ----------------------------------------------------------------------------- no frames at all

@pytest.fixture(scope="module")
def no_calibration(tmp_path_factory):
    """A night without a single bias, dark or flat, measured with ``without_masters = "measure"``."""
    sim = simulate_night(tmp_path_factory.mktemp("nocal"), calibration_frames=False, **NIGHT)
    _with_annulus(sim.config_path)
    cfg = load_config(sim.config_path)
    assert cfg.reduction.without_masters == "measure"  # what the simulator writes for it
    summary = run_pipeline(cfg)
    return {"sim": sim, "cfg": cfg, "engine": open_database(cfg.database.url),
            "summary": summary}


def test_night_without_calibration_frames_is_measured_to_the_truth(no_calibration):
    sim, cfg, engine = no_calibration["sim"], no_calibration["cfg"], no_calibration["engine"]
    lights = _lights(engine)
    assert len(lights) == 24
    assert {(row.state, row.reason) for row in lights} == {("calibrated", "no bias, dark or flat")}
    assert {row.bias_master_id for row in lights} == {None}
    assert _calstats(cfg, lights) == {""}
    delta = _bright_deltas(sim, engine)
    assert len(delta) > 150
    # the bias pedestal (1000 ADU) left in is sky to the annulus; only the uncorrected
    # vignetting (12 % at the corners) and PRNU remain, which the ensemble cannot remove
    assert np.median(np.abs(delta)) <= 0.02, np.median(np.abs(delta))
    assert abs(np.median(delta)) <= 0.01, np.median(delta)


def test_frame_sky_leaves_the_pedestal_out(no_calibration):
    sim, engine = no_calibration["sim"], no_calibration["engine"]
    truth = {Path(str(f)).name: float(sky) for f, kind, sky in
             zip(sim.frames["file"], sim.frames["kind"], sim.frames["sky_adu_per_pixel"])
             if kind == "light"}
    with session_scope(engine) as s:
        rows = s.execute(select(Frame.raw_path, Frame.sky).where(Frame.kind == "light")).all()
    ratio = np.array([sky / truth[Path(raw).name] for raw, sky in rows])
    # QC compares the skies of a night: 1000 ADU of pedestal in them (ratio ~2) would halve
    # the ratio of a moonlit frame to the others. Without a flat, the pixels' 1 % response
    # differences add to the noise the pedestal is estimated from: the sky reads ~10 % high
    assert len(ratio) == 24 and np.all(np.abs(ratio - 1.0) < 0.15), ratio


def test_frames_command_shows_what_the_light_was_measured_without(no_calibration):
    r = subprocess.run([sys.executable, "-m", "clinepipe.cli", "--config",
                        str(no_calibration["sim"].config_path), "frames", "--csv"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [row for row in csv.DictReader(io.StringIO(r.stdout)) if row["type"] == "light"]
    assert len(rows) == 24
    assert {(row["state"], row["reason"]) for row in rows} == {("calibrated",
                                                                "no bias, dark or flat")}


def test_with_wait_the_lights_wait_naming_the_master_and_the_key(no_calibration, tmp_path):
    config_path = copy_night(no_calibration["sim"], tmp_path)
    text = config_path.read_text()
    config_path.write_text(text.replace('without_masters = "measure"', 'without_masters = "wait"'))
    cfg = load_config(config_path)
    assert cfg.reduction.without_masters == "wait"
    run_pipeline(cfg)
    lights = _lights(open_database(cfg.database.url))
    assert len(lights) == 24
    binning = no_calibration["sim"].spec.binning
    assert {(row.state, row.reason) for row in lights} == {(
        "waiting", f'waiting for calibration: no bias for binning {binning}; set [reduction] '
                   'without_masters = "measure" to measure without it')}


# ----------------------------------------------------------------------------- bias frames only

@pytest.fixture(scope="module")
def bias_only(tmp_path_factory):
    """A night whose darks and flats are held back: measured with the bias alone; then they
    arrive and ``run --reprocess`` redoes the lights with all three masters."""
    root = tmp_path_factory.mktemp("biasonly")
    sim = simulate_night(root, **NIGHT)
    held = root / "held"
    held.mkdir()
    moved = [p for p in sorted(sim.incoming.rglob("*.fit"))
             if re.search(r"_(dark|flat)_", p.name)]
    assert moved
    for p in moved:
        shutil.move(p, held / p.name)
    text = sim.config_path.read_text()
    sim.config_path.write_text(text.replace('mode = "default"\n',
                                            'mode = "default"\nwithout_masters = "measure"\n', 1))
    _with_annulus(sim.config_path)
    cfg = load_config(sim.config_path)
    engine = open_database(cfg.database.url)
    run_pipeline(cfg)
    first = {"lights": _lights(engine), "calstat": None, "delta": _bright_deltas(sim, engine)}
    first["calstat"] = _calstats(cfg, first["lights"])
    for p in moved:  # the missing frames appear in incoming later
        shutil.move(held / p.name, p)
    run_pipeline(cfg, reprocess=True)
    return {"sim": sim, "cfg": cfg, "engine": engine, "first": first,
            "second": {"lights": _lights(engine), "delta": _bright_deltas(sim, engine)}}


def test_bias_only_night_is_measured_with_the_bias(bias_only):
    first = bias_only["first"]
    assert len(first["lights"]) == 24
    assert {(row.state, row.reason) for row in first["lights"]} == {("calibrated",
                                                                     "no dark or flat")}
    assert {row.bias_master_id is not None for row in first["lights"]} == {True}
    assert first["calstat"] == {"B"}
    delta = first["delta"]
    assert len(delta) > 150
    assert np.median(np.abs(delta)) <= 0.02, np.median(np.abs(delta))
    assert abs(np.median(delta)) <= 0.01, np.median(delta)


def test_reprocess_redoes_the_lights_once_the_missing_masters_exist(bias_only):
    cfg, engine = bias_only["cfg"], bias_only["engine"]
    lights = bias_only["second"]["lights"]
    with session_scope(engine) as s:
        kinds = sorted(s.scalars(select(Master.kind)).all())
    assert kinds == ["bias", "dark", "flat", "flat"]
    assert {(row.state, row.reason) for row in lights} == {("calibrated", None)}
    assert {row.flat_master_id is not None for row in lights} == {True}
    assert _calstats(cfg, lights) == {"BDF"}
    # with the flat, the vignetting is gone: closer to the truth than without it
    first, second = bias_only["first"]["delta"], bias_only["second"]["delta"]
    assert np.median(np.abs(second)) < np.median(np.abs(first))


# ----------------------------------------------------------------------------- flats without

@pytest.fixture(scope="module", params=[("_(bias|dark)_", "F", "no bias or dark"),
                                        ("_dark_", "BF", "no dark")], ids=["flats-only", "no-darks"])
def flats_without(request, tmp_path_factory):
    """A night with flats but no darks (or no bias and no darks): the flats are made with what
    there is, the lights measured with them; for the night without darks, the darks then
    arrive and the next run makes the flats again, with them."""
    pattern, calstat, reason = request.param
    root = tmp_path_factory.mktemp("flats")
    sim = simulate_night(root, **NIGHT)
    held = [p for p in sorted(sim.incoming.rglob("*.fit")) if re.search(pattern, p.name)]
    for p in held:
        shutil.move(p, root / p.name)
    text = sim.config_path.read_text()
    sim.config_path.write_text(text.replace('mode = "default"\n',
                                            'mode = "default"\nwithout_masters = "measure"\n', 1))
    _with_annulus(sim.config_path)
    cfg = load_config(sim.config_path)
    engine = open_database(cfg.database.url)
    run_pipeline(cfg)
    out = {"calstat": calstat, "reason": reason, "lights": _lights(engine),
           "delta": _bright_deltas(sim, engine), "cfg": cfg}
    out["calstats"] = _calstats(cfg, out["lights"])  # the files are written again below
    with session_scope(engine) as s:
        out["flats"] = s.execute(select(Master.id, Master.path).where(Master.kind == "flat")).all()
    if calstat == "BF":
        for p in held:
            shutil.move(root / p.name, p)
        run_pipeline(cfg, reprocess=True)
        out["after"] = _lights(engine)
        with session_scope(engine) as s:
            out["flats_after"] = s.execute(select(Master.id, Master.path)
                                           .where(Master.kind == "flat")).all()
    return out


def test_flats_are_made_and_applied_without_the_missing_masters(flats_without):
    r = flats_without
    assert {(row.state, row.reason) for row in r["lights"]} == {("calibrated", r["reason"])}
    assert r["calstats"] == {r["calstat"]}
    assert len(r["flats"]) == 2
    lacking = "bias, dark" if r["calstat"] == "F" else "dark"
    for _, path in r["flats"]:
        history = str(fits.getheader(r["cfg"].paths.archive / path)["HISTORY"])
        assert f"made without: {lacking}" in history
    delta = r["delta"]
    assert len(delta) > 150
    # with the flat the vignetting is corrected: as close as a fully calibrated night
    assert np.median(np.abs(delta)) <= 0.012, np.median(np.abs(delta))
    assert abs(np.median(delta)) <= 0.01, np.median(delta)


def test_a_flat_made_without_the_dark_is_made_again_once_it_exists(flats_without):
    r = flats_without
    if r["calstat"] != "BF":
        pytest.skip("only the night without darks gets its darks later")
    new = {fid for fid, _ in r["flats_after"]} - {fid for fid, _ in r["flats"]}
    assert len(new) == 2
    assert {row.flat_master_id for row in r["after"]} == new
    assert {(row.state, row.reason) for row in r["after"]} == {("calibrated", None)}
    assert _calstats(r["cfg"], r["after"]) == {"BDF"}


# ----------------------------------------------------------------------------- the reduction

@pytest.fixture(scope="module")
def raw_light():
    """One simulated raw light with a flat of ones (so only the bias pedestal, dark current and
    noise stand between it and the truth), no cosmic rays."""
    data, header, truth = render_light(None, seed=3, width=320, height=320, n_stars=200,
                                       flat=False, cosmic_rays=False)
    expected, _, _ = render_light(None, seed=3, width=320, height=320, n_stars=200, flat=False,
                                  cosmic_rays=False, noise=False)
    return data, header, truth, expected


def test_pedestal_estimate_from_the_frames_own_noise(raw_light):
    data, _, _, expected = raw_light
    signal = float(np.median(expected)) - BIAS_LEVEL  # sky + dark, ADU
    est = pedestal_estimate(data, GAIN, READ_NOISE)
    # the median and the MAD of ~50,000 row differences: a few per cent of the signal
    assert abs(est - BIAS_LEVEL) < 0.05 * signal, (est, signal)


def test_uncertainty_without_a_bias_leaves_the_pedestal_out(raw_light):
    data, header, _, expected = raw_light
    frame = reduce_frame(data, bias=None, dark=None, dark_exptime=None, flat=None,
                         exptime=header["EXPTIME"], gain=GAIN, read_noise=READ_NOISE,
                         header=header)
    assert frame.header["CALSTAT"] == ""
    np.testing.assert_array_equal(frame.data, data.astype(np.float32))  # pedestal kept
    sky = expected < np.percentile(expected, 50)  # pixels without stars
    resid = (frame.data - expected)[sky]
    spread = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    ratio = spread / np.median(frame.uncertainty[sky])
    # counting the 1000 ADU pedestal as electrons would give a ratio near 0.75
    assert 0.93 < ratio < 1.07, ratio


def test_annulus_takes_the_pedestal_as_sky(raw_light):
    data, header, truth, _ = raw_light
    frame = reduce_frame(data, bias=None, dark=None, dark_exptime=None, flat=None,
                         exptime=header["EXPTIME"], gain=GAIN, read_noise=READ_NOISE,
                         header=header)
    x, y = np.asarray(truth["x"], float) - 1.0, np.asarray(truth["y"], float) - 1.0
    true_flux = np.asarray(truth["flux_adu"], float)
    phot = aperture_photometry(frame.data, x, y, 6.0, background=None, gain=GAIN,
                               read_noise=READ_NOISE, uncertainty=frame.uncertainty,
                               mask=frame.mask, annulus=(10.0, 16.0))
    good = (phot["flags"] == 0) & (phot["flux"] / phot["flux_err"] > 20)
    assert good.sum() >= 8
    # ~1000 ADU of pedestal over 113 aperture pixels would add 1e5 ADU if taken as signal
    ratio = phot["flux"][good] / true_flux[good]
    assert 0.98 < np.median(ratio) < 1.02, np.median(ratio)
    pull = (phot["flux"][good] - true_flux[good]) / phot["flux_err"][good]
    assert np.median(np.abs(pull)) < 2.0, pull
    assert np.all(np.abs(phot["background"][good] - np.median(data)) < 100)


@pytest.mark.parametrize("bias,dark,flat,calstat,reason", [
    (True, True, True, "BDF", ""), (True, True, False, "BD", "no flat"),
    (True, False, False, "B", "no dark or flat"), (False, True, False, "D", "no bias or flat"),
    (False, False, True, "F", "no bias or dark"), (False, True, True, "DF", "no bias"),
    (False, False, False, "", "no bias, dark or flat")])
def test_partial_reduction_applies_exactly_the_masters_given(bias, dark, flat, calstat, reason):
    rng = np.random.default_rng(2)
    raw = rng.normal(1500.0, 30.0, (40, 50))
    m_bias = np.full((40, 50), 1000.0) + rng.normal(0, 2, 50)[None, :]
    m_dark = np.full((40, 50), 6.0)
    m_flat = 1.0 + rng.normal(0, 0.02, (40, 50))
    frame = reduce_frame(raw, bias=m_bias if bias else None, dark=m_dark if dark else None,
                         dark_exptime=120.0, flat=m_flat if flat else None, exptime=60.0,
                         gain=GAIN, read_noise=READ_NOISE, bias_noise=1.0, dark_noise=0.5,
                         flat_noise=0.001 if flat else None)
    expect = raw - (m_bias if bias else 0.0) - (0.5 * m_dark if dark else 0.0)
    expect = expect / (m_flat if flat else 1.0)
    np.testing.assert_allclose(frame.data, expect, rtol=1e-6, atol=1e-3)
    assert frame.header["CALSTAT"] == calstat == calstat_of(bias, dark, flat)
    assert missing_masters_reason(calstat) == reason
    assert ("CLPPED" in frame.header) == (not bias)


# ----------------------------------------------------------------------------- warm darks

def test_nightly_run_rejects_a_warm_dark_by_name(tmp_path):
    """The run builds masters as ``clinepipe masters`` does: a dark warmer than
    ``[camera] max_ccd_temp`` is left out of the master, with its reason."""
    sim = simulate_night(tmp_path / "warm", seed=11, width=64, height=64, n_stars=15,
                         lights_per_filter=1, ccd_temp_scatter=0.0, n_dark=4)
    darks = sorted(p for p in sim.incoming.rglob("*.fit") if "_dark_" in p.name)
    assert len(darks) == 4
    warm = darks[1]
    with fits.open(warm, mode="update") as hdul:  # in the darks' own -10 degC bucket
        assert hdul[0].header["CCD-TEMP"] == -10.0
        hdul[0].header["CCD-TEMP"] = -9.5
    text = sim.config_path.read_text()
    sim.config_path.write_text(text.replace("max_ccd_temp = -3.0", "max_ccd_temp = -9.8"))
    cfg = load_config(sim.config_path)
    run_pipeline(cfg)
    engine = open_database(cfg.database.url)
    with session_scope(engine) as s:
        rows = {Path(r.raw_path).name: r for r in s.execute(
            select(Frame.raw_path, Frame.state, Frame.reason).where(Frame.kind == "dark"))}
        dark_master = s.execute(select(Master.n_frames, Master.path)
                                .where(Master.kind == "dark")).one()
    assert rows[warm.name].state == "rejected"
    assert rows[warm.name].reason == "CCD too warm: -9.5 °C > -9.8 °C"
    assert {rows[p.name].state for p in darks if p != warm} == {"used"}
    assert dark_master.n_frames == 3
    table = fits.getdata(cfg.paths.archive / dark_master.path, "INPUTS")
    rejected = [n for n, st in zip(table["NAME"], table["STATUS"]) if st == "rejected"]
    assert rejected == [warm.name]
