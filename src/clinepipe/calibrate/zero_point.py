"""The ensemble zero point of a frame: sigma-clipped, error-weighted mean of (catalog - instrumental) magnitudes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinepipe.catalogs.types import DEFAULT_CATALOG_ERROR

#: Instrumental error assumed when none is given (mag).
DEFAULT_INST_ERROR = 0.01

@dataclass(frozen=True)
class ZeroPointResult:
    """Result of :func:`ensemble_zero_point`.

    Attributes
    ----------
    value : float
        Zero point (mag): ``mag = inst_mag + value``. NaN when no star could be used.
    error : float
        1-sigma error of ``value`` (mag), inflated by the reduced chi-square when the
        comparison stars scatter more than their errors say.
    n_used : int
        Comparison stars left after clipping.
    used : ndarray of bool
        Which input stars were used.
    scatter : float
        Standard deviation of the used stars' residuals (mag).
    extra_scatter : float
        Scatter beyond the stated errors, added in quadrature to the weights (mag).
    """

    value: float
    error: float
    n_used: int
    used: np.ndarray
    scatter: float = float("nan")
    extra_scatter: float = 0.0
    n_candidates: int = 0


def ensemble_zero_point(inst_mag, cat_mag, inst_err=None, cat_err=None, *, sigma: float = 3.0,
                        maxiters: int = 20, exclude=None) -> ZeroPointResult:
    """Sigma-clipped, error-weighted ensemble zero point.

    Parameters
    ----------
    inst_mag, cat_mag : array_like (n,)
        Instrumental and catalog magnitudes of the same stars (mag). Non-finite values are
        left out.
    inst_err, cat_err : array_like (n,), optional
        Their 1-sigma errors (mag); defaults ``DEFAULT_INST_ERROR`` / ``DEFAULT_CATALOG_ERROR``.
    sigma : float
        Clipping threshold in units of each star's total expected scatter.
    exclude : array_like of bool (n,), optional
        Stars never to use (flagged, saturated, known variables).

    Notes
    -----
    Starts from the median (robust to up to half the stars being wrong), then iterates:
    weighted mean with weights ``1 / (err_i² + s²)``, where ``s`` is the scatter the errors
    do not explain (estimated from the clipped residuals), and clips stars whose residual
    exceeds ``sigma·sqrt(err_i² + s²)``, until the used set stops changing.
    """
    inst = np.asarray(inst_mag, dtype=float)
    cat = np.asarray(cat_mag, dtype=float)
    n = inst.size
    ie = _errors(inst_err, n, DEFAULT_INST_ERROR)
    ce = _errors(cat_err, n, DEFAULT_CATALOG_ERROR)
    delta = cat - inst
    err2 = ie ** 2 + ce ** 2
    ok = np.isfinite(delta) & np.isfinite(err2) & (err2 > 0)
    if exclude is not None:
        ok &= ~np.asarray(exclude, dtype=bool)
    n_candidates = int(ok.sum())
    if n_candidates == 0:
        return ZeroPointResult(float("nan"), float("nan"), 0, ok, n_candidates=0)

    used = ok.copy()
    zp = float(np.median(delta[used]))
    mad = float(np.median(np.abs(delta[used] - zp))) * 1.4826
    extra = _extra_scatter(delta[used] - zp, err2[used], mad)
    for _ in range(maxiters):
        limit = sigma * np.sqrt(err2 + extra ** 2)
        new_used = ok & (np.abs(delta - zp) <= np.maximum(limit, 1e-6))
        if new_used.sum() == 0:
            break
        w = 1.0 / (err2[new_used] + extra ** 2)
        zp = float(np.sum(w * delta[new_used]) / np.sum(w))
        extra = _extra_scatter(delta[new_used] - zp, err2[new_used], None)
        if np.array_equal(new_used, used):
            break
        used = new_used

    w = 1.0 / (err2[used] + extra ** 2)
    resid = delta[used] - zp
    error = float(np.sqrt(1.0 / np.sum(w)))
    n_used = int(used.sum())
    if n_used > 1:
        chi2_red = float(np.sum(w * resid ** 2) / (n_used - 1))
        error *= max(1.0, np.sqrt(chi2_red))
    scatter = float(np.std(resid, ddof=1)) if n_used > 1 else float("nan")
    return ZeroPointResult(zp, error, n_used, used, scatter, float(extra), n_candidates)


def _errors(err, n: int, default: float) -> np.ndarray:
    if err is None:
        return np.full(n, default)
    e = np.asarray(err, dtype=float)
    return np.where(np.isfinite(e) & (e > 0), e, default) if e.ndim else np.full(n, float(e))


def _extra_scatter(resid: np.ndarray, err2: np.ndarray, robust_sigma: float | None) -> float:
    """Scatter (mag) that the stated errors do not explain, from the residuals' variance."""
    if resid.size < 3:
        return 0.0
    var = robust_sigma ** 2 if robust_sigma is not None else float(np.mean(resid ** 2))
    return float(np.sqrt(max(0.0, var - float(np.mean(err2)))))


def apply_zero_point(inst_mag, inst_err, zp: ZeroPointResult):
    """Calibrated magnitudes and errors: ``mag = inst + zp``, error in quadrature."""
    inst = np.asarray(inst_mag, dtype=float)
    err = np.asarray(inst_err, dtype=float)
    return inst + zp.value, np.sqrt(err ** 2 + zp.error ** 2)


