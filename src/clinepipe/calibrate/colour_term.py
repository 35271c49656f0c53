"""The colour term of a night and filter: the slope of (catalog - instrumental) against catalog colour."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


