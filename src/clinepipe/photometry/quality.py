"""Quality flags of a night's frames (clouds, trailed, focus, bright-sky, few-stars, astrometry) from their photometric summaries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QcThresholds:
    """The thresholds of :func:`night_flags` (``[qc]`` in the configuration, same names).

    Attributes
    ----------
    clouds_mag : float
        ``clouds``: zero point this far (mag) below the night's clear-sky line ``zp0 - k X``.
    max_elongation : float
        ``trailed``: star elongation (major/minor axis ratio) above this.
    focus_factor : float
        ``focus``: minor-axis FWHM above this times the night's median (a ratio; defocus widens
        both axes, trailing only one).
    sky_factor : float
        ``bright-sky``: sky level above this times the night's median (a ratio).
    few_stars_fraction : float
        ``few-stars``: fewer stars than this fraction of the night's median number.
    max_astrometric_rms : float
        ``astrometry``: RMS of the catalog match separations above this (arcsec).
    """
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


