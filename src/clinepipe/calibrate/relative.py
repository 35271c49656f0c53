"""Catalog-free ensemble photometry: every frame of a night on the scale of its best frame.

An inhomogeneous ensemble (Honeycutt 1992, AJ 104, 435; Broeg, Fernández & Neuhäuser 2005,
AN 326, 134). The instrumental magnitude of star ``s`` on frame ``f`` is modelled as

    inst_mag[f, s] = star_mag[s] - zero_point[f] + noise,

so that ``mag = inst_mag + zero_point[f]`` is the same for a constant star on every frame. Both
sets of unknowns are solved together by weighted least squares over the stars measured on most
of the night's frames, each point weighted by ``1 / (sigma² + s²)`` where ``s`` is the star's own
scatter beyond its stated errors: a variable star, or one spoiled by a neighbour, scatters and so
weighs little, as Broeg et al. weight by each star's light-curve scatter. Single bad points
(a cosmic ray, a satellite) are clipped. The weights and the clipping are re-estimated until
they settle.

The scale is fixed by the night's best frame (of the frames with at least 90 % of the most
ensemble stars any frame has, the one with the smallest offset error: a clear frame, not a
cloudy one that happens to keep every star): on it ``mag = inst_mag + RELATIVE_ZERO_POINT``.
Relative magnitudes are therefore "the instrumental magnitude the best frame would have
measured, plus 25". When a catalog later covers the field, :func:`catalog_offset` gives the one
offset that turns them into standard magnitudes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from clinepipe.calibrate.zero_point import ZeroPointResult, ensemble_zero_point

__all__ = ["RELATIVE_ZERO_POINT", "RelativeEnsemble", "catalog_offset",
           "relative_zero_points"]

#: ``zero_points.catalog_band`` of a frame on the relative scale of its night
RELATIVE_BAND = "relative"

#: Zero point of the reference frame (mag): relative ``mag = inst_mag + 25`` there. 25 is the
#: conventional instrumental zero point (IRAF ``phot`` zmag); with ``inst_mag =
#: -2.5 log10(ADU/s)`` it gives magnitude-like numbers (10-20) for the stars a small telescope
#: measures, never confusable with raw instrumental magnitudes (negative).
RELATIVE_ZERO_POINT = 25.0

#: A frame's offset error is taken from its own residuals alone only when it has at least this
#: many degrees of freedom; with fewer, lucky small residuals would make the error too small,
#: so they may only enlarge the error the weights imply.
_MIN_DOF_FOR_OWN_ERROR = 10


@dataclass(frozen=True)
class RelativeEnsemble:
    """Result of :func:`relative_zero_points` for a night of ``F`` frames and ``S`` stars.

    Attributes
    ----------
    zero_point : ndarray (F,)
        Per-frame zero point (mag): ``mag = inst_mag + zero_point``. NaN where the frame could
        not be placed (``frame_reason`` says why). Equal to ``RELATIVE_ZERO_POINT`` on ``reference``.
    zero_point_err : ndarray (F,)
        1-sigma error of each frame's offset against the ensemble of the night's other frames
        (mag), from the frame's own residuals (a sandwich estimate, right even where the
        weights are not: scintillation grows with airmass, a star's excess scatter does not);
        with fewer than 10 stars never below what the weights imply. This is the error a
        differential light curve sees. The night's scale itself (fixed by the reference frame) shares one
        common error, ``zero_point_err[reference]``, that shifts every magnitude together.
        0 for a night of a single frame (nothing to compare with).
    reference : int
        Index of the reference (best) frame, -1 when no frame could be placed.
    n_stars : ndarray of int (F,)
        Ensemble stars used on each frame (after clipping).
    frame_reason : tuple of str (F,)
        Why a frame has no zero point; empty string for a placed frame.
    star_used : ndarray of bool (S,)
        Stars in the ensemble (usable on at least ``min_fraction`` of the frames).
    star_weight : ndarray (S,)
        Each star's share of the ensemble's total weight (dimensionless, sums to 1 over the
        used stars; 0 for the others). Variables get small shares.
    star_excess : ndarray (S,)
        Each used star's scatter beyond its stated errors (mag); NaN for stars not used or
        with fewer than two points.
    star_mag : ndarray (S,)
        Each used star's mean relative magnitude (mag); NaN for the others.
    star_mag_err : ndarray (S,)
        Its 1-sigma error (mag), including the star's excess scatter.
    used : ndarray of bool (F, S)
        The measurements that entered the solution (usable, star in the ensemble, frame
        placed, not clipped).
    mag : ndarray (F, S)
        Relative magnitude of every finite measurement on every placed frame (mag), flagged
        measurements included (``usable`` only chooses the ensemble).
    mag_err : ndarray (F, S)
        Its 1-sigma error (mag): the instrumental error and the frame's ``zero_point_err`` in
        quadrature.
    n_iter : int
        Re-weighting iterations done.
    converged : bool
        True when the offsets, the excess scatters and the clipped points stopped changing
        (offsets and scatters by less than ``tol``) before ``max_iter``.
    reason : str
        Why the night has no relative magnitudes at all; empty when it has some.
    """

    zero_point: np.ndarray
    zero_point_err: np.ndarray
    reference: int
    n_stars: np.ndarray
    frame_reason: tuple
    star_used: np.ndarray
    star_weight: np.ndarray
    star_excess: np.ndarray
    star_mag: np.ndarray
    star_mag_err: np.ndarray
    used: np.ndarray
    mag: np.ndarray
    mag_err: np.ndarray
    n_iter: int
    converged: bool
    reason: str = ""


def relative_zero_points(inst_mag, inst_err, usable, *, min_fraction: float = 0.8,
                         min_stars: int = 3, max_iter: int = 50, tol: float = 1e-5,
                         clip: float = 4.0) -> RelativeEnsemble:
    """Put every frame of a night on the scale of its best frame with an inhomogeneous ensemble.

    Parameters
    ----------
    inst_mag : array_like (F, S)
        Instrumental magnitudes of ``S`` stars (identified by position) on ``F`` frames (mag);
        NaN where a star was not measured.
    inst_err : array_like (F, S)
        Their 1-sigma errors (mag). Points without a finite positive error are not used in the
        ensemble.
    usable : array_like of bool (F, S)
        Measurements fit for the ensemble: unflagged, unsaturated.
    min_fraction : float
        A star enters the ensemble when it is usable on at least this fraction of the frames
        that have any usable measurement.
    min_stars : int
        Fewest ensemble stars a frame needs for a zero point.
    max_iter : int
        Most re-weighting iterations.
    tol : float
        Convergence tolerance on the offsets and the excess scatters (mag).
    clip : float
        A point is clipped when its residual exceeds ``clip`` times its expected scatter
        ``sqrt(sigma² + s²)``: well beyond the noise of a star that is otherwise well behaved.

    Returns
    -------
    RelativeEnsemble

    Notes
    -----
    Each iteration is one Honeycutt sweep (every frame's offset given the star means, then
    every star's mean given the offsets: the weighted least-squares normal equations solved
    block by block), then the excess scatters and the clipping from the residuals. It starts
    from medians, so that a few variables or bad points cannot pull the first offsets. A
    star's excess scatter is estimated from all its points on the first pass, so that a deep
    eclipse raises the star's scatter instead of being clipped as outliers, and from its kept
    points afterwards, so that one cosmic ray, once clipped, no longer costs the star its
    weight.
    """
    m = np.array(inst_mag, dtype=float, ndmin=2)
    sig = np.array(inst_err, dtype=float, ndmin=2)
    ok = np.array(usable, dtype=bool, ndmin=2)
    if not (m.shape == sig.shape == ok.shape) or m.ndim != 2:
        raise ValueError(f"inst_mag, inst_err and usable must be (frames x stars) arrays of one "
                         f"shape, not {m.shape}, {sig.shape}, {ok.shape}")
    ok &= np.isfinite(m) & np.isfinite(sig) & (sig > 0)

    live = ok.any(axis=1)
    coverage = ok.sum(axis=0) / max(int(live.sum()), 1)
    star_used = ok.any(axis=0) & (coverage >= min_fraction)
    points = ok & star_used[None, :]
    n_start = points.sum(axis=1)
    active = n_start >= max(min_stars, 1)
    reasons = np.where(active, "", np.char.add(n_start.astype(str),
                                               f" ensemble stars (fewer than {min_stars})"))
    reasons = np.where(live, reasons, "no usable measurement").astype(object)
    if not active.any():
        if not live.any():
            why = "no usable measurement on any frame"
        elif not star_used.any():
            why = f"no star is usable on {100 * min_fraction:.0f} % of the frames"
        else:
            why = f"no frame has {min_stars} stars of the ensemble"
        return _empty(m, sig, star_used, tuple(reasons.tolist()), why)

    points &= active[:, None]
    m0 = np.where(points, m, 0.0)
    var = np.where(points, sig, 1.0) ** 2
    with warnings.catch_warnings():  # all-NaN rows/columns (inactive frames, lost stars)
        warnings.simplefilter("ignore", RuntimeWarning)
        star_mag = np.nanmedian(np.where(points, m, np.nan), axis=0)
        a = np.nanmedian(np.where(points, star_mag[None, :] - m, np.nan), axis=1)
        a = np.where(active, a, 0.0)
        star_mag = np.nanmedian(np.where(points, m + a[:, None], np.nan), axis=0)
    star_mag = np.where(np.isfinite(star_mag), star_mag, 0.0)

    keep = points.copy()
    excess2 = _excess2(points, m0 + a[:, None] - star_mag[None, :], var)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        w = np.where(keep, 1.0 / (var + excess2[None, :]), 0.0)
        frame_w = w.sum(axis=1)
        a_new = np.where(frame_w > 0, (w * (star_mag[None, :] - m0)).sum(axis=1)
                         / np.where(frame_w > 0, frame_w, 1.0), 0.0)
        star_w = w.sum(axis=0)
        star_new = np.where(star_w > 0, (w * (m0 + a_new[:, None])).sum(axis=0)
                            / np.where(star_w > 0, star_w, 1.0), 0.0)
        # the sweep leaves the common constant free: pin it to keep changes measurable
        shift = np.mean(a_new[active])
        a_new, star_new = a_new - shift, star_new - shift
        resid = m0 + a_new[:, None] - star_new[None, :]
        keep_new = points & (np.abs(resid) <= clip * np.sqrt(var + excess2[None, :]))
        # a frame clipped below min_stars loses its zero point for good, so the set of
        # frames can only shrink and the iteration cannot cycle on it
        lost = active & (keep_new.sum(axis=1) < min_stars)
        if lost.any():
            active &= ~lost
            points &= active[:, None]
            keep_new &= active[:, None]
            reasons = np.where(lost, f"fewer than {min_stars} ensemble stars after clipping",
                               reasons)
        excess2_new = _excess2(keep_new, resid, var)
        settled = (np.max(np.abs(a_new - a)[active], initial=0.0) < tol
                   and np.max(np.abs(np.sqrt(excess2_new) - np.sqrt(excess2)), initial=0.0) < tol
                   and np.array_equal(keep_new, keep) and not lost.any())
        a, star_mag, keep, excess2 = a_new, star_new, keep_new, excess2_new
        if settled:
            converged = True
            break
        if not active.any():
            break

    if not active.any():
        return _empty(m, sig, star_used, tuple(reasons.tolist()),
                      "every frame lost its ensemble to clipping")
    return _finish(m, sig, star_used, keep, active, a, star_mag, excess2, var,
                   reasons, n_iter, converged)


def _excess2(keep, resid, var) -> np.ndarray:
    """Each star's variance beyond its stated errors (mag²), from its kept residuals.

    The residuals are about the star's own fitted mean, which takes one of its ``n`` degrees of
    freedom: hence ``/(n - 1)``. Stars with fewer than two points get 0 (no information)."""
    n = keep.sum(axis=0)
    sum_r2 = np.where(keep, resid, 0.0) ** 2
    mean_var = np.where(keep, var, 0.0).sum(axis=0) / np.maximum(n, 1)
    excess = sum_r2.sum(axis=0) / np.maximum(n - 1, 1) - mean_var
    return np.where(n >= 2, np.maximum(excess, 0.0), 0.0)


def _finish(m, sig, star_used, keep, active, a, star_mag, excess2, var, reasons, n_iter,
            converged) -> RelativeEnsemble:
    """Errors, the reference frame and the relative magnitudes at the converged solution."""
    w = np.where(keep, 1.0 / (var + excess2[None, :]), 0.0)
    frame_w = w.sum(axis=1)
    star_w = w.sum(axis=0)
    safe_star_w = np.where(star_w > 0, star_w, 1.0)
    # Var(offset_f) with every other frame held fixed: 1/(V_f - sum_s w_fs²/W_s). The second
    # term is the frame's own share of each star's mean, which the offset must not count twice.
    info = frame_w - (w ** 2 / safe_star_w[None, :]).sum(axis=1)
    n_active = int(active.sum())
    resid = m - star_mag[None, :] + a[:, None]
    n_kept = keep.sum(axis=1)
    # each point's residual is shrunk by what its frame's offset and its star's mean took
    # from it (its leverage h); r²/(1 - h) restores its variance (the "HC2" correction)
    leverage = w / np.where(frame_w > 0, frame_w, 1.0)[:, None] + w / safe_star_w[None, :]
    resid2 = np.where(keep, resid ** 2 / np.clip(1.0 - leverage, 0.05, None), 0.0)
    # The sandwich variance sum w² r² / info² holds even where the weights are not the true
    # inverse variances (a star's excess scatter is one number for the night, scintillation
    # grows with airmass); with few stars it is itself noisy, so there it may only add to the
    # variance the weights imply.
    sandwich = (w ** 2 * resid2).sum(axis=1)
    dof = n_kept - 1
    if n_active == 1:
        err = np.where(active, 0.0, np.nan)
    else:
        isolated = active & ~(info > frame_w * 1e-9)
        reasons = np.where(isolated, "shares no ensemble star with the other frames", reasons)
        active = active & ~isolated
        safe_info = np.where(active, info, 1.0)
        variance = np.where(dof >= _MIN_DOF_FOR_OWN_ERROR, sandwich / safe_info ** 2,
                            np.maximum(sandwich / safe_info ** 2, 1.0 / safe_info))
        err = np.where(active, np.sqrt(variance), np.nan)

    star_used = star_used & (star_w > 0)
    if not active.any():
        return _empty(m, sig, star_used, tuple(reasons.tolist()),
                      "no frame shares ensemble stars with another")
    # the best frame: the lowest offset error among the frames with nearly the most stars
    crowded = active & (n_kept >= 0.9 * n_kept[active].max())
    reference = int(np.argmin(np.where(crowded, err, np.inf)))
    shift = RELATIVE_ZERO_POINT - a[reference]
    zero_point = np.where(active, a + shift, np.nan)
    star_mag = np.where(star_used, star_mag + shift, np.nan)
    total = star_w[star_used].sum()
    mag = m + zero_point[:, None]
    return RelativeEnsemble(
        zero_point=zero_point, zero_point_err=err, reference=reference,
        n_stars=np.where(active, n_kept, 0), frame_reason=tuple(reasons.tolist()),
        star_used=star_used, star_weight=np.where(star_used, star_w / total, 0.0),
        star_excess=np.where(star_used & (keep.sum(axis=0) >= 2), np.sqrt(excess2), np.nan),
        star_mag=star_mag,
        star_mag_err=np.where(np.isfinite(star_mag), 1.0 / np.sqrt(safe_star_w), np.nan),
        used=keep & active[:, None], mag=mag,
        mag_err=np.where(np.isfinite(mag), np.sqrt(sig ** 2 + err[:, None] ** 2), np.nan),
        n_iter=n_iter, converged=converged)


def _empty(m, sig, star_used, frame_reason, why) -> RelativeEnsemble:
    """A result with no zero point anywhere, saying why."""
    n_frames, n_stars = m.shape
    nan_f, nan_s = np.full(n_frames, np.nan), np.full(n_stars, np.nan)
    nan_fs = np.full((n_frames, n_stars), np.nan)
    return RelativeEnsemble(nan_f, nan_f.copy(), -1, np.zeros(n_frames, dtype=int), frame_reason,
                            star_used, np.zeros(n_stars), nan_s, nan_s.copy(), nan_s.copy(),
                            np.zeros((n_frames, n_stars), dtype=bool), nan_fs, nan_fs.copy(),
                            0, False, why)



def catalog_offset(rel_mag, rel_err, cat_mag, cat_err, *, clip: float = 3.0,
                   max_iter: int = 20) -> ZeroPointResult:
    """The single offset that puts a night's relative magnitudes on a catalog's standard scale.

    Parameters
    ----------
    rel_mag, rel_err : array_like (n,)
        Mean relative magnitudes of the matched stars and their errors (mag), e.g.
        ``RelativeEnsemble.star_mag`` / ``star_mag_err`` of the ensemble stars.
    cat_mag, cat_err : array_like (n,)
        Their catalog magnitudes and errors (mag). Stars with a non-finite value are left out.
    clip : float
        Stars further than ``clip`` times their expected scatter from the offset are rejected
        (mismatches, variables the ensemble kept).
    max_iter : int
        Most clipping iterations.

    Returns
    -------
    ZeroPointResult
        ``standard_mag = relative_mag + value``; errors add in quadrature.

    Notes
    -----
    Every frame of the night is already on one scale, so one offset serves the whole night
    (no colour term: the filter's colour term, where needed, is fitted as for catalog nights).
    The estimator is the frames' own, :func:`~clinepipe.calibrate.zero_point.ensemble_zero_point`,
    with the relative magnitudes in the place of instrumental ones; stars without a usable
    error are left out rather than given a default one.
    """
    rel_err = np.asarray(rel_err, dtype=float).ravel()
    cat_err = np.asarray(cat_err, dtype=float).ravel()
    err2 = rel_err ** 2 + cat_err ** 2
    return ensemble_zero_point(rel_mag, cat_mag, rel_err, cat_err, sigma=clip, maxiters=max_iter,
                               exclude=~(np.isfinite(err2) & (err2 > 0)))
