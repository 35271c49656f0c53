"""Nights with darks but no bias frames (issue 22, ``without_masters = "measure"``).

The darks are not bias-subtracted with a bias that does not exist: their master holds bias +
dark current. A light at the dark's exposure subtracts it whole (CALSTAT ``BD``); at another
exposure it cannot be scaled (it would scale the bias too), so it is not applied and the frame
says why; with a master bias as well, the dark current alone is scaled. Checked against the
simulator's true bias, dark current, flat and sky.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from clinepipe.ccd.master_files import write_master
from clinepipe.ccd.master_stacks import build_bias, build_dark
from clinepipe.ccd.reduce_light import reduce_light
from clinepipe.config import CameraConfig, ReductionConfig, SiteConfig, load_config
from clinepipe.ingest.classify import read_frame_info
from clinepipe.run.pipeline import run_pipeline
from clinepipe.simulate import simulate_night
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame

MEASURE = ReductionConfig(without_masters="measure")
CAMERA = CameraConfig()


def _night(out, dark_exptime):
    return simulate_night(out, seed=7, width=128, height=96, n_stars=40, filters=("V",),
                          lights_per_filter=2, exptime=60.0, n_bias=5, n_dark=5, n_flat=3,
                          variables=False, dark_exptime=dark_exptime, cosmic_rays=False)


def _truth(sim, name):
    return fits.getdata(sim.truth_dir / name).astype(np.float64)


def _dark_master(sim, tmp_path, bias=None):
    result = build_dark(sim.frame_paths("dark"), bias)
    path = tmp_path / "dark_master.fits"
    write_master(path, result, kind="dark", mode="default", binning=3)
    return result, path


def _sky_of(sim, light, frame):
    """The reduced light's sky over its true flat, less any pedestal left in, and the truth."""
    flat = _truth(sim, "flat_bin3_V.fits")
    level = float(np.median(frame.data / flat)) - float(frame.header.get("CLPPED", 0.0))
    return level, float(sim.frame_row(light)["sky_adu_per_pixel"])


def test_a_dark_without_a_bias_is_bias_plus_dark(tmp_path):
    sim = _night(tmp_path, 60.0)
    result, path = _dark_master(sim, tmp_path)
    assert result.holds_bias and fits.getheader(path)["CLPDBIAS"] is True
    truth = _truth(sim, "bias_bin3.fits") + 60.0 * _truth(sim, "dark_bin3.fits")
    resid = result.data - truth
    # the median of 5 darks: per pixel the master's noise; over the frame, no offset
    assert abs(float(np.median(resid))) < 0.5, np.median(resid)
    assert 1.4826 * np.median(np.abs(resid - np.median(resid))) < 1.5 * result.noise


def test_a_light_at_the_dark_exposure_subtracts_bias_and_dark_together(tmp_path):
    sim = _night(tmp_path, 60.0)
    _, dark = _dark_master(sim, tmp_path)
    light = sim.lights()[0]
    info = read_frame_info(light, CAMERA, SiteConfig())
    frame = reduce_light(light, info, bias=None, dark=dark, flat=None, camera=CAMERA,
                         reduction=MEASURE)
    assert frame.header["CALSTAT"] == "BD" and "CLPPED" not in frame.header
    level, sky = _sky_of(sim, light, frame)
    print(f"sky {level:.2f} ADU, truth {sky:.2f} ADU")
    assert abs(level - sky) < 0.01 * sky + 2.0  # the bias (1000 ADU) is gone, no more


def test_another_exposure_without_a_bias_is_not_scaled_and_says_why(tmp_path):
    sim = _night(tmp_path, 120.0)  # lights of 60 s
    _, dark = _dark_master(sim, tmp_path)
    light = sim.lights()[0]
    info = read_frame_info(light, CAMERA, SiteConfig())
    frame = reduce_light(light, info, bias=None, dark=dark, flat=None, camera=CAMERA,
                         reduction=MEASURE)
    assert frame.header["CALSTAT"] == ""
    assert frame.header["CLPDNOTE"] == ("dark not applied: the 120 s master dark holds the "
                                        "bias (no master bias) and cannot be scaled to the "
                                        "60 s exposure")
    # scaled by 60/120 it would have removed half the bias: nothing at all is subtracted
    np.testing.assert_array_equal(frame.data, fits.getdata(light).astype(np.float32))
    flat = _truth(sim, "flat_bin3_V.fits")
    level = float(np.median((frame.data - _truth(sim, "bias_bin3.fits")) / flat))
    sky = float(sim.frame_row(light)["sky_adu_per_pixel"])
    assert abs(level - sky) < 0.01 * sky + 5.0, (level, sky)  # + 3 ADU of dark current


def test_with_a_bias_the_dark_current_alone_is_scaled(tmp_path):
    sim = _night(tmp_path, 120.0)
    bias = build_bias(sim.frame_paths("bias"))
    _, dark = _dark_master(sim, tmp_path)  # made before the bias existed
    light = sim.lights()[0]
    info = read_frame_info(light, CAMERA, SiteConfig())
    frame = reduce_light(light, info, bias=bias, dark=dark, flat=None, camera=CAMERA,
                         reduction=MEASURE)
    assert frame.header["CALSTAT"] == "BD" and "CLPDNOTE" not in frame.header
    level, sky = _sky_of(sim, light, frame)
    assert abs(level - sky) < 0.01 * sky + 2.0


@pytest.fixture(scope="module")
def darks_only_night(tmp_path_factory):
    """A night of lights and darks at the lights' exposure, no bias and no flat frames."""
    sim = simulate_night(tmp_path_factory.mktemp("darks_only"), seed=8, width=160, height=160,
                         n_stars=80, filters=("V",), lights_per_filter=3, exptime=60.0,
                         dark_exptime=60.0, n_bias=0, n_dark=5, n_flat=0, variables=False)
    text = sim.config_path.read_text()
    sim.config_path.write_text(text.replace('mode = "default"',
                                            'mode = "default"\nwithout_masters = "measure"', 1))
    cfg = load_config(sim.config_path)
    run_pipeline(cfg)
    return sim, cfg


def test_a_darks_only_night_is_measured_with_bias_and_dark_subtracted(darks_only_night):
    sim, cfg = darks_only_night
    with session_scope(open_database(cfg.database.url)) as s:
        frames = s.scalars(select(Frame)).all()
        s.expunge_all()
    lights = [f for f in frames if f.kind == "light"]
    darks = [f for f in frames if f.kind == "dark"]
    assert len(lights) == 3 and len(darks) == 5 and {f.kind for f in frames} == {"light", "dark"}
    assert {f.state for f in darks} == {"used"}
    for f in lights:
        assert (f.state, f.reason) == ("calibrated", "no flat"), (f.raw_path, f.reason)
        assert f.dark_master_id and not f.bias_master_id
        header = fits.getheader(cfg.paths.archive / f.calibrated_path)
        assert header["CALSTAT"] == "BD" and "CLPPED" not in header
        # the stored sky is the sky: no pedestal of 1000 ADU left in (vignetting: no flat)
        sky = float(sim.frame_row(f.raw_path)["sky_adu_per_pixel"])
        assert abs(f.sky - sky) < 0.05 * sky, (f.sky, sky)


def test_when_the_bias_arrives_the_dark_is_made_again_and_the_lights_redone(tmp_path):
    """Darks of 120 s, lights of 60 s, the bias frames held back: the lights are measured
    without the dark (it cannot be scaled) and say why; once the bias frames arrive, `run
    --reprocess` makes a bias-subtracted dark and the lights get bias and scaled dark."""
    import shutil

    sim = simulate_night(tmp_path, seed=10, width=160, height=160, n_stars=80, filters=("V",),
                         lights_per_filter=2, exptime=60.0, dark_exptime=120.0, n_bias=5,
                         n_dark=5, n_flat=0, variables=False)
    held = tmp_path / "held"
    held.mkdir()
    biases = sim.frame_paths("bias")
    for p in biases:
        shutil.move(p, held / p.name)
    text = sim.config_path.read_text()
    sim.config_path.write_text(text.replace('mode = "default"',
                                            'mode = "default"\nwithout_masters = "measure"', 1))
    cfg = load_config(sim.config_path)
    run_pipeline(cfg)
    engine = open_database(cfg.database.url)
    with session_scope(engine) as s:
        reasons = set(s.scalars(select(Frame.reason).where(Frame.kind == "light")))
    why = ("no bias, dark or flat; dark not applied: the 120 s master dark holds the bias (no "
           "master bias) and cannot be scaled to the 60 s exposure")
    assert reasons == {why}
    for p in biases:
        shutil.move(held / p.name, p)
    run_pipeline(cfg, reprocess=True)
    with session_scope(engine) as s:
        lights = s.scalars(select(Frame).where(Frame.kind == "light")).all()
        s.expunge_all()
    assert {(f.state, f.reason) for f in lights} == {("calibrated", "no flat")}
    for f in lights:
        header = fits.getheader(cfg.paths.archive / f.calibrated_path)
        assert header["CALSTAT"] == "BD" and header["CLPDSCAL"] == pytest.approx(0.5)
        dark = fits.getheader(cfg.paths.archive / "masters" / f.night / "binning3"
                              / header["DARKFILE"])
        assert "CLPDBIAS" not in dark  # the dark made again on the bias
        sky = float(sim.frame_row(f.raw_path)["sky_adu_per_pixel"])
        assert abs(f.sky - sky) < 0.05 * sky, (f.sky, sky)
