"""Exoplanet transits: targets, limb darkening, the model, the fit's honesty over 20 nights,
refusals, comparison selection, outputs, and the simulator's transit truth."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from clinepipe.errors import BadInput
from clinepipe.transits.differential import (
    choose_aperture,
    differential_flux,
    select_comparisons,
)
from clinepipe.transits.fit import TransitRefused, fit_transit
from clinepipe.transits.limbdark import quadratic_ld
from clinepipe.transits.model import total_duration, transit_flux
from clinepipe.transits.outputs import aavso_columns, write_transit_outputs
from clinepipe.transits.targets import parse_position, read_targets, transits_in_window

P, TC, K, ARS, INC, U = 2.5, 2460000.5, 0.12, 8.0, 87.0, (0.45, 0.20)
SHORT_MCMC = dict(n_walkers=16, max_steps=1200, check_every=200, tau_factor=30, tau_rtol=0.1)


def synthetic_night(seed: int, n: int = 150, span: float = 0.26, centre: float = TC):
    """One night of a hot Jupiter: 60 s exposures, a linear airmass trend, a FWHM-correlated
    systematic, per-point errors that understate the true scatter by 25 %, and a/Rs and
    inclination priors scattered around the truth by their own widths (as a table's are)."""
    rng = np.random.default_rng(seed)
    t = np.sort(centre - span / 2 + span * np.linspace(0, 1, n) + rng.normal(0, 2e-4, n))
    airmass = 1.0 / np.cos(np.radians(25 + 35 * (t - t.min()) / span + 10 * rng.random()))
    fwhm = (3.0 + 0.6 * np.sin(2 * np.pi * (t - t.min()) / 0.2 + rng.uniform(0, 6))
            + 0.1 * rng.standard_normal(n))
    sigma = 0.0025 * (1 + 0.3 * (airmass - 1))
    flux = (transit_flux(t, TC, P, K, ARS, INC, U, 60.0)
            * (1 - 0.08 * (airmass - 1) + 0.004 * (fwhm - 3.0))
            + 1.25 * sigma * rng.standard_normal(n))
    priors = {"ars": (ARS + 0.3 * rng.standard_normal(), 0.3),
              "inc": (INC + 0.5 * rng.standard_normal(), 0.5)}
    return t, flux, sigma, airmass, fwhm, priors, TC + rng.normal(0, 0.003)


# --- targets ---------------------------------------------------------------------------------

def test_targets_csv_degrees_and_sexagesimal(tmp_path):
    path = tmp_path / "transits.csv"
    path.write_text(
        "# This file was produced by the NASA Exoplanet Archive\n"
        "# COLUMN pl_name: Planet Name\n"
        "pl_name,ra,dec,pl_orbper,pl_tranmid,pl_trandur,pl_ratror,st_teff,tic_id\n"
        "Deg b,31.0427500,46.6878611,2.5,2460000.5,3.0,0.12,5800,TIC 1\n"
        "Spaces b,02 04 10.26,+46 41 16.3,1.0,2460001.0,2.4,,,\n"
        "Colons b,02:04:10.26,+46:41:16.3,1.0,2460001.0,2.4,,,\n"
        "Letters b,02h04m10.26s,-46d41m16.3s,1.0,2460001.0,2.4,,,\n", encoding="utf-8")
    targets = read_targets(path)
    assert [t.name for t in targets] == ["Deg b", "Spaces b", "Colons b", "Letters b"]
    ra = 15 * (2 + 4 / 60 + 10.26 / 3600)
    dec = 46 + 41 / 60 + 16.3 / 3600
    for t in targets[1:3]:
        assert t.ra == pytest.approx(ra, abs=1e-9) and t.dec == pytest.approx(dec, abs=1e-9)
    assert targets[3].dec == pytest.approx(-dec, abs=1e-9)
    assert targets[0].duration == pytest.approx(3.0 / 24.0)     # the Archive gives hours
    assert targets[0].rprs == 0.12 and targets[0].teff == 5800 and targets[0].tic_id == "TIC 1"
    assert targets[1].rprs is None and targets[1].teff is None
    assert parse_position("02:04:10.26 +46:41:16.3") == pytest.approx((ra, dec))
    assert parse_position("31.04275 -46.68786") == pytest.approx((31.04275, -46.68786))


@pytest.mark.parametrize("body, words", [
    ("pl_name,ra,dec,pl_orbper,pl_tranmid\nX,1,2,3,2460000\n", ["line 1", "pl_trandur"]),
    ("pl_name,ra,dec,pl_orbper,pl_tranmid,pl_trandur\nX,25h00m00s,2,3,2460000,2\n",
     ["line 2", "RA"]),
    ("pl_name,ra,dec,pl_orbper,pl_tranmid,pl_trandur\n\nX,1,2,-3,2460000,2\n",
     ["line 3", "pl_orbper"]),
    ("pl_name,ra,dec,pl_orbper,pl_tranmid,pl_trandur\nX,1,2,3,60000.5,2\n",
     ["line 2", "BJD"]),
])
def test_targets_bad_rows_name_file_and_line(tmp_path, body, words):
    path = tmp_path / "transits.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(BadInput) as exc:
        read_targets(path)
    assert str(path) in exc.value.message
    for w in words:
        assert w in exc.value.message


def test_transits_in_window_needs_ingress_or_egress():
    path_target = read_targets_from_row("2460000.5", "2.5", "3.0")
    half = 1.5 / 24
    # egress of epoch 2 inside the window, ingress before it
    assert list(transits_in_window(path_target, TC + 5 + 0.01, TC + 5 + 0.3)) == [2]
    # a window inside the transit sees neither contact
    assert transits_in_window(path_target, TC + 5 - half / 2, TC + 5 + half / 2).size == 0
    # two nights apart: epochs 0 and 1 both, ascending
    assert list(transits_in_window(path_target, TC - 0.1, TC + P + 0.1)) == [0, 1]
    assert transits_in_window(path_target, TC + 1.0, TC + 1.3).size == 0


def read_targets_from_row(t0, period, hours):
    from clinepipe.transits.targets import TransitTarget
    return TransitTarget("X b", 10.0, 20.0, float(period), float(t0), float(hours) / 24)


# --- limb darkening and the model ------------------------------------------------------------

def test_limb_darkening_trends():
    ld = {b: quadratic_ld(b, 5750).u for b in "BVRI"}
    total = [sum(ld[b]) for b in "BVRI"]
    assert total == sorted(total, reverse=True)      # weaker darkening to the red
    assert sum(quadratic_ld("V", 4500).u) > sum(quadratic_ld("V", 6500).u)  # and when hotter
    assert quadratic_ld("Rc", 5750).u == quadratic_ld("R", 5750).u
    assert "assumed" in quadratic_ld("V").source
    u1, u2 = quadratic_ld("V", 5772).u
    assert 0.0 < 1 - u1 - u2 < 1.0 and u1 > 0          # positive, darker at the limb
    with pytest.raises(ValueError):
        quadratic_ld("Halpha-wide", 5750)


def test_model_depth_and_duration():
    t = np.array([TC])
    # uniform disk: depth is exactly rprs^2; limb-darkened small planet at the centre:
    # depth = k^2 / (1 - u1/3 - u2/6)
    assert 1 - transit_flux(t, TC, P, 0.1, ARS, 90.0, (0, 0))[0] == pytest.approx(0.01, rel=1e-6)
    k = 0.01
    depth = 1 - transit_flux(t, TC, P, k, ARS, 90.0, U)[0]
    assert depth == pytest.approx(k**2 / (1 - U[0] / 3 - U[1] / 6), rel=2e-3)
    t14 = float(total_duration(P, K, ARS, INC))
    edge = transit_flux(np.array([TC - t14 / 2 - 1e-4, TC - t14 / 2 + 1e-3]), TC, P, K, ARS,
                        INC, U)
    assert edge[0] == 1.0 and edge[1] < 1.0


# --- the fit ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_fit_errors_are_honest_over_20_nights():
    """The mid-time and Rp/Rs errors are honest (issue 18): over 20 nights, the 40 values
    (both parameters) lie within 1 sigma of the truth in 60-80 % of cases and within 2 sigma
    in >= 90 %; each parameter alone stays inside the range 20 nights allow an honest error
    (binomial, 99 %: 45-90 % within 1 sigma, <= 3 nights beyond 2 sigma); the error scale
    finds the 25 % understatement.

    Why pooled: 20 nights measure one parameter's 1-sigma coverage to +-10 % (binomial), so
    the issue's 60-80 % window would fail a quarter of the time for exact errors; these
    seeds give mid-time 80 % and Rp/Rs 55 % within 1 sigma, 100 % and 90 % within 2.
    Measured over 111 nights (seeds 0-110, these settings, one-off): Rp/Rs 63 % within 1
    sigma and 92 % within 2 (rms of the normalised errors 1.11), mid-time 64 % and 97 %.
    On seeds 0-59 (Rp/Rs 63 %, 88 %) a least-squares (Laplace) fit of the same nights gives
    the same (62 %, 90 %); over 600 seeds that fit gives Rp/Rs 67 % and 94.5 %. Before the
    snooker move was corrected (transits/snooker.py) seeds 0-59 gave Rp/Rs 58 % and 87 %."""
    z, beta, red = [], [], []
    for seed in range(20):
        t, f, e, x, fwhm, priors, predicted = synthetic_night(seed)
        fit = fit_transit(t, f, e, x, period=P, t0_guess=predicted, exptime=60.0, ld=U,
                          priors=priors, detrend=("airmass", "fwhm"), vectors={"fwhm": fwhm},
                          seed=seed, **SHORT_MCMC)
        z.append(((fit.tmid - TC) / fit.tmid_err, (fit.rprs - K) / fit.rprs_err))
        beta.append(fit.error_scale)
        red.append(fit.red_noise_beta)
        assert fit.depth == pytest.approx(fit.rprs**2, rel=0.02)
        assert fit.oc_minutes == pytest.approx((fit.tmid - predicted) * 1440)
    z = np.abs(np.array(z))
    within1, within2 = (z < 1).mean(axis=0), (z < 2).mean(axis=0)
    print(f"within 1 sigma: tmid {within1[0]:.0%}, rprs {within1[1]:.0%}; within 2 sigma: "
          f"tmid {within2[0]:.0%}, rprs {within2[1]:.0%}; beta_red median "
          f"{np.median(red):.3f}; error scale median {np.median(beta):.3f}")
    assert np.median(beta) == pytest.approx(1.25, abs=0.08)
    assert 1.0 <= np.median(red) < 1.15         # white noise: little to widen
    pooled1, pooled2 = float((z < 1).mean()), float((z < 2).mean())
    assert 0.6 <= pooled1 <= 0.8 and pooled2 >= 0.9, f"both: {pooled1}, {pooled2}"
    for name, w1, w2 in zip(("mid-time", "Rp/Rs"), within1, within2):
        assert 0.45 <= w1 <= 0.9 and w2 >= 0.85, f"{name}: {w1}, {w2}"


def test_fit_one_night_exponential_airmass():
    t, f, e, x, fwhm, priors, predicted = synthetic_night(101)
    f = f / (1 - 0.08 * (x - 1)) * np.exp(-0.1 * (x - 1))   # exponential extinction instead
    fit = fit_transit(t, f, e, x, period=P, t0_guess=predicted, exptime=60.0, ld=U,
                      priors=priors, detrend=("airmass_exp", "fwhm"), vectors={"fwhm": fwhm},
                      seed=1, **SHORT_MCMC)
    assert abs(fit.tmid - TC) < 3 * fit.tmid_err and fit.tmid_err * 1440 < 3.0
    assert abs(fit.rprs - K) < 3 * fit.rprs_err and fit.rprs_err < 0.01
    assert fit.duration == pytest.approx(float(total_duration(P, K, ARS, INC)), rel=0.1)
    assert fit.rms_residual == pytest.approx(1.25 * np.median(e), rel=0.2)


def test_fit_refuses_a_night_without_transit_or_baseline():
    t, f, e, x, *_ = synthetic_night(3)
    t14 = float(total_duration(P, K, ARS, INC))
    before = t < TC - t14 / 2 - 0.001
    with pytest.raises(TransitRefused, match="no transit in the data"):
        fit_transit(t[before], f[before], e[before], x[before], period=P, t0_guess=TC,
                    duration=t14)
    # 10 minutes of data before ingress, plenty after egress
    keep = t > TC - t14 / 2 - 10 / 1440
    with pytest.raises(TransitRefused, match=r"\b(9|10) min before ingress"):
        fit_transit(t[keep], f[keep], e[keep], x[keep], period=P, t0_guess=TC, duration=t14)
    with pytest.raises(BadInput, match="fwhm"):
        fit_transit(t, f, e, x, period=P, t0_guess=TC, duration=t14,
                    detrend=("airmass", "fwhm"))


# --- differential photometry -------------------------------------------------------------------

def star_field(seed=0, n_frames=120, n_stars=25, noise_scale=1.0):
    """Fluxes of a target with a 1.44 % transit, a variable (column 5), a star flagged as
    saturated on one frame (6), one missing on a frame (7), one 4 mag fainter (8), the
    others constant; every star dimmed by the same transparency changes."""
    rng = np.random.default_rng(seed)
    t = TC - 0.13 + 0.26 * np.linspace(0, 1, n_frames)
    base = 10 ** rng.uniform(4.6, 5.2, n_stars)
    base[8] = base[0] / 40
    transparency = 1 - 0.2 * rng.random(n_frames)
    truth = np.ones((n_frames, n_stars))
    truth[:, 0] = transit_flux(t, TC, P, K, ARS, INC, U)
    truth[:, 5] = 1 + 0.02 * np.sin(2 * np.pi * (t - t[0]) / 0.11)
    flux0 = base[None, :] * truth * transparency[:, None]
    err = noise_scale * np.sqrt(flux0 + 400.0)
    flux = flux0 + err * rng.standard_normal(flux0.shape)
    flags = np.zeros(flux.shape, int)
    flags[40, 6] = 4
    flux[70, 7] = np.nan
    oot = np.abs(t - TC) > 0.5 * float(total_duration(P, K, ARS, INC))
    return t, flux, err, flags, oot, truth


def test_comparisons_exclude_variable_flagged_missing_and_unlike():
    t, flux, err, flags, oot, truth = star_field()
    comps = select_comparisons(flux, err, 0, flags=flags, oot=oot)
    assert comps.rejected[5].startswith("variable")
    assert comps.rejected[6].startswith("flagged")
    assert comps.rejected[7] == "not on every frame"
    assert comps.rejected[8].startswith("brightness")
    assert not {0, 5, 6, 7, 8} & set(comps.indices.tolist())
    assert len(comps.indices) == 12 and comps.weights.sum() == pytest.approx(1.0)
    f, e = differential_flux(flux, err, 0, comps, oot)
    # the transit comes through: the in-transit mean against the noiseless model
    inside = ~oot
    assert np.mean(f[inside] - truth[inside, 0]) == pytest.approx(
        0.0, abs=4 * np.median(e) / math.sqrt(inside.sum()))


def test_differential_errors_are_honest():
    """Pooled over 10 fields, out-of-transit (flux - 1) / flux_err has unit scatter: the
    propagated target and ensemble errors are neither too large nor too small."""
    z = []
    for seed in range(10):
        _, flux, err, flags, oot, _ = star_field(seed=seed)
        comps = select_comparisons(flux, err, 0, flags=flags, oot=oot)
        f, e = differential_flux(flux, err, 0, comps, oot)
        z.append((f[oot] - 1.0) / e[oot])
    assert np.std(np.concatenate(z)) == pytest.approx(1.0, abs=0.06)


def test_aperture_with_least_scatter_is_chosen():
    grid = {}
    for radius, scale in ((2.0, 2.0), (3.0, 1.0), (5.0, 1.6)):
        _, flux, err, flags, oot, _ = star_field(seed=7, noise_scale=scale)
        grid[radius] = (flux, err)
    lc = choose_aperture(grid, 0, oot=oot, flags=flags)
    assert lc.aperture == 3.0
    assert set(lc.scatter_by_aperture) == {2.0, 3.0, 5.0}
    assert lc.scatter == min(lc.scatter_by_aperture.values())
    user = choose_aperture(grid, 0, oot=oot, comparisons=[1, 2, 3])
    assert user.comparisons.indices.tolist() == [1, 2, 3]


# --- outputs ------------------------------------------------------------------------------

def test_outputs_have_the_interface_keys(tmp_path):
    t, f, e, x, fwhm, priors, predicted = synthetic_night(5)
    fit = fit_transit(t, f, e, x, period=P, t0_guess=predicted, exptime=60.0, ld=U,
                      priors=priors, detrend=("airmass", "fwhm"), vectors={"fwhm": fwhm},
                      seed=5, n_walkers=12, max_steps=400, check_every=200)
    paths = write_transit_outputs(tmp_path / "out", fit, planet="Sim b", night="20260314",
                                  filter="V", comps=[3, 9], aperture=6.5)
    record = json.loads(paths["fit.json"].read_text())
    keys = ["planet", "night", "filter", "tmid", "tmid_err", "rprs", "rprs_err", "depth", "depth_err", "ars", "ars_err", "inc", "inc_err", "duration", "rms_residual", "n_points", "comps", "aperture", "detrend", "oc_minutes"]
    assert set(keys) <= set(record)
    assert record["comps"] == [3, 9] and record["detrend"] == ["airmass", "fwhm"]
    assert record["n_points"] == 150 and record["depth"] == pytest.approx(fit.depth)
    with open(paths["lightcurve.csv"], newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["bjd_tdb", "flux", "flux_err", "model", "detrended", "airmass"]
    assert len(rows) == 151
    assert float(rows[1][0]) == pytest.approx(t.min(), abs=1e-6)
    assert paths["lightcurve.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob(".*tmp"))
    cols = aavso_columns(fit)
    assert list(cols) == ["DATE", "DIFF", "ERR", "AIRMASS", "FWHM"]
    assert np.array_equal(cols["FWHM"], np.sort(t) * 0 + fwhm[np.argsort(t)])


# --- the simulator ---------------------------------------------------------------------------

def test_simulator_transit_truth(tmp_path):
    from astropy import units as u
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time

    from clinepipe.simulate import simulate_night

    res = simulate_night(tmp_path, seed=3, width=96, height=96, n_stars=30, filters=("V",),
                         lights_per_filter=40, variables=False, cosmic_rays=False, n_bias=1,
                         n_dark=1, n_flat=1, transit={"rprs": 0.15}, red_noise=0.0)
    truth = json.loads((tmp_path / "truth" / "transit.json").read_text())
    host = truth["star"]
    assert truth["depth"] == pytest.approx(0.0225)
    lights = [r for r in res.frames if r["kind"] == "light"]
    # the flux before scintillation (the factor each star's flux was multiplied by)
    clean = [res.light_truth(r["file"]) for r in lights]
    clean = [np.asarray(t["flux_adu"]) / np.asarray(t["scintillation"]) for t in clean]
    ratio = np.array([c[host] / c[(host + 1) % 30] for c in clean])
    # BJD_TDB of each mid-exposure, by astropy (independently of the simulator's erfa sums)
    star = res.stars[host]
    site = EarthLocation.from_geodetic(res.spec.longitude * u.deg, res.spec.latitude * u.deg,
                                       res.spec.elevation * u.m)
    times = Time([r["jd_mid"] for r in lights], format="jd", scale="utc", location=site)
    bjd = (times.tdb + times.light_travel_time(
        SkyCoord(star["ra"] * u.deg, star["dec"] * u.deg), ephemeris="builtin")).jd
    model = transit_flux(bjd, truth["t0"], truth["period"], truth["rprs"], truth["ars"],
                         truth["inc"], (truth["u1"], truth["u2"]), 60.0)
    assert model.min() < 0.98                       # the default t0 puts the transit in the night
    np.testing.assert_allclose(ratio / ratio[model == 1].mean(), model, atol=2e-4)


def test_simulator_red_noise_and_clouds():
    from clinepipe.simulate import SimulationSpec, Simulator

    def flux_ratios(**kw):
        sim = Simulator(SimulationSpec(width=96, height=96, n_stars=30, filters=("V",),
                                       lights_per_filter=30, variables=False, **kw), seed=4)
        plans = sim.light_plans(0)
        fluxes = np.array([np.asarray(sim.render_light(p, noise=False).truth["flux_adu"])
                           for p in plans])
        return fluxes[:, 1:] / fluxes[:, :1], np.array([p.transparency for p in plans])

    calm, calm_t = flux_ratios()
    red, _ = flux_ratios(red_noise=0.02)
    cloudy, cloudy_t = flux_ratios(clouds=0.5)
    assert np.max(np.std(np.log(calm), axis=0)) < 1e-12        # stars keep their ratios
    assert np.median(np.std(np.log(red), axis=0)) > 1e-3       # seeing and colour terms
    assert np.max(np.std(np.log(cloudy), axis=0)) < 1e-12      # clouds are grey
    assert cloudy_t.min() < calm_t.min() - 0.1


def test_time_averaged_beta_measures_correlated_noise():
    """White residuals give beta ~ 1; residuals with a slow (correlated) component of rms
    sigma_r on white noise sigma_w give the binned-scatter ratio the noise implies,
    sqrt((sigma_w^2 + N sigma_r^2) / (sigma_w^2 + sigma_r^2)) for bins of N points much
    shorter than the correlation time."""
    from clinepipe.transits.fit import BETA_BIN_INGRESS, time_averaged_beta

    rng = np.random.default_rng(11)
    n, cadence, ingress = 40000, 1.0 / 1440, 8.0 / 1440      # 1-min points, 8-min ingress
    t = np.arange(n) * cadence
    sigma = np.full(n, 0.002)
    white = time_averaged_beta(t, sigma * rng.standard_normal(n), sigma, ingress)
    assert 1.0 <= white < 1.05
    kernel = np.exp(-0.5 * (np.arange(-600, 601) / 150.0) ** 2)   # correlation ~150 points
    slow = np.convolve(rng.standard_normal(n + kernel.size - 1), kernel, mode="valid")
    sigma_w, sigma_r = 0.002, 0.0008
    residuals = sigma_w * rng.standard_normal(n) + sigma_r * slow / slow.std()
    sizes = np.array(sorted({int(round(f * ingress / cadence)) for f in BETA_BIN_INGRESS}))
    expected = np.median(np.sqrt((sigma_w**2 + sizes * sigma_r**2) / (sigma_w**2 + sigma_r**2)))
    assert time_averaged_beta(t, residuals, sigma, ingress) == pytest.approx(expected, rel=0.06)
    # too few points for a bin of an ingress: nothing to measure, no widening
    assert time_averaged_beta(t[:20], residuals[:20], sigma[:20], ingress) == 1.0


def test_simulator_transit_night_drifts_with_one_option():
    """The transit night's drift is ``drift_px_per_hour`` (the one drift option): the lights'
    pointing moves by it from the first light, and the stars the drift uncovers get red-noise
    sensitivities like the others (a drifted, red-noised transit night renders)."""
    from clinepipe.simulate import SimulationSpec, Simulator

    sim = Simulator(SimulationSpec(width=96, height=96, n_stars=30, filters=("V",),
                                   lights_per_filter=12, variables=False, transit={},
                                   red_noise=0.02, drift_px_per_hour=3.0,
                                   pointing_jitter_px=0.0), seed=2)
    plans = sim.light_plans(0)
    hours = np.array([(p.start_ms - plans[0].start_ms) / 3.6e6 for p in plans])
    np.testing.assert_allclose(np.hypot([p.dx for p in plans], [p.dy for p in plans]),
                               3.0 * hours, atol=1e-9)
    assert len(sim.stars) > 30                      # the uncovered sky has stars too
    truth = sim.render_light(plans[-1], noise=False).truth
    assert np.all(np.isfinite(np.asarray(truth["flux_adu"])))


def test_snooker_move_samples_a_gaussian_exactly():
    """The transit fit's snooker move keeps its target: on a 5-d unit Gaussian its chain has
    sd 1 and a Gaussian 4th moment (emcee 3.1.6's own DESnookerMove gives sd 0.83)."""
    import emcee

    from clinepipe.transits.snooker import SnookerMove

    def log_prob(theta):
        return -0.5 * np.sum(np.atleast_2d(theta) ** 2, axis=1)

    sampler = emcee.EnsembleSampler(32, 5, log_prob, vectorize=True, moves=[SnookerMove()])
    sampler.random_state = np.random.RandomState(3).get_state()
    sampler.run_mcmc(np.random.default_rng(3).standard_normal((32, 5)), 2500)
    chain = sampler.get_chain(discard=250, flat=True)
    # ~1600 independent samples x 5 dimensions: the mean sd to ~1 %, the 4th moment to ~4 %
    assert np.mean(chain.std(axis=0)) == pytest.approx(1.0, abs=0.04)
    assert np.mean(np.mean(chain**4, axis=0) / 3) == pytest.approx(1.0, abs=0.15)
