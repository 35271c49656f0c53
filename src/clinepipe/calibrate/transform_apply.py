"""Transformation coefficients applied to a night with two or more filters interleaved: each
star's colour from the night's own measurements, magnitudes on the standard system (TRANS=YES).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinepipe.calibrate.transform import (
    MAGNITUDE_COEFFICIENTS,
    MAX_PAIR_GAP,
    NightPhotometry,
    group_mean,
    pair_frames,
    partner_index,
)


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
    j = partner_index(night, partner)
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
    c_mean = group_mean(np.where(used, inst_colour, 0.0), w, night.frame, n_frames)
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
        colour_mean = group_mean(np.where(zp_used, cat_colour, 0.0), w, night.frame,
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
