"""Transformation to the standard system, as AAVSO observers do it (pure numpy).

The conventions are those of the AAVSO CCD Photometry Guide (chapter "Transforming your
observations") and of AAVSO's Transform Applier. Lower-case letters are instrumental
magnitudes (``b = -2.5 log10(flux / exptime)``), capitals standard (catalog) magnitudes:

* a *magnitude coefficient* ``Tm_pq`` (``Tv_bv``, ``Tb_bv``, ``Tr_vr`` …) is the slope of
  ``M - m`` against the standard colour ``P - Q``:  ``M = m + Tm_pq (P - Q) + ZPm``;
* a *colour coefficient* ``Tpq`` (``Tbv``, ``Tvr`` …) turns an instrumental colour into a
  standard one:  ``P - Q = Tpq (p - q) + ZPpq``.

The zero points ``ZPm`` (per frame) and ``ZPpq`` (per pair of frames in the two filters, taken
nearest in time) come from the frame's comparison stars, which is the ensemble form of
AAVSO's ``V = v + Tv_bv [(B - V) - (B - V)c] + (V - v)c``.

:func:`fit_transform` fits the coefficients from a night on a standard field;
:func:`apply_transform` transforms the measurements of a night with two or more filters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinepipe.catalogs.types import DEFAULT_CATALOG_ERROR

__all__ = ["MAGNITUDE_COEFFICIENTS", "COLOUR_COEFFICIENTS", "COEFFICIENT_NAMES", "Coefficient",
           "NightPhotometry", "TransformResult", "FitPoints", "fit_points", "fit_slope",
           "fit_transform", "apply_transform",
           "implied_colour_coefficient", "pair_frames", "transform_notes"]

#: magnitude coefficients AAVSO names, in the order they are preferred for a band:
#: name -> (band transformed, (blue band, red band) of the colour)
MAGNITUDE_COEFFICIENTS = {
    "Tb_bv": ("B", ("B", "V")), "Tv_bv": ("V", ("B", "V")), "Tv_vr": ("V", ("V", "R")),
    "Tv_vi": ("V", ("V", "I")), "Tr_vr": ("R", ("V", "R")), "Tr_ri": ("R", ("R", "I")),
    "Ti_vi": ("I", ("V", "I")), "Ti_ri": ("I", ("R", "I")),
}
#: colour coefficients: name -> (blue band, red band)
COLOUR_COEFFICIENTS = {"Tbv": ("B", "V"), "Tvr": ("V", "R"), "Tvi": ("V", "I"),
                       "Tri": ("R", "I")}
COEFFICIENT_NAMES = tuple(MAGNITUDE_COEFFICIENTS) + tuple(COLOUR_COEFFICIENTS)

#: fewest stars, and smallest standard colour range (mag), to fit a coefficient
MIN_STARS = 8
MIN_COLOUR_RANGE = 0.3
#: default longest time between the two frames of a colour (days): 1 hour
MAX_PAIR_GAP = 1.0 / 24


@dataclass(frozen=True)
class Coefficient:
    """One fitted coefficient: ``value`` ± ``error`` (1 sigma); NaN and a ``reason`` when it
    could not be fitted. ``n_used`` points of ``n_stars`` stars after clipping."""

    name: str
    value: float
    error: float
    n_used: int = 0
    n_stars: int = 0
    chi2: float = float("nan")          #: reduced chi-square of the fit
    reason: str = ""


@dataclass(frozen=True)
class NightPhotometry:
    """The measurements of one night, flat arrays (n measurements, f frames, k stars).

    ``frame`` (n,) index into the frame arrays; ``star`` (n,) index into the star arrays;
    ``inst``/``inst_err`` (n,) instrumental magnitude and its 1-sigma error (mag);
    ``comparison`` (n,) bool: a constant catalog star, unflagged, usable as a comparison star;
    ``frame_band`` (f,) the standard band each frame measures (``B``, ``V``, ``R``, ``I`` or
    anything else, which is left alone); ``frame_jd`` (f,) mid-exposure JD (days);
    ``catalog`` {band: (k,) standard magnitude, NaN when unknown}, ``catalog_err`` likewise.
    """

    frame: np.ndarray
    star: np.ndarray
    inst: np.ndarray
    inst_err: np.ndarray
    comparison: np.ndarray
    frame_band: np.ndarray
    frame_jd: np.ndarray
    catalog: dict
    catalog_err: dict

    def cat(self, band: str) -> tuple[np.ndarray, np.ndarray]:
        """(mag, err) of ``band`` per measurement (NaN where the catalog has none)."""
        k = self.star
        if band not in self.catalog:
            return np.full(k.size, np.nan), np.full(k.size, np.nan)
        mag = np.asarray(self.catalog[band], float)[k]
        err = (np.asarray(self.catalog_err[band], float)[k] if band in self.catalog_err
               else np.full(k.size, np.nan))
        # a catalog without errors: its magnitudes are taken as good to 0.03 mag
        return mag, np.where(np.isfinite(err) & (err > 0), err, DEFAULT_CATALOG_ERROR)


@dataclass(frozen=True)
class TransformResult:
    """Transformed magnitudes of :func:`apply_transform`, per measurement (NaN where not
    transformed): ``mag``/``mag_err`` (mag), the star's standard colour ``colour``/
    ``colour_err`` (mag) used for it, ``coefficient`` (n,) the magnitude coefficient's name
    ("" where not transformed); ``notes`` {magnitude coefficient: "Tv_bv=0.034 Tbv=1.020"};
    ``reasons`` {band: why its frames were not transformed}."""

    mag: np.ndarray
    mag_err: np.ndarray
    colour: np.ndarray
    colour_err: np.ndarray
    coefficient: np.ndarray
    notes: dict
    reasons: dict


# ----------------------------------------------------------------------------- fitting

def _group_mean(values, weights, group, n_groups):
    sw = np.bincount(group, weights=weights, minlength=n_groups)
    s = np.bincount(group, weights=weights * values, minlength=n_groups)
    return (s / np.where(sw > 0, sw, 1.0))[group]


def _york_slope(x, y, sxx, syy, sxy, group, n_groups, start: float):
    """Slope of ``y = a_g + b x`` with errors in both variables (York et al. 2004, Am. J. Phys.
    72, 367, with an intercept per group); returns (b, W, U, V, u) for the errors."""
    b = start
    for _ in range(100):
        w = 1.0 / np.maximum(syy + b * b * sxx - 2.0 * b * sxy, 1e-12)
        u_ = x - _group_mean(x, w, group, n_groups)
        v_ = y - _group_mean(y, w, group, n_groups)
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
    u_ = x - _group_mean(x, w, group, n_groups)
    v_ = y - _group_mean(y, w, group, n_groups)
    beta = w * (u_ * syy + b * v_ * sxx - (b * u_ + v_) * sxy)
    adj = _group_mean(x, w, group, n_groups) + beta  # York's least-squares adjusted x
    u = adj - _group_mean(adj, w, group, n_groups)
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


def pair_frames(frame_band, frame_jd, blue: str, red: str, anchor: str,
                max_gap: float = MAX_PAIR_GAP) -> np.ndarray:
    """For every frame, the frame of the other band of the colour ``blue - red`` nearest in
    time (index), or -1: for frames not of band ``anchor``, or without such a frame within
    ``max_gap`` days.

    Parameters
    ----------
    frame_band : array (f,) of str
    frame_jd : array (f,)
        Mid-exposure times (days).
    anchor : str
        ``blue`` or ``red``: the band whose frames get a partner.
    """
    band = np.asarray(frame_band).astype(str)
    jd = np.asarray(frame_jd, float)
    other = red if anchor == blue else blue
    cand = np.flatnonzero(band == other)
    out = np.full(band.size, -1)
    mine = np.flatnonzero(band == anchor)
    if cand.size == 0 or mine.size == 0:
        return out
    order = cand[np.argsort(jd[cand], kind="stable")]
    t = jd[order]
    pos = np.searchsorted(t, jd[mine])
    left = np.clip(pos - 1, 0, t.size - 1)
    right = np.clip(pos, 0, t.size - 1)
    pick = np.where(np.abs(jd[mine] - t[left]) <= np.abs(t[right] - jd[mine]), left, right)
    gap = np.abs(t[pick] - jd[mine])
    out[mine] = np.where(gap <= max_gap, order[pick], -1)
    return out


def _partner_index(night: NightPhotometry, partner_frame: np.ndarray) -> np.ndarray:
    """For each measurement, the index of the same star's measurement on its frame's partner
    frame, or -1."""
    if night.star.size == 0:
        return np.zeros(0, dtype=int)
    n_star = int(night.star.max()) + 1
    key = night.frame.astype(np.int64) * n_star + night.star
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    pf = partner_frame[night.frame]
    want = np.where(pf >= 0, pf.astype(np.int64) * n_star + night.star, -1)
    pos = np.clip(np.searchsorted(sorted_key, want), 0, max(key.size - 1, 0))
    found = (pf >= 0) & (key.size > 0) & (sorted_key[pos] == want)
    return np.where(found, order[pos], -1)


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
    j = _partner_index(night, partner)
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


# ----------------------------------------------------------------------------- applying

def implied_colour_coefficient(coefficients: dict[str, float], blue: str, red: str) -> float:
    """``Tpq`` for the colour ``blue - red``: configured, or implied by both magnitude
    coefficients on that colour (``Tpq = 1 / (1 - Tp_pq + Tq_pq)``, since
    ``P - Q = (p - q) + (Tp_pq - Tq_pq)(P - Q) + const``); NaN when neither."""
    pq = f"T{blue.lower()}{red.lower()}"
    if np.isfinite(coefficients.get(pq, np.nan)):
        return float(coefficients[pq])
    tp = coefficients.get(f"T{blue.lower()}_{blue.lower()}{red.lower()}", np.nan)
    tq = coefficients.get(f"T{red.lower()}_{blue.lower()}{red.lower()}", np.nan)
    if np.isfinite(tp) and np.isfinite(tq) and abs(1.0 - tp + tq) > 1e-6:
        return float(1.0 / (1.0 - tp + tq))
    return float("nan")


def transform_notes(name: str, value: float, colour_name: str, colour_value: float) -> str:
    """``"Tv_bv=0.034 Tbv=1.020"``: the coefficients a transformed magnitude used."""
    return f"{name}={value:.3f} {colour_name}={colour_value:.3f}"


def _weighted_zero_points(delta, var, group, n_groups, sigma: float = 3.0):
    """Per group, the clipped weighted mean of ``delta`` with variances ``var``: (value (G,),
    error (G,), weighted mean weights' sum for reuse)."""
    use = np.isfinite(delta) & np.isfinite(var) & (var > 0)
    extra = np.zeros(n_groups)
    for _ in range(10):
        w = np.where(use, 1.0 / (var + extra[group] ** 2), 0.0)
        sw = np.bincount(group, weights=w, minlength=n_groups)
        zp = np.bincount(group, weights=w * np.where(use, delta, 0.0), minlength=n_groups)
        zp = zp / np.where(sw > 0, sw, 1.0)
        r = np.where(use, delta - zp[group], 0.0)
        n = np.bincount(group, weights=use.astype(float), minlength=n_groups)
        excess = np.bincount(group, weights=np.where(use, r * r - var, 0.0), minlength=n_groups)
        extra = np.sqrt(np.maximum(excess / np.maximum(n, 1.0), 0.0))
        limit = sigma * np.sqrt(var + np.maximum(extra[group], 0.01) ** 2)
        new = use & (np.abs(delta - zp[group]) <= limit)
        if np.array_equal(new, use):
            break
        use = new
    w = np.where(use, 1.0 / (var + extra[group] ** 2), 0.0)
    sw = np.bincount(group, weights=w, minlength=n_groups)
    n = np.bincount(group, weights=use.astype(float), minlength=n_groups)
    chi2 = np.bincount(group, weights=w * np.where(use, delta - zp[group], 0.0) ** 2,
                       minlength=n_groups) / np.maximum(n - 1, 1)
    err = np.sqrt(1.0 / np.where(sw > 0, sw, np.nan)) * np.sqrt(np.maximum(chi2, 1.0))
    zp = np.where(n >= 2, zp, np.nan)
    return zp, err, use


def _colours(night: NightPhotometry, p: str, q: str, t_pq: float, t_pq_err: float,
             anchor: str, max_gap: float):
    """Each measurement's standard colour ``P - Q`` (mag) and error from its frame (band
    ``anchor``) and the partner frame nearest in time: ``Tpq (p - q) + ZPpq(pair)``, with
    ``ZPpq`` from the comparison stars on both frames. Also returns the partner measurement
    index (-1 where there is none) and the derivative of the colour with respect to this
    measurement's instrumental magnitude."""
    partner = pair_frames(night.frame_band, night.frame_jd, p, q, anchor=anchor,
                          max_gap=max_gap)
    j = _partner_index(night, partner)
    jj = np.clip(j, 0, None)
    sign = 1.0 if anchor == p else -1.0
    inst_colour = sign * (night.inst - night.inst[jj])  # p - q
    ierr = np.where(np.isfinite(night.inst_err) & (night.inst_err > 0), night.inst_err, 0.01)
    var_inst = ierr ** 2 + ierr[jj] ** 2
    (cp, ep), (cq, eq) = night.cat(p), night.cat(q)
    has = j >= 0
    comp = has & night.comparison & night.comparison[jj] & np.isfinite(cp) & np.isfinite(cq)
    n_frames = night.frame_band.size
    delta = np.where(comp, (cp - cq) - t_pq * inst_colour, np.nan)
    zp, zp_err, used = _weighted_zero_points(delta, t_pq ** 2 * var_inst + ep ** 2 + eq ** 2,
                                             night.frame, n_frames)
    # the comparison stars' mean instrumental colour: T's error moves colours away from it
    w = np.where(used, 1.0, 0.0)
    c_mean = _group_mean(np.where(used, inst_colour, 0.0), w, night.frame, n_frames)
    colour = np.where(has, t_pq * inst_colour + zp[night.frame], np.nan)
    colour_err = np.sqrt(t_pq ** 2 * var_inst + zp_err[night.frame] ** 2
                         + (t_pq_err * (inst_colour - c_mean)) ** 2)
    return colour, np.where(has, colour_err, np.nan), j, sign * t_pq


def apply_transform(night: NightPhotometry, coefficients: dict[str, float],
                    errors: dict[str, float] | None = None, *, colour: str = "pair",
                    max_gap: float = MAX_PAIR_GAP) -> TransformResult:
    """Transformed (standard) magnitudes of a night observed in two or more filters.

    For each band ``m`` the first configured magnitude coefficient of
    :data:`MAGNITUDE_COEFFICIENTS` whose colour's other band was observed is used, with the
    colour coefficient of :func:`implied_colour_coefficient`:

    ``P - Q = Tpq (p - q) + ZPpq``, each star's colour from this night's own frames (the
    partner frame nearest in time, within ``max_gap`` days), ``ZPpq`` from the comparison
    stars on both frames; ``M = m + Tm_pq (P - Q) + ZPm``, ``ZPm`` the frame's clipped,
    weighted mean of ``M - m - Tm_pq (P - Q)`` over its comparison stars with their catalog
    colours.

    Parameters
    ----------
    night : NightPhotometry
    coefficients : dict
        {name: value} from ``[transform]``; missing or NaN = not given.
    errors : dict, optional
        {name: 1-sigma error}: propagated into the magnitudes' errors (0 when not given).
    colour : {"pair", "mean"}
        ``pair``: each measurement's colour from its own pair of frames; ``mean``: each
        star's weighted mean colour over the night (for constant stars: less noise; a frame
        without a partner is transformed too).
    max_gap : float
        Longest time between the two frames of a colour (days).

    Returns
    -------
    TransformResult
        Errors propagate the instrumental errors (the measurement's own magnitude enters its
        colour too), both zero points and the coefficients' errors.
    """
    if colour not in ("pair", "mean"):
        raise ValueError(f"colour {colour!r}: 'pair' or 'mean'")
    errors = errors or {}
    n = night.inst.size
    mag, mag_err = np.full(n, np.nan), np.full(n, np.nan)
    col, col_err = np.full(n, np.nan), np.full(n, np.nan)
    used = np.full(n, "", dtype=object)
    notes, reasons = {}, {}
    bands = np.asarray(night.frame_band).astype(str)
    band_of = bands[night.frame]
    present = set(bands)
    ierr = np.where(np.isfinite(night.inst_err) & (night.inst_err > 0), night.inst_err, 0.01)
    for m in sorted({b for b, _ in MAGNITUDE_COEFFICIENTS.values()} & present):
        choice = None
        for name, (band, (p, q)) in MAGNITUDE_COEFFICIENTS.items():
            if band != m or not np.isfinite(coefficients.get(name, np.nan)):
                continue
            if ({p, q} - {m}) <= present:
                t_pq = implied_colour_coefficient(coefficients, p, q)
                if np.isfinite(t_pq):
                    choice = (name, p, q, t_pq)
                    break
                reasons[m] = (f"{name} is set but T{p.lower()}{q.lower()} is not (nor both "
                              f"magnitude coefficients of {p}-{q})")
        if choice is None:
            reasons.setdefault(m, f"no coefficient of [transform] for {m} with a colour "
                                  f"observed this night")
            continue
        name, p, q, t_pq = choice
        reasons.pop(m, None)
        t_m = float(coefficients[name])
        pq = f"T{p.lower()}{q.lower()}"
        c, c_err, j, dc_dm = _colours(night, p, q, t_pq, float(errors.get(pq, 0.0)), m, max_gap)
        if colour == "mean":
            c, c_err, dc_dm, j = _night_mean_colour(night, c, c_err, band_of == m)
        (cm, em), (cp, ep), (cq, eq) = night.cat(m), night.cat(p), night.cat(q)
        cat_colour = cp - cq
        here = band_of == m
        comp = here & night.comparison & np.isfinite(cm) & np.isfinite(cat_colour)
        delta = np.where(comp, cm - night.inst - t_m * cat_colour, np.nan)
        var = ierr ** 2 + em ** 2 + t_m ** 2 * (ep ** 2 + eq ** 2)
        zp, zp_err, zp_used = _weighted_zero_points(delta, var, night.frame, bands.size)
        w = np.where(zp_used, 1.0 / var, 0.0)
        colour_mean = _group_mean(np.where(zp_used, cat_colour, 0.0), w, night.frame,
                                  bands.size)
        ok = here & np.isfinite(c) & np.isfinite(zp[night.frame]) & np.isfinite(night.inst)
        value = night.inst + t_m * c + zp[night.frame]
        jj = np.clip(j, 0, None)
        other = np.where(j >= 0, ierr[jj], 0.0)
        # the colour holds this measurement's own magnitude: d(mag)/d(inst) = 1 + t_m dc/dm
        var_mag = ((1.0 + t_m * dc_dm) ** 2 * ierr ** 2 + (t_m * dc_dm * other) ** 2
                   + t_m ** 2 * (c_err ** 2 - (dc_dm ** 2) * (ierr ** 2 + other ** 2))
                   + zp_err[night.frame] ** 2
                   + (float(errors.get(name, 0.0)) * (c - colour_mean)) ** 2)
        mag[ok] = value[ok]
        mag_err[ok] = np.sqrt(np.maximum(var_mag[ok], 0.0))
        col[ok], col_err[ok] = c[ok], c_err[ok]
        used[ok] = name
        notes[name] = transform_notes(name, t_m, pq, t_pq)
    return TransformResult(mag, mag_err, col, col_err, used, notes, reasons)


def _night_mean_colour(night: NightPhotometry, c, c_err, here):
    """Each star's error-weighted mean colour over the night's pairs (``colour="mean"``): the
    colour no longer holds the measurement's own magnitude (derivative 0, no partner)."""
    n_star = int(night.star.max()) + 1 if night.star.size else 1
    ok = here & np.isfinite(c) & np.isfinite(c_err) & (c_err > 0)
    w = np.where(ok, 1.0 / np.where(ok, c_err, 1.0) ** 2, 0.0)
    sw = np.bincount(night.star, weights=w, minlength=n_star)
    mean = np.bincount(night.star, weights=w * np.where(ok, c, 0.0), minlength=n_star)
    mean = np.where(sw > 0, mean / np.where(sw > 0, sw, 1.0), np.nan)
    err = np.where(sw > 0, 1.0 / np.sqrt(np.where(sw > 0, sw, 1.0)), np.nan)
    zeros = np.zeros(night.star.size)
    return mean[night.star], err[night.star], zeros, np.full(night.star.size, -1)
