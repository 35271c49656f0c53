"""Quality control of every light: per-frame figures and flags relative to the night.

The flags (``Frame.qc``, ``;``-separated) and what raises them, per night and filter:

``clouds``      zero point more than ``clouds_mag`` below the night's extinction line
                (a robust fit of zero point against airmass; the median when the airmass range
                is too small to fit). Not raised when ``focus`` or ``trailed`` already explains
                the loss (a fixed aperture loses light on a bloated image).
``trailed``     median star elongation above ``max_elongation``.
``focus``       FWHM along the PSF's minor axis above ``focus_factor`` × the night's median
                (trailing stretches one axis only, defocus both).
``bright-sky``  sky level above ``sky_factor`` × the night's median sky.
``few-stars``   fewer than ``few_stars_fraction`` × the night's median number of stars.
``astrometry``  rms of the catalog match residuals above ``max_astrometric_rms`` arcsec.

A flagged frame is still measured; its measurements carry the flag through the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["QcThresholds", "night_flags", "psf_shape"]


@dataclass(frozen=True)
class QcThresholds:
    clouds_mag: float = 0.25
    max_elongation: float = 1.5
    focus_factor: float = 1.6
    sky_factor: float = 2.0
    few_stars_fraction: float = 0.25
    max_astrometric_rms: float = 1.0


def night_flags(zp, airmass, fwhm, elongation, sky, n_stars, astrometric_rms,
                thresholds: QcThresholds = QcThresholds()) -> list[list[str]]:
    """QC flags for the lights of one night and filter (arrays of equal length, NaN = unknown)."""
    zp, airmass, fwhm, elongation, sky, n_stars, rms = (
        np.asarray(a, dtype=float) for a in (zp, airmass, fwhm, elongation, sky, n_stars,
                                             astrometric_rms))
    n = zp.size
    flags: list[list[str]] = [[] for _ in range(n)]
    t = thresholds

    def add(mask, name):
        for i in np.flatnonzero(mask):
            flags[i].append(name)

    with np.errstate(invalid="ignore"):
        trailed = elongation > t.max_elongation
        # defocus widens both axes, trailing only one: judge focus on the minor axis
        minor = fwhm * np.sqrt(2.0 / (1.0 + np.where(np.isfinite(elongation), elongation, 1.0) ** 2))
        focus = minor > t.focus_factor * _median(minor)
        clouds = (_zp_residual(zp, airmass) < -t.clouds_mag) & ~focus & ~trailed
        add(clouds, "clouds")
        add(trailed, "trailed")
        add(focus, "focus")
        add(sky > t.sky_factor * _median(sky), "bright-sky")
        add(n_stars < t.few_stars_fraction * _median(n_stars), "few-stars")
        add(rms > t.max_astrometric_rms, "astrometry")
    return flags


def _median(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else np.nan


def _zp_residual(zp: np.ndarray, airmass: np.ndarray) -> np.ndarray:
    """Zero point minus the night's clear-sky line ``zp0 − k·X`` (robust fit, clouds clipped).

    Clouds only ever lower a zero point, so the fit is iterated keeping the frames at or above
    the line (within noise): the clear frames define it.
    """
    ok = np.isfinite(zp) & np.isfinite(airmass)
    resid = np.full(zp.size, np.nan)
    if ok.sum() < 2:
        return resid
    x, y = airmass[ok], zp[ok]
    use = np.ones(x.size, dtype=bool)
    fit = None
    for _ in range(10):
        if use.sum() >= 4 and np.ptp(x[use]) > 0.1:
            fit = np.polyfit(x[use], y[use], 1)
            model = np.polyval(fit, x)
        else:
            model = np.full(x.size, np.median(y[use]))
        r = y - model
        sigma = max(1.4826 * np.median(np.abs(r[use] - np.median(r[use]))), 0.01)
        new = r > -3 * sigma
        if np.array_equal(new, use) or new.sum() < 2:
            break
        use = new
    resid[ok] = r
    return resid


def psf_shape(data, x, y, *, background=0.0, box: int = 7, max_stars: int = 60, order=None,
              rms=None, min_peak_snr: float = 30.0):
    """Median FWHM (px) and elongation of the brightest stars from windowed second moments.

    Parameters
    ----------
    data : 2-D array, background-subtracted or with ``background`` given (ADU).
    x, y : 0-based star centres.
    order : indices of the stars brightest first (default: the given order).
    rms : background noise (scalar or 2-D, ADU); stars with a peak below ``min_peak_snr``
        times it are left out.

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
    bkg = background if np.isscalar(background) else np.asarray(background)[rows, cols]
    stamps = data[rows, cols] - bkg
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
        noise = rms if np.isscalar(rms) else np.asarray(rms)[yi, xi]
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
