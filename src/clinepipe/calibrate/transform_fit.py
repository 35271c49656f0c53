"""Transformation coefficients fitted from a night on a standard field: York's straight line
through (colour, magnitude difference) points with errors in both, errors clustered by star.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinepipe.calibrate.transform import (
    COEFFICIENT_NAMES,
    COLOUR_COEFFICIENTS,
    MAGNITUDE_COEFFICIENTS,
    MAX_PAIR_GAP,
    MIN_COLOUR_RANGE,
    MIN_STARS,
    Coefficient,
    NightPhotometry,
    group_mean,
    pair_frames,
    partner_index,
)


def _york_slope(x, y, sxx, syy, sxy, group, n_groups, start: float):
    """Slope of ``y = a_g + b x`` with errors in both variables (York et al. 2004, Am. J. Phys.
    72, 367, with an intercept per group); returns (b, W, U, V, u) for the errors."""
    b = start
    for _ in range(100):
        w = 1.0 / np.maximum(syy + b * b * sxx - 2.0 * b * sxy, 1e-12)
        u_ = x - group_mean(x, w, group, n_groups)
        v_ = y - group_mean(y, w, group, n_groups)
        beta = w * (u_ * syy + b * v_ * sxx - (b * u_ + v_) * sxy)
        den = np.sum(w * beta * u_)
        if den == 0:
            break
        new = float(np.sum(w * beta * v_) / den)
        done = abs(new - b) < 1e-12 * max(1.0, abs(new))
        b = new
        if done:
            break
    w = 1.0 / np.maximum(syy + b * b * sxx - 2.0 * b * sxy, 1e-12)
    u_ = x - group_mean(x, w, group, n_groups)
    v_ = y - group_mean(y, w, group, n_groups)
    beta = w * (u_ * syy + b * v_ * sxx - (b * u_ + v_) * sxy)
    adj = group_mean(x, w, group, n_groups) + beta  # York's least-squares adjusted x
    u = adj - group_mean(adj, w, group, n_groups)
    return b, w, u_, v_, u


def fit_slope(name: str, x, y, sxx, syy, sxy, group, star, *, sigma: float = 4.0,
              min_stars: int = MIN_STARS, min_range: float = MIN_COLOUR_RANGE) -> Coefficient:
    """Fit ``y = a_group + T x`` (one intercept per frame or pair of frames, one slope).

    Parameters
    ----------
    x, y : array (n,)
        The points (mag).
    sxx, syy, sxy : array (n,)
        Variances of x and y and their covariance (mag²); a catalog magnitude in both x and
        y (``V - v`` against ``B - V``) makes them correlated.
    group : array (n,) of int
        Frame (or pair of frames) of each point: its intercept is the zero point.
    star : array (n,) of int
        Star of each point. A star's catalog error is the same on every frame, so the error of
        ``T`` is the larger of the formal one (scaled by the reduced chi-square when above 1)
        and the cluster-robust one over stars.
    sigma : float
        Points further than ``sigma`` (times the robust scatter when above 1) of their
        expected error from the line are clipped, iteratively.

    Returns
    -------
    Coefficient
        ``value`` ± ``error`` (1 sigma); NaN with a reason below ``min_stars`` stars or a
        colour range below ``min_range`` mag.
    """
    x, y, sxx, syy, sxy = (np.asarray(a, float) for a in (x, y, sxx, syy, sxy))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(sxx) & np.isfinite(syy) & (syy > 0)
    group, star = np.asarray(group), np.asarray(star)
    n_stars = np.unique(star[ok]).size
    if n_stars < min_stars:
        return Coefficient(name, np.nan, np.nan, int(ok.sum()), n_stars,
                           reason=f"too few stars ({n_stars} < {min_stars})")
    colour = x if name in MAGNITUDE_COEFFICIENTS else y
    if np.ptp(colour[ok]) < min_range:
        return Coefficient(name, np.nan, np.nan, int(ok.sum()), n_stars,
                           reason=f"colour range {np.ptp(colour[ok]):.2f} mag < {min_range}")
    use = ok.copy()
    b = 1.0 if name in COLOUR_COEFFICIENTS else 0.0
    _, gall = np.unique(group, return_inverse=True)
    for _ in range(20):
        b, w, u_, v_, u = _york_slope(x[use], y[use], sxx[use], syy[use], sxy[use], gall[use],
                                      gall.max() + 1, b)
        # every point's residual from its group's line, in units of its expected error
        per_group = np.full(gall.max() + 1, np.nan)
        per_group[gall[use]] = (y[use] - v_) - b * (x[use] - u_)  # the group's intercept
        wall = 1.0 / np.maximum(syy + b * b * sxx - 2.0 * b * sxy, 1e-12)
        z = (y - per_group[gall] - b * x) * np.sqrt(wall)
        scale = 1.4826 * float(np.median(np.abs(z[use])))
        new = ok & np.isfinite(z) & (np.abs(z) <= sigma * max(1.0, scale))
        if np.array_equal(new, use) or np.unique(star[new]).size < min_stars:
            break
        use = new
    b, w, u_, v_, u = _york_slope(x[use], y[use], sxx[use], syy[use], sxy[use], gall[use],
                                  gall.max() + 1, b)
    n = int(use.sum())
    n_groups = int(np.unique(group[use]).size)
    sum_wu2 = float(np.sum(w * u * u))
    resid = v_ - b * u_
    dof = max(n - n_groups - 1, 1)
    chi2 = float(np.sum(w * resid * resid) / dof)
    error = np.sqrt(1.0 / sum_wu2) * max(1.0, np.sqrt(chi2)) if sum_wu2 > 0 else np.nan
    error = max(error, _clustered_error(w * u * resid, star[use], sum_wu2))
    return Coefficient(name, float(b), float(error), n, int(np.unique(star[use]).size), chi2)


def _clustered_error(score, star, sum_wu2: float) -> float:
    """Sandwich error of a slope whose points come in correlated groups (stars)."""
    _, g = np.unique(star, return_inverse=True)
    per_star = np.bincount(g, weights=score)
    k = per_star.size
    if k < 3 or sum_wu2 <= 0:
        return 0.0
    return float(np.sqrt(k / (k - 1) * np.sum(per_star ** 2)) / sum_wu2)


@dataclass(frozen=True)
class FitPoints:
    """The points of one coefficient's fit (see :func:`fit_slope`): ``x``, ``y`` (mag), their
    variances and covariance (mag²), the ``group`` (frame or pair) and ``star`` of each."""

    x: np.ndarray
    y: np.ndarray
    sxx: np.ndarray
    syy: np.ndarray
    sxy: np.ndarray
    group: np.ndarray
    star: np.ndarray


def fit_points(night: NightPhotometry, name: str, *,
               max_gap: float = MAX_PAIR_GAP) -> FitPoints | None:
    """The comparison-star points that fit coefficient ``name`` on this night, or None when
    the night has no frame of the band it needs (or the catalog no value of a band).

    ``Tm_pq``: ``x = P - Q`` (catalog), ``y = M - m`` over the frames of band ``m``;
    ``Tpq``: ``x = p - q`` (instrumental, each frame of ``p`` with the frame of ``q`` nearest
    in time within ``max_gap`` days), ``y = P - Q`` (catalog)."""
    bands = set(np.asarray(night.frame_band).astype(str))
    band_of = np.asarray(night.frame_band).astype(str)[night.frame]
    comp = np.asarray(night.comparison, bool) & np.isfinite(night.inst)
    ierr = np.where(np.isfinite(night.inst_err) & (night.inst_err > 0), night.inst_err, 0.01)
    if name in MAGNITUDE_COEFFICIENTS:
        m, (p, q) = MAGNITUDE_COEFFICIENTS[name]
        if m not in bands:
            return None
        (cm, em), (cp, ep), (cq, eq) = night.cat(m), night.cat(p), night.cat(q)
        sel = comp & (band_of == m) & np.isfinite(cm) & np.isfinite(cp) & np.isfinite(cq)
        sign = 1.0 if m == p else -1.0  # M appears in the colour P - Q with this sign
        return FitPoints((cp - cq)[sel], (cm - night.inst)[sel], (ep ** 2 + eq ** 2)[sel],
                         (em ** 2 + ierr ** 2)[sel], (sign * em ** 2)[sel], night.frame[sel],
                         night.star[sel]) if sel.any() else None
    p, q = COLOUR_COEFFICIENTS[name]
    if not {p, q} <= bands:
        return None
    partner = pair_frames(night.frame_band, night.frame_jd, p, q, anchor=p, max_gap=max_gap)
    j = partner_index(night, partner)
    jj = np.clip(j, 0, None)
    (cp, ep), (cq, eq) = night.cat(p), night.cat(q)
    sel = comp & (band_of == p) & (j >= 0) & comp[jj] & np.isfinite(cp) & np.isfinite(cq)
    return FitPoints((night.inst - night.inst[jj])[sel], (cp - cq)[sel],
                     (ierr ** 2 + ierr[jj] ** 2)[sel], (ep ** 2 + eq ** 2)[sel],
                     np.zeros(int(sel.sum())), night.frame[sel],
                     night.star[sel]) if sel.any() else None


def fit_transform(night: NightPhotometry, *, max_gap: float = MAX_PAIR_GAP,
                  sigma: float = 4.0) -> dict[str, Coefficient]:
    """Fit every coefficient the night allows from its comparison stars' instrumental and
    catalog standard magnitudes (a night on a standard field: many stars over a wide colour
    range).

    ``Tm_pq``: ``M - m = Tm_pq (P - Q) + ZP(frame)`` over the frames of band ``m``;
    ``Tpq``: ``P - Q = Tpq (p - q) + ZP(pair)`` over pairs of frames of bands ``p`` and
    ``q`` nearest in time (within ``max_gap`` days). Errors in both variables (catalog and
    instrumental, with their correlation) are weighed (:func:`fit_slope`, :func:`fit_points`).

    Returns
    -------
    dict
        {name: Coefficient}, in the order of :data:`COEFFICIENT_NAMES`, for each coefficient
        the night has points for (NaN with a reason when they cannot constrain it).
    """
    out: dict[str, Coefficient] = {}
    for name in COEFFICIENT_NAMES:
        pts = fit_points(night, name, max_gap=max_gap)
        if pts is not None:
            out[name] = fit_slope(name, pts.x, pts.y, pts.sxx, pts.syy, pts.sxy, pts.group,
                                  pts.star, sigma=sigma)
    return out
