"""The PSF shape of a frame from its brightest stars: FWHM (px) and elongation."""

from __future__ import annotations

import numpy as np


def psf_shape(data, x, y, *, background=0.0, box: int = 7, max_stars: int = 60, order=None,
              rms=None, min_peak_snr: float = 30.0):
    """Median FWHM (px) and elongation of the brightest stars from windowed second moments.

    Parameters
    ----------
    data : 2-D array, background-subtracted or with ``background`` given (ADU).
    x, y : 0-based star centres.
    background : the level to subtract (ADU): a scalar, a 2-D map, or a function
        ``f(columns, rows)`` giving it at integer pixels (e.g. ``Background.level_at``, which
        spares the full-frame map).
    order : indices of the stars brightest first (default: the given order).
    rms : background noise (scalar, 2-D or such a function, ADU); stars with a peak below
        ``min_peak_snr`` times it are left out.

    Stamps of ``(2·box+1)²`` pixels around up to ``max_stars`` isolated stars (no other source
    within ``2·box``) are stacked into one
    array, so the moments of all stars are computed at once. FWHM = 2.3548·sqrt((a²+b²)/2)
    for a Gaussian; elongation = a/b from the eigenvalues of the moment matrix.
    """
    data = np.asarray(data, dtype=np.float32)
    ny, nx = data.shape
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    idx = np.arange(x.size) if order is None else np.asarray(order)
    idx = idx[: 4 * max_stars]
    # only isolated stars: a neighbour inside the stamp would bloat the moments
    d2 = (x[idx, None] - x[None, :]) ** 2 + (y[idx, None] - y[None, :]) ** 2
    d2[np.arange(idx.size), idx] = np.inf
    idx = idx[d2.min(axis=1) > (2 * box) ** 2] if x.size > 1 else idx
    xi = np.rint(x[idx]).astype(int)
    yi = np.rint(y[idx]).astype(int)
    inside = (xi >= box) & (xi < nx - box) & (yi >= box) & (yi < ny - box)
    idx, xi, yi = idx[inside][:max_stars], xi[inside][:max_stars], yi[inside][:max_stars]
    if idx.size == 0:
        return np.nan, np.nan
    offs = np.arange(-box, box + 1)
    rows = (yi[:, None, None] + offs[None, :, None])
    cols = (xi[:, None, None] + offs[None, None, :])
    stamps = data[rows, cols] - _at(background, rows, cols)
    dx = cols - x[idx][:, None, None]
    dy = rows - y[idx][:, None, None]
    # a Gaussian window of about the box keeps the sky noise in the wings from dominating
    w = np.exp(-(dx ** 2 + dy ** 2) / (2 * (box / 2.0) ** 2))
    # no clipping: positive-only noise in the wings would bloat the moments of faint stars
    f = stamps * w
    tot = f.sum(axis=(1, 2))
    peak = stamps[:, box, box]
    good = (tot > 0) & (peak > 0)
    if rms is not None:  # only stars well above the noise
        noise = _at(rms, yi, xi)
        good &= peak > min_peak_snr * noise
    if not good.any():
        return np.nan, np.nan
    f, dx, dy, tot = f[good], dx[good], dy[good], tot[good]
    mxx = (f * dx * dx).sum(axis=(1, 2)) / tot
    myy = (f * dy * dy).sum(axis=(1, 2)) / tot
    mxy = (f * dx * dy).sum(axis=(1, 2)) / tot
    # windowed moments of a Gaussian of variance s² under a window of variance v²:
    # m = s²v²/(s²+v²); invert to recover s² per axis.
    v2 = (box / 2.0) ** 2
    half_tr = (mxx + myy) / 2
    disc = np.sqrt(((mxx - myy) / 2) ** 2 + mxy ** 2)
    l1 = half_tr + disc
    l2 = np.clip(half_tr - disc, 1e-6, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        s1 = l1 * v2 / (v2 - l1)
        s2 = l2 * v2 / (v2 - l2)
    ok = (s1 > 0) & (s2 > 0) & np.isfinite(s1) & np.isfinite(s2)
    if not ok.any():
        return np.nan, np.nan
    fwhm = 2.3548 * np.sqrt((s1[ok] + s2[ok]) / 2)
    elong = np.sqrt(s1[ok] / s2[ok])
    return float(np.median(fwhm)), float(np.median(elong))


def _at(values, rows, cols):
    """A scalar, a 2-D map or a function ``f(columns, rows)`` at integer pixels."""
    if callable(values):
        return values(cols, rows)
    return values if np.isscalar(values) else np.asarray(values)[rows, cols]
