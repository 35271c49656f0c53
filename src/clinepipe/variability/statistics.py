"""Light-curve statistics: the one implementation of the reduced chi-square, the isolated-outlier
filter, the per-filter means and the period search that every command and page uses
(``clinepipe variables``, ``stars``, ``lc``, the web dashboard, the morning report, the AAVSO
check-star rule and the suspected-variable search).

Everything is vectorised over groups (a star and a filter, or a night, a star and a filter):
points carry labels, groups are found with :func:`numpy.unique`, sums with
:func:`numpy.bincount`; the only Python loop is the period search, once per variable star.

Magnitudes and their errors are in mag, times in days (BJD_TDB, or JD UTC when a point has no
barycentric time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "FILTER_ORDER",
    "MAX_PERIOD",
    "MIN_MAG_ERR",
    "MIN_PERIOD",
    "MIN_POINTS",
    "OUTLIER_NSIGMA",
    "VARIABLE_CHI2",
    "GroupStatistics",
    "LightcurveStatistics",
    "chi2_reduced",
    "floor_errors",
    "group_statistics",
    "isolated_outliers",
    "lightcurve_statistics",
    "ordered_filters",
    "star_period",
]

#: errors below this (mag) weigh as this much: a zero or sub-mmag error from a saturated or
#: mis-stored point must not dominate a weighted mean or a chi-square
MIN_MAG_ERR = 1e-4
#: a single point this many sigma off (while its neighbours in time are calm) is an outlier
OUTLIER_NSIGMA = 5.0
#: periods are searched only for stars whose largest per-filter reduced chi-square exceeds
#: this: a search on noise costs time and means nothing
VARIABLE_CHI2 = 3.0
#: fewest points (after the outlier filter) of a star in one filter for its statistics
MIN_POINTS = 10
#: period search range (days)
MIN_PERIOD = 0.02
MAX_PERIOD = 10.0
#: preferred order of filters in tables; others follow by number of points
FILTER_ORDER = ("U", "B", "V", "R", "I")


def floor_errors(err) -> np.ndarray:
    """Magnitude errors (mag) as floats, missing / NaN / below :data:`MIN_MAG_ERR` raised to it."""
    e = np.asarray([np.nan if v is None else v for v in err] if isinstance(err, list) else err,
                   dtype=float)
    return np.where(np.isfinite(e) & (e > MIN_MAG_ERR), e, MIN_MAG_ERR)


def chi2_reduced(mag, err) -> float:
    """Reduced chi-square of magnitudes about their error-weighted mean (dimensionless).

    Parameters
    ----------
    mag, err : array_like (n,)
        Magnitudes and their 1-sigma errors (mag); errors are floored at :data:`MIN_MAG_ERR`.

    Returns
    -------
    float
        ``sum(((mag - mean) / err)**2) / (n - 1)``; NaN for fewer than two points.
    """
    stats = group_statistics((np.zeros(np.size(mag), dtype=int),), np.arange(np.size(mag)),
                             mag, err, min_points=2)
    return float(stats.chi2_red[0]) if stats.n.size else float("nan")


def _codes(labels) -> tuple[np.ndarray, int]:
    """Group code (0..n_groups-1) of each point from a tuple of per-point label arrays."""
    code = None
    for lab in labels:
        _, inv = np.unique(np.asarray(lab), return_inverse=True)
        inv = inv.ravel().astype(np.int64)
        if code is None:
            code = inv
        else:
            _, code = np.unique(code * (int(inv.max()) + 1 if inv.size else 1) + inv,
                                return_inverse=True)
            code = code.ravel().astype(np.int64)
    if code is None or code.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    return code, int(code.max()) + 1


def _group_median(code: np.ndarray, n_groups: int, values: np.ndarray) -> np.ndarray:
    """Median of ``values`` in each group (NaN for an empty group)."""
    v = values[np.lexsort((values, code))]
    counts = np.bincount(code, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    med = np.full(n_groups, np.nan)
    ok = counts > 0
    med[ok] = 0.5 * (v[(starts + (counts - 1) // 2)[ok]] + v[(starts + counts // 2)[ok]])
    return med


def isolated_outliers(t, mag, err, groups, sequence=None, *,
                      nsigma: float = OUTLIER_NSIGMA) -> np.ndarray:
    """Single points far off while their neighbours in time agree: a cosmic ray or a satellite
    in the aperture, not variability, since an eclipse or a flare lasts several exposures.

    Parameters
    ----------
    t : array_like (n,)
        Times (days).
    mag, err : array_like (n,)
        Magnitudes and errors (mag).
    groups : tuple of array_like (n,)
        Labels whose combination makes the group a point's deviation is measured in (e.g.
        ``(star, filter)``): ``z = |mag - median| / hypot(err, 1.4826 MAD)``.
    sequence : tuple of array_like (n,), optional
        Labels of the time series whose neighbouring points must be calm (``z < nsigma / 2``),
        e.g. ``(star,)`` for any filter's exposure before and after; default ``groups``.
    nsigma : float
        Deviation (in sigma) that makes a point an outlier.

    Returns
    -------
    ndarray of bool (n,)
    """
    t = np.asarray(t, float)
    mag = np.asarray(mag, float)
    err = floor_errors(err)
    out = np.zeros(mag.size, dtype=bool)
    if mag.size == 0:
        return out
    g, ng = _codes(groups)
    med = _group_median(g, ng, mag)[g]
    dev = np.abs(mag - med)
    scatter = 1.4826 * _group_median(g, ng, dev)[g]
    z = dev / np.sqrt(err ** 2 + scatter ** 2)
    s, _ = _codes(sequence if sequence is not None else groups)
    order = np.lexsort((t, s))
    zs, ss = z[order], s[order]
    same = ss[1:] == ss[:-1]
    calm_before = np.concatenate([[True], ~same | (zs[:-1] < nsigma / 2)])
    calm_after = np.concatenate([~same | (zs[1:] < nsigma / 2), [True]])
    out[order] = (zs > nsigma) & calm_before & calm_after
    return out


@dataclass(frozen=True)
class GroupStatistics:
    """Per-group statistics (arrays of one value per group, in the order of the group labels).

    ``labels`` holds, per label array given, the group's label; ``n`` the number of points;
    ``mean_mag`` the error-weighted mean (mag); ``rms`` the sample standard deviation (mag,
    NaN for one point); ``chi2_red`` the reduced chi-square about the weighted mean and
    ``stetson_j`` Stetson's J from consecutive pairs in time (both NaN for one point).
    """

    labels: tuple
    n: np.ndarray
    mean_mag: np.ndarray
    rms: np.ndarray
    chi2_red: np.ndarray
    stetson_j: np.ndarray


def group_statistics(groups, t, mag, err, *, min_points: int = 1) -> GroupStatistics:
    """Weighted mean, rms, reduced chi-square and Stetson J of each group of points.

    Parameters
    ----------
    groups : tuple of array_like (n,)
        Per-point labels; their combination is the group (e.g. ``(star, filter)``).
    t : array_like (n,)
        Times (days), ordering the pairs of Stetson J.
    mag, err : array_like (n,)
        Magnitudes and 1-sigma errors (mag); errors floored at :data:`MIN_MAG_ERR`.
    min_points : int
        Groups with fewer points are left out of the result.
    """
    t = np.asarray(t, float)
    mag = np.asarray(mag, float)
    err = floor_errors(err)
    labels = tuple(np.asarray(lab) for lab in groups)
    g, ng = _codes(labels)
    n = np.bincount(g, minlength=ng).astype(float)
    w = 1.0 / err ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(g, w * mag, ng) / np.bincount(g, w, ng)
        resid = mag - mean[g]
        dof = n - 1
        chi2 = np.where(dof > 0, np.bincount(g, (resid / err) ** 2, ng) / dof, np.nan)
        plain = np.bincount(g, mag, ng) / n
        rms = np.where(dof > 0, np.sqrt(np.bincount(g, (mag - plain[g]) ** 2, ng) / dof), np.nan)
        order = np.lexsort((t, g))
        go = g[order]
        delta = (np.sqrt(n / dof)[g] * resid / err)[order]
        pair = go[1:] == go[:-1]
        pk = (delta[:-1] * delta[1:])[pair]
        n_pairs = np.bincount(go[1:][pair], minlength=ng)
        stetson = np.where(n_pairs > 0, np.bincount(go[1:][pair], np.sign(pk) * np.sqrt(np.abs(pk)),
                                                    ng) / np.maximum(n_pairs, 1), np.nan)
    first = np.full(ng, -1)
    first[g[::-1]] = np.arange(g.size)[::-1]
    keep = n >= min_points
    return GroupStatistics(tuple(lab[first[keep]] for lab in labels), n[keep].astype(int),
                           mean[keep], rms[keep], chi2[keep], stetson[keep])


@dataclass(frozen=True)
class LightcurveStatistics:
    """:func:`lightcurve_statistics` of many stars: one row per (star, filter) in ``groups``
    (``groups.labels == (star, filter)``), the period of each star that was searched
    (``periods[star]``, None when the data cannot constrain one) and which input points were
    used (``used``: unflagged, finite, not an isolated outlier, in a group with enough points).
    """

    groups: GroupStatistics
    periods: dict = field(default_factory=dict)
    used: np.ndarray | None = None


def lightcurve_statistics(star, filt, t, mag, err, *, flags=None, min_points: int = MIN_POINTS,
                          find_periods: bool = True, variable_chi2: float = VARIABLE_CHI2,
                          min_period: float = MIN_PERIOD,
                          max_period: float = MAX_PERIOD) -> LightcurveStatistics:
    """Per star and filter statistics of calibrated light curves, and each variable star's period.

    Flagged points (``flags != 0``) and points without a finite magnitude are left out, then
    isolated outliers (:func:`isolated_outliers`: deviation within the star's filter,
    neighbours in time in any filter). Groups with fewer than ``min_points`` points left are
    dropped. A star whose largest reduced chi-square exceeds ``variable_chi2`` gets a period
    from :func:`star_period` (all its filters together).

    Parameters
    ----------
    star, filt : array_like (n,)
        Star id and filter of each point.
    t : array_like (n,)
        Times (days; BJD_TDB, else JD UTC).
    mag, err : array_like (n,)
        Calibrated magnitudes and errors (mag).
    flags : array_like of int (n,), optional
        Measurement flags; non-zero points are not used.
    min_points, find_periods, variable_chi2, min_period, max_period
        See above; the period range is in days.
    """
    star = np.asarray(star)
    filt = np.asarray(filt).astype(str)
    t = np.asarray(t, float)
    mag = np.asarray([np.nan if v is None else v for v in mag] if isinstance(mag, list) else mag,
                     dtype=float)
    err = floor_errors(err)
    ok = np.isfinite(mag) & np.isfinite(t)
    if flags is not None:
        ok &= np.asarray(flags) == 0
    idx = np.flatnonzero(ok)
    outlier = isolated_outliers(t[idx], mag[idx], err[idx], (star[idx], filt[idx]), (star[idx],))
    idx = idx[~outlier]
    g, ng = _codes((star[idx], filt[idx]))
    idx = idx[np.bincount(g, minlength=ng)[g] >= max(int(min_points), 1)]
    stats = group_statistics((star[idx], filt[idx]), t[idx], mag[idx], err[idx])
    used = np.zeros(mag.size, dtype=bool)
    used[idx] = True
    periods: dict = {}
    if find_periods and stats.n.size:
        # group_statistics numbers the groups as _codes does: the same order
        g, _ = _codes((star[idx], filt[idx]))
        centred = mag[idx] - stats.mean_mag[g]
        stars, s_of_group = np.unique(stats.labels[0], return_inverse=True)
        best = np.full(stars.size, -np.inf)
        np.maximum.at(best, s_of_group.ravel(), stats.chi2_red)
        for s in stars[best > variable_chi2].tolist():
            sel = star[idx] == s
            periods[s] = star_period(t[idx][sel], centred[sel], err[idx][sel],
                                     min_period=min_period, max_period=max_period)
    return LightcurveStatistics(stats, periods, used)


def star_period(t, y, err, *, min_period: float = MIN_PERIOD, max_period: float = MAX_PERIOD):
    """The period of one star from its points in every filter, each filter's mean removed.

    Points are put in time order first, so the answer does not depend on the order they came in
    (the PDM phases count from the first point). :func:`~clinepipe.variability.periods.find_period`
    does the search: Lomb-Scargle, PDM, and the doubling of eclipsing binaries' periods.

    Returns
    -------
    clinepipe.variability.periods.PeriodResult or None
        Period in days with its false-alarm probability; None when the data cannot constrain one.
    """
    from clinepipe.variability.periods import find_period

    t = np.asarray(t, float)
    order = np.argsort(t, kind="stable")
    return find_period(t[order], np.asarray(y, float)[order], floor_errors(err)[order],
                       min_period=min_period, max_period=max_period)


def ordered_filters(counts: dict) -> list[str]:
    """Filter names in table order: :data:`FILTER_ORDER` first, then by ``counts`` (points)."""
    return sorted(counts, key=lambda f: (FILTER_ORDER.index(f) if f in FILTER_ORDER
                                         else len(FILTER_ORDER), -counts[f], f))
