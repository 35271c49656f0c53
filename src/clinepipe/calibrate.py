"""Ensemble photometric calibration against a reference catalog.

A frame's zero point is the error-weighted, sigma-clipped mean of ``catalog − instrumental``
over its comparison stars, so that ``mag = inst_mag + zero_point``. Variables, mismatches and
saturated stars are rejected by the clipping (or excluded up front) instead of dragging the
zero point, which the 2018 code's unclipped median could not promise.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadInput

__all__ = ["ZeroPointResult", "ensemble_zero_point", "Catalog", "load_file_catalog",
           "match_catalog", "pairs_within", "apply_zero_point"]

#: Catalog error assumed when a catalog gives none (mag).
DEFAULT_CATALOG_ERROR = 0.03
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


@dataclass(frozen=True)
class Catalog:
    """A reference catalog: ids, positions (deg ICRS) and magnitudes per band."""

    name: str
    ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    mags: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.size)

    def band(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Magnitudes and errors of one band (errors default when absent)."""
        mag = self.mags[name]
        err = self.errors.get(name, np.full(mag.shape, DEFAULT_CATALOG_ERROR))
        return mag, err


def load_file_catalog(path: str | Path, name: str = "file") -> Catalog:
    """Read a catalog CSV: ``id,ra,dec`` then one column per band, optionally ``e_<band>``."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise BadInput(f"{path}: the catalog cannot be read ({exc.strerror or exc}).",
                       reason="catalog unreadable") from exc
    if not rows or [c.strip().lower() for c in rows[0][:3]] != ["id", "ra", "dec"]:
        raise BadInput(f"{path}: a catalog must start with the columns id,ra,dec.",
                       reason="catalog malformed")
    header = [c.strip() for c in rows[0]]
    body = [r for r in rows[1:] if r and any(c.strip() for c in r)]
    if any(len(r) != len(header) for r in body):
        bad = next(i for i, r in enumerate(rows[1:], start=2) if r and len(r) != len(header))
        raise BadInput(f"{path}: line {bad} has a different number of columns than the header.",
                       reason="catalog malformed")
    columns = list(zip(*body)) if body else [() for _ in header]
    data = dict(zip(header, columns))

    def numeric(col):
        return np.array([float(v) if v.strip() not in ("", "nan", "NaN") else np.nan
                         for v in data[col]], dtype=float)

    try:
        ra, dec = numeric(header[1]), numeric(header[2])
        mags = {c: numeric(c) for c in header[3:] if not c.startswith("e_")}
        errors = {c[2:]: numeric(c) for c in header[3:] if c.startswith("e_")}
    except ValueError as exc:
        raise BadInput(f"{path}: a catalog value is not a number ({exc}).",
                       reason="catalog malformed") from exc
    return Catalog(name, np.array(data[header[0]], dtype=str), ra, dec, mags, errors)


def match_catalog(ra, dec, cat_ra, cat_dec, radius_arcsec: float):
    """Match positions to a catalog, one to one, rejecting ambiguous pairs.

    Returns
    -------
    index : ndarray of int (n,)
        Catalog index of each position's counterpart, or -1.
    separation : ndarray of float (n,)
        Separation (arcsec) to that counterpart (NaN when unmatched).

    A pair is kept only when each is the other's nearest neighbour, within the radius, and
    no second catalog star lies within the radius (the two could not be told apart).

    Only pairs closer than the radius can decide this, so they are all that is looked for
    (:func:`pairs_within`: a sweep in declination, separations by the Vincenty formula as
    astropy computes them); the result is what ``SkyCoord.match_to_catalog_sky`` nearest
    neighbours give, without its KD-trees and coordinate objects. Catalog rows without a
    finite position are never matched.
    """
    ra = np.asarray(ra, float).ravel()
    dec = np.asarray(dec, float).ravel()
    n = ra.size
    index = np.full(n, -1, dtype=int)
    separation = np.full(n, np.nan)
    cat_ra = np.asarray(cat_ra, float).ravel()
    cat_dec = np.asarray(cat_dec, float).ravel()
    if n == 0 or cat_ra.size == 0:
        return index, separation
    i, j, sep = pairs_within(ra, dec, cat_ra, cat_dec, radius_arcsec)
    if i.size == 0:
        return index, separation
    near_cat, near_sep, count = nearest_pairs(i, j, sep, n)
    near_src, _, _ = nearest_pairs(j, i, sep, cat_ra.size)
    src = np.flatnonzero(count == 1)  # exactly one catalog star within the radius ...
    mutual = near_src[near_cat[src]] == src  # ... which has no closer position
    src = src[mutual]
    index[src] = near_cat[src]
    separation[src] = near_sep[src]
    return index, separation


_RAD_TO_ARCSEC = 180.0 * 3600.0 / np.pi


def pairs_within(ra1, dec1, ra2, dec2, radius_arcsec: float):
    """Every pair (i, j) of position ``i`` of the first list and ``j`` of the second closer
    than (or at) ``radius_arcsec``; non-finite positions take no part.

    The second list is sorted by declination and each first position looks only at the
    band within the radius of its declination, so the work grows with the pairs in those
    bands, not with the product of the lists.

    Returns
    -------
    i, j : ndarray of int
        Indices into the first and second lists.
    sep : ndarray of float
        Separations, arcsec (Vincenty formula).
    """
    ra1, dec1 = np.asarray(ra1, float).ravel(), np.asarray(dec1, float).ravel()
    ra2, dec2 = np.asarray(ra2, float).ravel(), np.asarray(dec2, float).ravel()
    empty = np.zeros(0, dtype=np.intp)
    ok1 = np.flatnonzero(np.isfinite(ra1) & np.isfinite(dec1))
    ok2 = np.flatnonzero(np.isfinite(ra2) & np.isfinite(dec2))
    radius = float(radius_arcsec)
    if ok1.size == 0 or ok2.size == 0 or not radius >= 0:
        return empty, empty, np.zeros(0)
    ok2 = ok2[np.argsort(dec2[ok2], kind="stable")]
    sorted_dec = dec2[ok2]
    band = radius / 3600.0 * (1.0 + 1e-9) + 1e-12  # |d dec| <= separation
    lo = np.searchsorted(sorted_dec, dec1[ok1] - band, side="left")
    hi = np.searchsorted(sorted_dec, dec1[ok1] + band, side="right")
    count = hi - lo
    total = int(count.sum())
    if total == 0:
        return empty, empty, np.zeros(0)
    first = np.repeat(ok1, count)
    start = np.repeat(lo - (np.cumsum(count) - count), count)  # position in the sorted list
    second = ok2[start + np.arange(total)]
    sep = _separation_arcsec(ra2[second], dec2[second], ra1[first], dec1[first])
    close = sep <= radius
    return first[close], second[close], sep[close]


def nearest_pairs(a: np.ndarray, b: np.ndarray, sep: np.ndarray, n: int):
    """For each of ``n`` items of the ``a`` side of the pairs ``(a, b, sep)``: its nearest
    ``b`` (-1 if none), that separation (NaN if none) and how many ``b`` it pairs with.
    Ties in separation go to the smaller ``b``."""
    order = np.lexsort((b, sep, a))
    a_sorted = a[order]
    head = np.ones(a_sorted.size, dtype=bool)
    head[1:] = a_sorted[1:] != a_sorted[:-1]
    best = order[head]
    nearest = np.full(n, -1, dtype=np.intp)
    nearest_sep = np.full(n, np.nan)
    nearest[a[best]] = b[best]
    nearest_sep[a[best]] = sep[best]
    return nearest, nearest_sep, np.bincount(a, minlength=n)


def _separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular separation (arcsec) by the Vincenty formula (astropy's ``angular_separation``)."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, float)) for v in (ra1, dec1, ra2, dec2))
    sdlon, cdlon = np.sin(lon2 - lon1), np.cos(lon2 - lon1)
    slat1, slat2, clat1, clat2 = np.sin(lat1), np.sin(lat2), np.cos(lat1), np.cos(lat2)
    num1 = clat2 * sdlon
    num2 = clat1 * slat2 - slat1 * clat2 * cdlon
    denominator = slat1 * slat2 + clat1 * clat2 * cdlon
    return np.arctan2(np.hypot(num1, num2), denominator) * _RAD_TO_ARCSEC


#: colour index used for the colour term of each catalog band: (blue band, red band)
COLOUR_INDEX = {"B": ("B", "V"), "V": ("B", "V"), "R": ("V", "R"), "I": ("R", "I"),
                "g": ("g", "r"), "r": ("g", "r"), "i": ("r", "i")}


@dataclass(frozen=True)
class ColourTerm:
    """``residual = value · colour`` after each frame's zero point; NaN when not fitted."""

    value: float
    error: float
    n_used: int
    colour: str          # e.g. "B-V"
    reason: str = ""     # why it was not fitted (empty when fitted)


def fit_colour_term(residual, colour, error, frame, *, star=None, colour_name: str = "",
                    min_stars: int = 10, min_colour_range: float = 0.3,
                    sigma: float = 4.0) -> ColourTerm:
    """Fit one colour term for a night and filter from the ensemble stars of all its frames.

    Parameters
    ----------
    residual : array (n,)
        ``catalog − (instrumental + zero point)`` of each star on each frame (mag).
    colour : array (n,)
        The star's catalog colour index (mag).
    error : array (n,)
        1-sigma error of ``residual`` (mag).
    frame : array (n,) of int
        Frame of each point: each frame's mean is removed, so the fit sees only how the
        residual changes with colour within a frame (zero points differ between frames).
    star : array (n,), optional
        Star of each point. A star's catalog error is the same on every frame, so its points
        are not independent: with ``star`` the error of the term is the cluster-robust
        (sandwich) error over stars, which counts each star once; without it the points are
        taken as independent, which understates the error by up to sqrt(frames).

    Falls back to "not fitted" (NaN) with a reason when there are too few stars or too small
    a colour range to constrain it.
    """
    r = np.asarray(residual, float)
    c = np.asarray(colour, float)
    e = np.asarray(error, float)
    f = np.asarray(frame)
    ok = np.isfinite(r) & np.isfinite(c) & np.isfinite(e) & (e > 0)
    if ok.sum() < min_stars:
        return ColourTerm(np.nan, np.nan, int(ok.sum()), colour_name,
                          f"too few stars with a catalog colour ({int(ok.sum())} < {min_stars})")
    if np.ptp(c[ok]) < min_colour_range:
        return ColourTerm(np.nan, np.nan, int(ok.sum()), colour_name,
                          f"colour range {np.ptp(c[ok]):.2f} mag too small")
    value = 0.0
    use = ok.copy()
    for _ in range(10):
        w = np.where(use, 1.0 / e ** 2, 0.0)
        _, inv = np.unique(f, return_inverse=True)
        sw = np.bincount(inv, weights=w)
        safe = np.where(sw > 0, sw, 1.0)
        rc = r - (np.bincount(inv, weights=w * np.where(use, r, 0)) / safe)[inv]
        cc = c - (np.bincount(inv, weights=w * np.where(use, c, 0)) / safe)[inv]
        sxx = np.sum(w * cc * cc)
        if sxx <= 0:
            break
        value = float(np.sum(w * cc * rc) / sxx)
        resid = rc - value * cc
        new = ok & (np.abs(resid) <= sigma * np.sqrt(e ** 2 + np.median(resid[use] ** 2)))
        if np.array_equal(new, use):
            break
        use = new
    n = int(use.sum())
    if sxx <= 0:
        return ColourTerm(value, np.nan, n, colour_name)
    chi2 = float(np.sum(w * resid ** 2) / max(n - 2, 1))
    error_value = float(np.sqrt(1.0 / sxx) * max(1.0, np.sqrt(chi2)))
    if star is not None:
        error_value = max(error_value, _clustered_slope_error(w * cc * resid, np.asarray(star),
                                                              use, sxx))
    return ColourTerm(value, error_value, n, colour_name)


def _clustered_slope_error(score, star, use, sxx: float) -> float:
    """Sandwich error of a weighted slope whose points come in correlated groups (stars):
    ``sqrt(G/(G-1) * sum_g (sum_{i in g} w_i x_i r_i)**2) / sxx`` over the G groups."""
    _, groups = np.unique(star[use], return_inverse=True)
    per_group = np.bincount(groups, weights=score[use])
    g = per_group.size
    if g < 3:
        return np.nan
    return float(np.sqrt(g / (g - 1) * np.sum(per_group ** 2)) / sxx)
