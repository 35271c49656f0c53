"""Catalog-free ensemble photometry against a night whose truth is known.

The night is made here with numpy: star magnitudes, extinction along an airmass track with a
slow transparency drift and one cloudy frame 0.5 mag down, the CCD noise (photons, sky, read)
that the pipeline reports as ``inst_mag_err``, and scintillation (Young 1967, in the form of
Dravins et al. 1998: ``0.09 D^(-2/3) X^1.75 exp(-h/8000) / sqrt(2 t)``) that it does not report
and the ensemble must find for itself as each star's excess scatter.
"""

from dataclasses import dataclass

import numpy as np
import pytest

from clinepipe.calibrate.relative import (
    RELATIVE_ZERO_POINT,
    catalog_offset,
    relative_zero_points,
)

APERTURE_DIAMETER_CM = 40.0
SITE_ELEVATION_M = 1200.0
EXPTIME_S = 60.0
PHOTONS_AT_ZERO_MAG = 10 ** (0.4 * 22.0)  # e-/s above the atmosphere for a 0-mag star
SKY_E_PER_S_PIXEL = 40.0
READ_NOISE_E = 9.0
APERTURE_PIXELS = np.pi * 5.0 ** 2
EXTINCTION_MAG_PER_AIRMASS = 0.22
MAG_PER_FLUX = 2.5 / np.log(10)
SINE_STAR, ECLIPSE_STAR = 0, 1
SINE_SEMI_AMPLITUDE, SINE_CYCLES = 0.05, 3  # 0.1 mag peak to peak, whole cycles in the night
ECLIPSE_DEPTH = 0.5


def scintillation_mag(airmass):
    """Young's scintillation (relative flux rms, as magnitudes) for this site and telescope."""
    rel = (0.09 * APERTURE_DIAMETER_CM ** (-2 / 3) * airmass ** 1.75
           * np.exp(-SITE_ELEVATION_M / 8000.0) / np.sqrt(2 * EXPTIME_S))
    return MAG_PER_FLUX * rel


@dataclass
class Night:
    inst: np.ndarray        # (F, S) instrumental magnitudes
    err: np.ndarray         # (F, S) reported errors: photons, sky, read (no scintillation)
    usable: np.ndarray      # (F, S)
    true_mag: np.ndarray    # (S,) out-of-atmosphere magnitudes of the constant stars
    signal: np.ndarray      # (F, S) intrinsic variation (variables), 0 for constant stars
    extinction: np.ndarray  # (F,) mag lost in the atmosphere, clouds included
    noise: np.ndarray       # (F, S) injected noise rms: CCD and scintillation in quadrature
    outlier: np.ndarray     # (F, S) points given a bad value (cosmic ray, satellite)
    eclipse: np.ndarray     # (F,) the unit-depth eclipse shape of ECLIPSE_STAR
    phase: np.ndarray       # (F,) the sinusoid's phase (rad)
    scint: np.ndarray       # (F,) scintillation rms (mag)
    cloudy: int


def make_night(seed, n_frames=300, n_stars=90) -> Night:
    rng = np.random.default_rng(seed)
    hour_angle = np.linspace(-3.0, 4.5, n_frames) * 15.0  # deg, one long night
    lat, dec = np.radians(40.0), np.radians(25.0)
    altitude = np.arcsin(np.sin(lat) * np.sin(dec)
                         + np.cos(lat) * np.cos(dec) * np.cos(np.radians(hour_angle)))
    airmass = 1.0 / np.sin(altitude)
    transparency = 0.03 * np.sin(np.linspace(0, 2.5, n_frames)) + rng.normal(0, 0.01, n_frames)
    cloudy = n_frames // 3
    transparency[cloudy] += 0.5
    extinction = EXTINCTION_MAG_PER_AIRMASS * airmass + transparency

    true_mag = np.sort(rng.uniform(10.0, 16.0, n_stars))
    true_mag[[SINE_STAR, ECLIPSE_STAR]] = [11.6, 11.9]  # bright: their scatter stands out
    signal = np.zeros((n_frames, n_stars))
    phase = np.linspace(0, 2 * np.pi * SINE_CYCLES, n_frames, endpoint=False)
    signal[:, SINE_STAR] = SINE_SEMI_AMPLITUDE * np.sin(phase)
    t = np.linspace(-1, 1, n_frames)
    eclipse = np.clip(1 - ((t - 0.1) / 0.3) ** 2, 0, None)  # 30 % of the night in eclipse
    signal[:, ECLIPSE_STAR] = ECLIPSE_DEPTH * eclipse

    mag_seen = true_mag[None, :] + signal + extinction[:, None]
    electrons = PHOTONS_AT_ZERO_MAG * 10 ** (-0.4 * mag_seen) * EXPTIME_S
    ccd_var = electrons + APERTURE_PIXELS * (SKY_E_PER_S_PIXEL * EXPTIME_S + READ_NOISE_E ** 2)
    ccd = MAG_PER_FLUX * np.sqrt(ccd_var) / electrons
    scint = np.broadcast_to(scintillation_mag(airmass)[:, None], ccd.shape)
    noise = np.hypot(ccd, scint)
    # -2.5 log10(electrons per second), as the photometry reports
    inst = mag_seen - 2.5 * np.log10(PHOTONS_AT_ZERO_MAG) + rng.normal(0, noise)

    outlier = np.zeros(inst.shape, dtype=bool)
    rows = rng.choice(n_frames, 8, replace=False)
    cols = rng.choice(np.arange(5, n_stars), 8, replace=False)
    outlier[rows, cols] = True
    inst[rows, cols] += rng.choice([-0.8, -0.4, 0.3, 0.6], 8)

    usable = np.ones(inst.shape, dtype=bool)
    usable[rng.random(inst.shape) < 0.03] = False            # flagged now and then
    missing = rng.random(inst.shape) < 0.02                  # off the chip / not detected
    inst[missing] = np.nan
    inst[:, -1] = np.nan                                     # a star never measured
    inst[rng.random(n_frames) < 0.5, -2] = np.nan            # one only on half the frames
    return Night(inst, ccd, usable, true_mag, signal, extinction, noise, outlier & ~missing,
                 eclipse, phase, scintillation_mag(airmass), cloudy)


@pytest.fixture(scope="module", params=[11, 12, 13])
def solved(request):
    night = make_night(request.param)
    return night, relative_zero_points(night.inst, night.err, night.usable)


def test_offsets_match_truth_within_their_errors(solved):
    night, res = solved
    assert res.converged and res.n_iter < 50
    placed = np.isfinite(res.zero_point)
    assert placed.all()
    # mag = inst + zp recovers the out-of-atmosphere magnitude: zp = const - extinction
    diff = res.zero_point + night.extinction
    diff -= np.average(diff, weights=res.zero_point_err ** -2)
    pull = diff / res.zero_point_err
    assert 0.8 < np.std(pull) < 1.2, np.std(pull)
    assert abs(np.mean(pull)) < 0.2
    # the cloudy frame is placed too: its zero point makes up the 0.5 mag the clouds took
    cloud = night.cloudy
    step = 0.5 * (res.zero_point[cloud - 1] + res.zero_point[cloud + 1]) - res.zero_point[cloud]
    truth = night.extinction[cloud] - 0.5 * (night.extinction[cloud - 1]
                                             + night.extinction[cloud + 1])
    assert abs(step - truth) < 4 * res.zero_point_err[cloud] + 0.02
    assert truth > 0.45


def test_reference_frame_is_the_best_and_fixes_the_scale(solved):
    night, res = solved
    ref = res.reference
    assert res.zero_point[ref] == RELATIVE_ZERO_POINT
    ok = np.isfinite(night.inst[ref])
    assert np.allclose(res.mag[ref, ok], night.inst[ref, ok] + RELATIVE_ZERO_POINT)
    # the best frame: among the frames with nearly all the stars, the smallest offset error
    assert res.n_stars[ref] >= 0.9 * res.n_stars.max()
    assert res.zero_point_err[ref] <= np.nanmin(res.zero_point_err[res.n_stars >= res.n_stars[ref]])
    assert ref != night.cloudy


def constant_stars(night, res):
    """The ensemble stars that are not variables."""
    stars = res.star_used.copy()
    stars[[SINE_STAR, ECLIPSE_STAR]] = False
    return stars


def test_constant_stars_scatter_as_the_injected_noise(solved):
    night, res = solved
    stars = constant_stars(night, res)
    good = np.isfinite(res.mag) & ~night.outlier & night.usable
    mag = np.where(good, res.mag, np.nan)[:, stars]
    rms = np.nanstd(mag, axis=0, ddof=1)
    injected = np.sqrt(np.nanmean(np.where(good, night.noise ** 2, np.nan)[:, stars], axis=0))
    ratio = rms / injected
    assert ratio.max() < 1.2, ratio.max()
    assert 0.93 < np.median(ratio) < 1.07, np.median(ratio)
    # and the relative magnitudes are the true ones plus one constant for the night
    offset = np.nanmedian(mag - night.true_mag[stars])
    assert np.nanmax(np.abs(np.nanmean(mag, axis=0) - night.true_mag[stars] - offset)) < 0.01


def test_stated_errors_are_honest_for_constant_stars(solved):
    night, res = solved
    stars = constant_stars(night, res)
    good = np.isfinite(res.mag) & ~night.outlier & night.usable
    # the stated error plus the star's excess scatter describe its light curve
    mag = np.where(good, res.mag, np.nan)[:, stars]
    expected = np.sqrt(res.mag_err[:, stars] ** 2 + res.star_excess[stars] ** 2)
    pull = (mag - np.nanmean(mag, axis=0)) / expected
    assert 0.9 < np.nanstd(pull) < 1.1
    # the excess scatter is the scintillation the errors left out
    bright = stars & (night.true_mag < 11.5)  # where scintillation is as large as the rest
    scint = np.sqrt(np.mean(night.scint ** 2))
    assert 0.85 < np.median(res.star_excess[bright] / scint) < 1.15


def test_variables_are_down_weighted_and_their_amplitudes_recovered(solved):
    night, res = solved
    stars = constant_stars(night, res)
    similar = stars & (np.abs(night.true_mag - 11.75) < 1.0)
    typical = np.median(res.star_weight[similar])
    assert res.star_weight[SINE_STAR] < 0.05 * typical
    assert res.star_weight[ECLIPSE_STAR] < 0.02 * typical
    # the sinusoid's rms is its excess scatter
    assert res.star_excess[SINE_STAR] == pytest.approx(SINE_SEMI_AMPLITUDE / np.sqrt(2), rel=0.15)

    def fitted(star, *templates):
        ok = np.isfinite(res.mag[:, star])
        design = np.column_stack([np.ones(ok.sum())] + [t[ok] for t in templates])
        coef, *_ = np.linalg.lstsq(design, res.mag[ok, star], rcond=None)
        return coef[1:]

    s, c = fitted(SINE_STAR, np.sin(night.phase), np.cos(night.phase))
    assert np.hypot(s, c) == pytest.approx(SINE_SEMI_AMPLITUDE, rel=0.10)
    (depth,) = fitted(ECLIPSE_STAR, night.eclipse)
    assert depth == pytest.approx(ECLIPSE_DEPTH, rel=0.10)


def test_outlier_points_are_clipped_and_leave_their_stars_weighted(solved):
    night, res = solved
    big = night.outlier & night.usable
    assert not res.used[big].any()
    # their excess scatter is the scintillation alone, within the sampling noise of a variance
    # (one unclipped 0.3 mag point in 300 would add 0.017 mag)
    stars = np.flatnonzero(big.any(axis=0))
    good = (night.usable & np.isfinite(night.inst))[:, stars]
    noise2 = np.where(good, night.noise[:, stars] ** 2, 0).sum(axis=0) / good.sum(axis=0)
    allowed = np.mean(night.scint ** 2) + 4 * np.sqrt(2 / good.sum(axis=0)) * noise2
    assert np.all(res.star_excess[stars] ** 2 < allowed)


def test_stars_on_too_few_frames_get_magnitudes_but_no_say(solved):
    night, res = solved
    assert not res.star_used[-1] and not res.star_used[-2]
    assert np.all(np.isnan(res.mag[:, -1]))
    half = np.isfinite(night.inst[:, -2])
    assert np.allclose(res.mag[half, -2], night.inst[half, -2] + res.zero_point[half])
    assert np.all(res.star_weight[[-1, -2]] == 0)
    assert res.star_weight[res.star_used].sum() == pytest.approx(1.0)


def test_permuting_the_stars_changes_nothing():
    night = make_night(21, n_frames=120, n_stars=60)
    res = relative_zero_points(night.inst, night.err, night.usable)
    order = np.random.default_rng(5).permutation(night.inst.shape[1])
    perm = relative_zero_points(night.inst[:, order], night.err[:, order],
                                night.usable[:, order])
    assert perm.reference == res.reference
    np.testing.assert_allclose(perm.zero_point, res.zero_point, rtol=0, atol=1e-9)
    np.testing.assert_allclose(perm.zero_point_err, res.zero_point_err, rtol=1e-9)
    np.testing.assert_allclose(perm.star_weight, res.star_weight[order], rtol=1e-9)
    np.testing.assert_array_equal(perm.used, res.used[:, order])


def test_frames_without_enough_stars_get_no_zero_point_and_a_reason():
    night = make_night(31, n_frames=60, n_stars=40)
    inst = night.inst.copy()
    inst[5] = np.nan                      # clouded out
    inst[9, 2:] = np.nan                  # two stars seen through the clouds
    res = relative_zero_points(inst, night.err, night.usable, min_stars=3)
    assert np.isnan(res.zero_point[[5, 9]]).all() and np.isnan(res.mag[[5, 9]]).all()
    assert res.frame_reason[5] == "no usable measurement"
    assert "fewer than 3" in res.frame_reason[9]
    others = np.setdiff1d(np.arange(60), [5, 9])
    assert np.isfinite(res.zero_point[others]).all()
    assert all(r == "" for r in np.array(res.frame_reason)[others])


def test_a_night_of_one_frame_is_its_own_reference():
    night = make_night(41, n_frames=30, n_stars=30)
    res = relative_zero_points(night.inst[:1], night.err[:1], night.usable[:1])
    assert res.reference == 0 and res.zero_point[0] == RELATIVE_ZERO_POINT
    assert res.zero_point_err[0] == 0
    measured = (night.usable & np.isfinite(night.inst))[0]
    assert res.converged and np.array_equal(res.used[0], measured)
    ok = np.isfinite(night.inst[0])
    np.testing.assert_allclose(res.mag[0, ok], night.inst[0, ok] + RELATIVE_ZERO_POINT)
    np.testing.assert_allclose(res.mag_err[0, ok], night.err[0, ok])


def test_nights_with_nothing_to_compare_say_why():
    empty = relative_zero_points(np.full((4, 6), np.nan), np.full((4, 6), 0.01),
                                 np.ones((4, 6), bool))
    assert empty.reference == -1 and np.isnan(empty.zero_point).all()
    assert empty.reason == "no usable measurement on any frame"
    few = relative_zero_points(np.zeros((4, 2)), np.full((4, 2), 0.01), np.ones((4, 2), bool))
    assert few.reason == "no frame has 3 stars of the ensemble"
    with pytest.raises(ValueError):
        relative_zero_points(np.zeros((4, 2)), np.zeros((4, 3)), np.ones((4, 2), bool))


def test_catalog_offset_is_within_its_error_over_many_catalogs():
    rng = np.random.default_rng(51)
    pulls = []
    for _ in range(400):
        n = 40
        standard = rng.uniform(10, 15, n)
        rel_err = 0.002 * 10 ** (0.2 * (standard - 10))
        rel = standard - 1.234 + rng.normal(0, rel_err)
        cat_err = np.full(n, 0.03)
        cat = standard + rng.normal(0, cat_err)
        cat[:2] += [0.8, -1.1]                      # two mismatched catalog entries
        off = catalog_offset(rel, rel_err, cat, cat_err)
        assert not off.used[:2].any()
        pulls.append((off.value - 1.234) / off.error)
    pulls = np.array(pulls)
    assert abs(pulls.mean()) < 0.15
    assert 0.8 < pulls.std() < 1.2


def test_catalog_offset_places_a_night_on_the_standard_scale(solved):
    night, res = solved
    rng = np.random.default_rng(61)
    stars = constant_stars(night, res)
    cat_err = np.full(stars.sum(), 0.02)
    cat = night.true_mag[stars] + rng.normal(0, cat_err)
    off = catalog_offset(res.star_mag[stars], res.star_mag_err[stars], cat, cat_err)
    # on the reference frame mag = inst + 25 = true + extinction_ref - 2.5 log10(photons) + 25
    ref = res.reference
    truth = 2.5 * np.log10(PHOTONS_AT_ZERO_MAG) - RELATIVE_ZERO_POINT - night.extinction[ref]
    assert abs(off.value - truth) < 3 * np.hypot(off.error, res.zero_point_err[res.reference])
    assert off.n_used >= stars.sum() - 2
