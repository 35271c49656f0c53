"""The period search (``variability.periods.find_period``) against the truth: light curves of
eclipsing binaries, sinusoids, RR Lyrae-like sawtooths and contact binaries drawn from known
periods (``tests/periodic_lightcurves.py``), sampled over two nights, a season and ten years.

Tolerance: a period is recovered when the folded light curve stays in phase over the whole span,
``|1/P - 1/P_true| * span < 0.25`` cycle (1 % of the period on two nights, ~1e-5 on ten years).
The search is also the full-grid search wherever that one resolves its grid (a season), and
its PDM kernel is the statistic's definition."""

from __future__ import annotations

import numpy as np
import pytest
from periodic_lightcurves import KINDS, light_curve

from clinepipe.variability import periods
from clinepipe.variability.periods import find_period, pdm_theta


def _recovered(t, found, truth) -> bool:
    return found is not None and abs(1 / found.period - 1 / truth) * np.ptp(t) < 0.25


def _stars(sampling: str, per_kind: int, first_seed: int = 100):
    for kind in KINDS:
        for seed in range(first_seed, first_seed + per_kind):
            rng = np.random.default_rng([seed, KINDS.index(kind)])
            yield kind, light_curve(rng, kind, sampling,
                                    periods=(0.05, 0.5) if sampling == "short" else (0.05, 8.0))


def test_pdm_theta_is_the_pooled_variance_of_two_bin_grids_offset_by_half_a_bin():
    """The kernel against the definition written out per frequency (one bin grid, then the
    grid shifted by half a bin; pooled within-bin variance over the total variance)."""
    rng = np.random.default_rng(5)
    t = np.sort(rng.uniform(0, 30, 157))
    y = np.sin(2 * np.pi * t / 1.7) + rng.normal(0, 0.3, t.size)
    freqs = np.linspace(0.1, 5, 311)
    n_bins = 19

    def definition(f):
        thetas = []
        for shift in (0.0, 0.5 / n_bins):
            phase = np.mod(f * (t - t[0]) + shift, 1.0)
            b = np.minimum((phase * n_bins).astype(int), n_bins - 1)
            groups = [y[b == i] for i in range(n_bins) if np.any(b == i)]
            within = sum(np.sum((g - g.mean()) ** 2) for g in groups) / (y.size - len(groups))
            thetas.append(within / np.var(y, ddof=1))
        return np.mean(thetas)

    expected = np.array([definition(f) for f in freqs])
    np.testing.assert_allclose(pdm_theta(t, y, freqs, n_bins), expected, rtol=1e-9)


def test_ten_years_of_points_give_the_true_period_of_every_kind_of_variable():
    """3000 points over 3650 days (seasons, weather, 1-3 points a night): every star of
    every kind recovered. (On 25 other such stars both this search and the one before it, 8-35
    s a star, missed 2: before, a sinusoid and a sawtooth, as its PDM over 200,000 frequencies
    under-resolves a ten-year span; now two eclipsing binaries, at 2P and P/6.)"""
    missed = [(kind, round(lc[3], 5), find_period(*lc[:3]))
              for kind, lc in _stars("archive", 5) if not _recovered(lc[0], find_period(*lc[:3]),
                                                                   lc[3])]
    assert missed == []


@pytest.mark.parametrize("sampling, at_least, every_smooth_one",
                         [("season", 35, True), ("short", 33, False)])
def test_a_season_and_two_nights_give_the_true_period(sampling, at_least, every_smooth_one):
    """60 nights over 120 days, and 2-3 nights of 60 points: at least ``at_least`` of 40 stars
    (10 of each kind; found: 36 and 34; the search before this one found 37 and 34 of the
    same stars: on two nights it is the same search, on a season one binary differs).
    Eclipsing binaries are most misses: with few points in eclipse, unequal minima are seen
    where there are none or missed (2P, P/2); on two nights a period near 1/3 d aliases."""
    found = [(kind, lc[3], _recovered(lc[0], find_period(*lc[:3]), lc[3]))
             for kind, lc in _stars(sampling, 10)]
    print(sampling, "missed", [(k, round(p, 5)) for k, p, ok in found if not ok])
    assert sum(ok for _, _, ok in found) >= at_least
    if every_smooth_one:
        assert all(ok for kind, _, ok in found if kind in ("sinusoid", "sawtooth"))


def test_the_candidate_search_finds_what_the_full_grid_search_finds(monkeypatch):
    """On a season the 200,000-frequency grid resolves PDM's minima, and the full search (every
    frequency, astropy's default Lomb-Scargle: the search before the candidate search) costs
    ~1 s a star. Searching PDM only around the Lomb-Scargle peaks and their sub-multiples
    gives the same period (to a quarter cycle over the span) for every star but eclipsing
    binaries, where at most one in four differs (the odd-even test of unequal minima flips
    on a slightly different frequency), and recovers the truth no less often but for one."""
    stars = [(kind, lc) for kind, lc in _stars("season", 4, first_seed=300)]
    fast = [find_period(*lc[:3]) for _, lc in stars]
    monkeypatch.setattr(periods, "FULL_GRID_COST", float("inf"))
    full = [find_period(*lc[:3]) for _, lc in stars]
    differ = [kind for (kind, lc), f, g in zip(stars, fast, full)
              if abs(1 / f.period - 1 / g.period) * np.ptp(lc[0]) >= 0.25]
    print("differ", differ)
    assert set(differ) <= {"EA"} and len(differ) <= 1
    assert sum(_recovered(lc[0], f, lc[3]) for (_, lc), f in zip(stars, fast)) >= \
        sum(_recovered(lc[0], g, lc[3]) for (_, lc), g in zip(stars, full)) - 1


def test_the_search_is_deterministic():
    _, (t, y, err, _) = next(_stars("archive", 1, first_seed=7))
    assert find_period(t, y, err) == find_period(t.copy(), y.copy(), err.copy())


@pytest.mark.parametrize("with_errors", [True, False])
def test_the_false_alarm_probability_is_astropys_baluev_estimate(with_errors):
    """``baluev_fap`` (no scipy import) against astropy's own ``false_alarm_probability`` for
    the highest peak over the search's range: noise alone and sinusoids of growing amplitude
    (FAP from ~1 down to 1e-200), 12 to 3,000 points over two nights to ten years, with and
    without errors; agreement to 1e-10 relative (the two log-gamma functions differ in their
    last bits)."""
    from astropy.timeseries import LombScargle

    rng = np.random.default_rng(5)
    faps = []
    for n, span in ((12, 0.3), (60, 2.0), (400, 120.0), (3000, 3650.0)):
        for amp in (0.0, 0.01, 0.03, 0.3):
            t = 2_460_000.5 + np.sort(rng.uniform(0, span, n))
            err = rng.uniform(0.005, 0.05, n) if with_errors else None
            y = amp * np.sin(2 * np.pi * t / 0.37) + rng.normal(0, 0.02, n)
            fmin, fmax = max(0.1, 0.5 / span), 50.0
            ls = LombScargle(t, y, err)
            z = float(ls.power(np.linspace(fmin, fmax, 4000)).max())
            # astropy given times from their mean: given the Julian dates themselves, its
            # variance of the times cancels to nonsense over a night (the old NaN below)
            centred = LombScargle(t - t.mean(), y, err)
            want = float(centred.false_alarm_probability(z, minimum_frequency=fmin,
                                                         maximum_frequency=fmax))
            got = periods.baluev_fap(z, fmin, fmax, t, err)
            assert got == pytest.approx(want, rel=1e-10, abs=0), (n, span, amp)
            faps.append(want)
    assert max(faps) > 0.1 and min(faps) < 1e-30  # the range of FAPs was covered


def test_the_false_alarm_probability_of_a_night_does_not_depend_on_the_epoch():
    """Two nights of points at JD 2.46e6 and the same points at JD 0 (the variance of the
    times, which sets the effective bandwidth, must not cancel away in the dates' squares)."""
    rng = np.random.default_rng(9)
    t = np.sort(rng.uniform(0, 0.3, 40))
    err = np.full(t.size, 0.01)
    for z in (0.2, 0.5, 0.8):
        at_zero = periods.baluev_fap(z, 0.1, 50.0, t, err)
        assert 0 < at_zero < 1
        assert periods.baluev_fap(z, 0.1, 50.0, t + 2_460_000.5, err) == \
            pytest.approx(at_zero, rel=1e-9)
