"""Catalog-free ensemble photometry from `clinepipe run`, against the simulator's truth.

One simulated night (with a cloudy light) is run twice: with its catalog, and with
``[catalog] source = "none"``. The catalog-free magnitudes must scatter no more than the noise
the simulator put in (photons of star and sky, dark current, read noise, and scintillation by
Young's formula for the telescope's aperture and the site's elevation, times Osborn et al.'s
1.5), differ from the truth by one constant per filter, and give the variable's amplitude and
period as the catalog run does.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from run_snapshots import (
    assert_same_snapshot,
    copy_database,
    copy_night,
    pipeline_snapshot,
)
from scintillation_truth import young_rms
from sqlalchemy import func, select

from clinepipe.calibrate.relative import RELATIVE_ZERO_POINT
from clinepipe.config import load_config
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Measurement, ZeroPoint

MAG_PER_FLUX = 2.5 / np.log(10)
CLOUDY_LIGHT = 9


def set_catalog_source(config_path: Path, source: str) -> None:
    """Edit ``[catalog] source`` of a written clinepipe.toml."""
    text = config_path.read_text(encoding="utf-8")
    new, n = re.subn(r'(\[catalog\][^\[]*?)source = "[a-z]*"', rf'\1source = "{source}"',
                     text, count=1)
    assert n == 1
    config_path.write_text(new, encoding="utf-8")


def run(config_path: Path, **kwargs):
    cfg = load_config(config_path)
    run_pipeline(cfg, **kwargs)
    return cfg, open_database(cfg.database.url)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("catalog_free_sim")
    return simulate_night(out, seed=21, width=320, height=320, n_stars=150,
                          lights_per_filter=14, cloudy_frames=(CLOUDY_LIGHT,))


@pytest.fixture(scope="module")
def with_catalog(sim, tmp_path_factory):
    cfg, engine = run(copy_night(sim, tmp_path_factory.mktemp("with_catalog")))
    yield {"cfg": cfg, "engine": engine}
    engine.dispose()


@pytest.fixture(scope="module")
def free(sim, tmp_path_factory):
    config = copy_night(sim, tmp_path_factory.mktemp("catalog_free"))
    set_catalog_source(config, "none")
    cfg, engine = run(config)
    yield {"cfg": cfg, "engine": engine, "config": config}
    engine.dispose()


def points(sim, engine) -> list[dict]:
    """Every stored flagless measurement with a magnitude, with its star's truth on that frame."""
    with session_scope(engine) as s:
        rows = s.execute(select(Frame.raw_path, Frame.filter, Frame.jd_mid, Measurement.x,
                                Measurement.y, Measurement.mag, Measurement.mag_err,
                                Measurement.flux, Measurement.star_id)
                         .join(Frame, Frame.id == Measurement.frame_id)
                         .where(Measurement.mag.is_not(None), Measurement.flags == 0)).all()
    variable_ids = {int(v["star_id"]) for v in sim.variables}
    out = []
    for raw in sorted({r[0] for r in rows}):
        truth = sim.light_truth(Path(raw).stem)
        frame = sim.frame_row(Path(raw).stem)
        tx, ty = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
        for r in (r for r in rows if r[0] == raw):
            d = np.hypot(tx - r[3], ty - r[4])
            k = int(np.argmin(d))
            if d[k] < 1.0 and not truth["saturated"][k]:
                out.append({"frame": raw, "filter": r[1], "jd": r[2], "mag": r[5],
                            "mag_err": r[6], "flux": r[7], "star": r[8],
                            "truth_id": int(truth["id"][k]), "true_mag": float(truth["mag"][k]),
                            "true_flux": float(truth["flux_adu"][k]),
                            "sky": float(frame["sky_adu_per_pixel"]),
                            "exptime": float(frame["exptime"]),
                            "airmass": float(frame["airmass"]),
                            "scint_rms": float(frame["scintillation_rms"]),
                            "constant": int(truth["id"][k]) not in variable_ids})
    return out


def test_every_light_is_placed_on_the_relative_scale(free):
    with session_scope(free["engine"]) as s:
        frames = s.execute(select(Frame.state, Frame.stage, Frame.reason, Frame.filter,
                                  ZeroPoint.catalog_band, ZeroPoint.value, ZeroPoint.n_used)
                           .outerjoin(ZeroPoint, ZeroPoint.frame_id == Frame.id)
                           .where(Frame.kind == "light")).all()
    assert len(frames) == 28
    assert all(f[0] == "calibrated" and f[1] == "relative" and f[2] is None for f in frames)
    assert {f[4] for f in frames} == {"relative"}
    assert min(f[6] for f in frames) >= 10
    # each filter's night is on the scale of its own reference frame: zero point exactly 25
    for filt in ("V", "R"):
        values = [f[5] for f in frames if f[3] == filt]
        assert min(abs(v - RELATIVE_ZERO_POINT) for v in values) < 1e-9


def test_constant_stars_scatter_as_the_injected_noise(sim, free):
    """Night rms of each constant star against the photon + sky + dark + read noise the
    simulator put into its aperture and the scintillation it put on the star's flux (Young's
    formula from the truth's aperture, elevation, airmass and exposure, times 1.5)."""
    cam = json.loads((sim.truth_dir / "camera.json").read_text())
    gain, read_adu = cam["gain"], cam["read_noise_e"] / cam["gain"]
    dark = cam["dark_current_adu_s"]
    npix = np.pi * free["cfg"].photometry.aperture ** 2
    pts = points(sim, free["engine"])
    scint = cam["scintillation"]
    for p in pts:  # the simulator's own record agrees with the formula
        want = scint["factor"] * young_rms(scint["telescope_diameter_cm"], p["airmass"],
                                           cam["site"]["elevation"], p["exptime"])
        assert p["scint_rms"] == pytest.approx(want, rel=1e-9)
    assert scint["factor"] == 1.5 and scint["telescope_diameter_cm"] == 50.8
    ratios, expected_all = [], []
    by_star: dict[tuple, list] = {}
    for p in pts:
        if p["constant"]:
            by_star.setdefault((p["truth_id"], p["filter"]), []).append(p)
    for group in by_star.values():
        if len(group) < 12:
            continue
        flux = np.array([p["flux"] for p in group])  # ADU in the aperture (the signal level)
        sky = np.array([p["sky"] for p in group])
        t = np.array([p["exptime"] for p in group])
        scint_adu = np.array([p["scint_rms"] for p in group]) * flux
        var_adu = (flux / gain + npix * (sky / gain + dark * t / gain + read_adu ** 2)
                   + scint_adu ** 2)
        expected = np.sqrt(np.mean((MAG_PER_FLUX * np.sqrt(var_adu) / flux) ** 2))
        rms = np.std([p["mag"] for p in group], ddof=1)
        ratios.append(rms / expected)
        expected_all.append(expected)
    ratios = np.array(ratios)
    print(f"constant stars: median rms/expected {np.median(ratios):.3f} over {len(ratios)}; "
          f"expected {np.min(expected_all):.4f}-{np.max(expected_all):.4f} mag")
    assert len(ratios) >= 40
    # per star, 14 points give the rms to ~19 %: the night's typical star must be within 1.2x
    assert 0.85 < np.median(ratios) < 1.2, np.median(ratios)
    pooled = np.sqrt(np.mean(ratios ** 2))
    assert pooled < 1.2, pooled


def test_relative_minus_truth_is_one_constant_per_filter(sim, free):
    pts = [p for p in points(sim, free["engine"]) if p["constant"] and p["mag_err"] < 0.007]
    n_cloudy = 0
    for filt in ("V", "R"):
        delta = np.array([p["mag"] - p["true_mag"] for p in pts if p["filter"] == filt])
        err = np.array([p["mag_err"] for p in pts if p["filter"] == filt])
        assert len(delta) >= 40
        scatter = np.std(delta, ddof=1)
        # one offset for the whole night and filter: what is left is the stars' own noise
        assert scatter < 0.01, scatter
        assert scatter < 1.5 * np.sqrt(np.mean(err ** 2)), (scatter, np.sqrt(np.mean(err ** 2)))
        # the cloudy frame (0.3-0.5 transparency) is on the same scale: its stars are
        # fainter, so its points are taken to 0.02 mag
        cloudy = [p["mag"] - p["true_mag"] for p in points(sim, free["engine"])
                  if p["constant"] and p["mag_err"] < 0.02 and p["filter"] == filt
                  and sim.frame_row(Path(p["frame"]).stem)["qc"] == "clouds"]
        n_cloudy += len(cloudy)
        if cloudy:
            assert abs(np.median(cloudy) - np.median(delta)) < 0.01
    assert n_cloudy >= 3


def test_reported_errors_match_the_scatter(sim, free):
    """The reported mag_err of constant stars explains their night scatter (chi2 ~ 1) with
    the simulator's scintillation in the data. At this telescope (half-metre, 60 s) it is a
    small part of every unsaturated star's noise, which is why the reported errors, which
    leave it out, can still be honest: the test says so, and fails if that stops being true."""
    by_star: dict[tuple, list] = {}
    for p in points(sim, free["engine"]):
        if p["constant"]:
            by_star.setdefault((p["truth_id"], p["filter"]), []).append(p)
    chi2, share = [], []
    for group in by_star.values():
        if len(group) < 12:
            continue
        mag = np.array([p["mag"] for p in group])
        err = np.array([p["mag_err"] for p in group])
        w = 1 / err ** 2
        mean = np.sum(w * mag) / np.sum(w)
        chi2.append(np.sum(w * (mag - mean) ** 2) / (len(group) - 1))
        scint = MAG_PER_FLUX * np.array([p["scint_rms"] for p in group])
        share.append(np.mean(scint ** 2 / err ** 2))
    chi2, share = np.array(chi2), np.array(share)
    print(f"chi2: median {np.median(chi2):.2f} over {chi2.size} constant stars; scintillation's "
          f"share of the reported variance: median {np.median(share):.3f}, max {share.max():.3f}")
    assert chi2.size >= 40
    # chi2 of 13 degrees of freedom scatters by 0.4 per star: the median to ~0.06
    assert 0.7 < np.median(chi2) < 1.2, np.median(chi2)
    assert np.max(share) < 0.3 and np.median(share) > 0.0


def _sinusoid_amplitude(pts, period, epoch):
    t = np.array([p["jd"] for p in pts])
    band = np.array([p["filter"] for p in pts])
    phase = 2 * np.pi * (t - epoch) / period
    design = np.column_stack([np.cos(phase), np.sin(phase), band == "V", band == "R"]).astype(float)
    coef, *_ = np.linalg.lstsq(design, np.array([p["mag"] for p in pts]), rcond=None)
    return float(np.hypot(coef[0], coef[1]))


def test_variable_amplitude_and_period_as_with_a_catalog(sim, free, with_catalog):
    from clinepipe.variability.table import variability_table

    var = next(v for v in sim.variables if v["type"] == "DSCT")
    period, amplitude = float(var["period_days"]), float(var["amplitude"])
    found = {}
    for name, night in (("free", free), ("catalog", with_catalog)):
        pts = [p for p in points(sim, night["engine"]) if p["truth_id"] == int(var["star_id"])]
        assert len(pts) >= 26
        a = _sinusoid_amplitude(pts, period, float(var["epoch_jd"]))
        table = variability_table(night["engine"], min_points=10)
        star = pts[0]["star"]
        rows = [r for r in table if r.star_id == star]
        # the two simulated variables lead the night's variability table
        assert rows and star in {r.star_id for r in table[:4]}
        found[name] = (a, [r.period_days for r in rows])
        assert abs(a - amplitude) < 0.03, (name, a)
        assert all(abs(p - period) < 0.02 * period for p in found[name][1]), (name, found[name])
    assert abs(found["free"][0] - found["catalog"][0]) < 0.01, found
    assert np.allclose(found["free"][1], found["catalog"][1], rtol=0.01)


def test_light_curve_command_on_a_catalog_free_night(free, tmp_path):
    out = tmp_path / "lc.csv"
    r = subprocess.run([sys.executable, "-m", "clinepipe.cli", "--config", str(free["config"]),
                        "lc", "V0001 Sim", "--csv", str(out)], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    mags = np.array([float(row["mag"]) for row in rows if row["mag"]])
    assert len(mags) >= 26
    # relative magnitudes are magnitude-like (instrumental + 25), not raw instrumental ones
    assert 5 < mags.min() and mags.max() < 25


def test_few_catalog_stars_fall_back_to_the_ensemble(sim, free, tmp_path, caplog):
    """A catalog with fewer than min_stars stars in the field: the same relative magnitudes
    as source = "none", with a warning."""
    config = copy_night(sim, tmp_path / "sparse")
    with (tmp_path / "sparse" / "catalog.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    with (tmp_path / "sparse" / "catalog.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows[:3])  # header and two stars
    with caplog.at_level(logging.WARNING, logger="clinepipe"):
        _, engine = run(config)
    assert any("without enough catalog stars" in r.getMessage() for r in caplog.records)
    try:
        got = pipeline_snapshot(config)
    finally:
        engine.dispose()
    want = pipeline_snapshot(free["config"])
    assert {z[2] for z in got["zero_points"]} == {"relative"}
    assert got["zero_points"] == want["zero_points"]
    mags = {(m[0], m[1]): m[4] for m in got["measurements"]}
    ref = {(m[0], m[1]): m[4] for m in want["measurements"]}
    assert mags.keys() == ref.keys() and mags == ref


def test_killed_run_resumes_and_a_catalog_later_gives_standard_magnitudes(
        sim, free, with_catalog, tmp_path, monkeypatch):
    import clinepipe.run.relative_step as step

    config = copy_night(sim, tmp_path / "killed")
    set_catalog_source(config, "none")
    real = step._place_night
    calls = []

    def killed_on_the_second_filter(cfg, s, night, filt):
        calls.append(filt)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run is killed inside the step
        return real(cfg, s, night, filt)

    monkeypatch.setattr(step, "_place_night", killed_on_the_second_filter)
    with pytest.raises(KeyboardInterrupt):
        run(config)[1].dispose()
    monkeypatch.setattr(step, "_place_night", real)
    run(config)[1].dispose()
    assert_same_snapshot(pipeline_snapshot(config), pipeline_snapshot(free["config"]))

    # the catalog now covers the field: --reprocess puts the night on the standard system
    set_catalog_source(config, "file")
    _, engine = run(config, reprocess=True)
    with session_scope(engine) as s:
        stages = set(s.scalars(select(Frame.stage).where(Frame.kind == "light")))
    engine.dispose()
    assert stages == {None}
    got, want = pipeline_snapshot(config), pipeline_snapshot(with_catalog["cfg"].source_file)
    assert {z[2] for z in got["zero_points"]} == {"V", "R"}
    assert got["zero_points"] == want["zero_points"]
    assert ({(m[0], m[1]): m[4] for m in got["measurements"]}
            == {(m[0], m[1]): m[4] for m in want["measurements"]})


def test_lights_short_of_catalog_stars_are_tied_to_the_night_s_catalog_lights(with_catalog,
                                                                                 tmp_path):
    """A night where a third of the lights matched too few catalog stars: the ensemble puts
    them on the catalog's scale through the other lights, at the zero points the catalog
    gave them (within the errors), and doing it again changes nothing."""
    from sqlalchemy import delete, update

    from clinepipe.calibrate.light import RELATIVE_PENDING
    from clinepipe.run.relative_step import relative_photometry_step

    cfg, engine = copy_database(with_catalog["cfg"], tmp_path / "tie.db")
    with session_scope(engine) as s:
        lights = s.scalars(select(Frame.id).where(Frame.kind == "light")
                           .order_by(Frame.jd_mid)).all()
        chosen = lights[1::3]
        assert len(lights) == 28
        catalog_zp = {f: (v, e, band) for f, v, e, band in s.execute(
            select(ZeroPoint.frame_id, ZeroPoint.value, ZeroPoint.error, ZeroPoint.catalog_band)
            .where(ZeroPoint.frame_id.in_(chosen)))}
        s.execute(update(Measurement).where(Measurement.frame_id.in_(chosen))
                  .values(mag=None, mag_err=None, in_ensemble=False))
        s.execute(delete(ZeroPoint).where(ZeroPoint.frame_id.in_(chosen)))
        s.execute(update(Frame).where(Frame.id.in_(chosen)).values(
            state="measured", stage="relative",
            reason=f"{RELATIVE_PENDING} (too few comparison stars: 2 < 3)"))

    def zero_points():
        with session_scope(engine) as s:
            return {f: (v, e, band) for f, v, e, band in s.execute(
                select(ZeroPoint.frame_id, ZeroPoint.value, ZeroPoint.error,
                       ZeroPoint.catalog_band).where(ZeroPoint.frame_id.in_(chosen)))}

    try:
        # no light of run 999: the night is found by its lights waiting for the ensemble
        assert relative_photometry_step(cfg, engine, 999) == len(chosen)
        tied = zero_points()
        assert relative_photometry_step(cfg, engine, 999) == 0  # nothing waits any more
        assert relative_photometry_step(cfg, engine, 999, also_runs=[1]) == len(chosen)
        assert zero_points() == tied
        with session_scope(engine) as s:
            states = set(s.execute(select(Frame.state, Frame.stage).where(
                Frame.id.in_(chosen))).all())
            n_mags = s.scalar(select(func.count(Measurement.id)).where(
                Measurement.frame_id.in_(chosen), Measurement.mag.is_not(None)))
    finally:
        engine.dispose()
    assert states == {("calibrated", "relative")} and n_mags > 20 * len(chosen)
    assert tied.keys() == catalog_zp.keys()
    for f, (value, error, band) in tied.items():
        c_value, c_error, c_band = catalog_zp[f]
        assert band == c_band
        assert abs(value - c_value) < max(3 * np.hypot(error, c_error), 0.005), (f, value, c_value)


def test_a_light_the_ensemble_cannot_place_keeps_the_reason(free, tmp_path):
    """A light left with two usable ensemble stars (min_stars = 3) stays measured, saying
    why; the night's other lights are still placed."""
    from sqlalchemy import update

    from clinepipe.run.relative_step import relative_photometry_step

    cfg, engine = copy_database(free["cfg"], tmp_path / "unplaced.db")
    try:
        with session_scope(engine) as s:
            frame_id = s.scalars(select(Frame.id).where(Frame.kind == "light")
                                 .order_by(Frame.jd_mid)).first()
            keep = s.scalars(select(Measurement.id).where(
                Measurement.frame_id == frame_id, Measurement.in_ensemble.is_(True))
                .order_by(Measurement.id).limit(2)).all()
            s.execute(update(Measurement).where(Measurement.frame_id == frame_id,
                                                Measurement.id.not_in(keep))
                      .values(flags=8))  # all but two ensemble stars blended
        placed = relative_photometry_step(cfg, engine, 999, also_runs=[1])
        with session_scope(engine) as s:
            state, reason = s.execute(select(Frame.state, Frame.reason)
                                      .where(Frame.id == frame_id)).one()
            n_zp = s.scalar(select(func.count(ZeroPoint.id)).where(
                ZeroPoint.frame_id == frame_id))
            n_mag = s.scalar(select(func.count(Measurement.id)).where(
                Measurement.frame_id == frame_id, Measurement.mag.is_not(None)))
    finally:
        engine.dispose()
    assert placed == 27
    assert state == "measured" and n_zp == 0 and n_mag == 0
    assert reason == ("not placed by the night's relative ensemble: 2 ensemble stars (fewer "
                      "than 3)"), reason
