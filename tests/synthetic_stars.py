"""Synthetic star images shared by the photometry and astrometry tests: pixel-integrated
Gaussians (exact, via the error function) and a CCD's Poisson + read noise."""

from __future__ import annotations

import math

import numpy as np

GAIN = 0.4  # e-/ADU (the observatory's STF-8300)
READ_NOISE = 9.3  # e-
_erf = np.vectorize(math.erf, otypes=[float])


def pixel_gaussians(shape, x, y, flux, sigma):
    """Noiseless image of pixel-integrated circular Gaussians (0-based centres, ADU)."""
    image = np.zeros(shape)
    half = int(math.ceil(6 * sigma)) + 1
    offs = np.arange(-half, half + 1)
    cx, cy = np.rint(x).astype(int), np.rint(y).astype(int)
    s2 = math.sqrt(2.0) * sigma

    def profile(c, centre):
        edge = (c[:, None] + offs[None, :]) - centre[:, None]  # pixel centre - star centre
        return 0.5 * (_erf((edge + 0.5) / s2) - _erf((edge - 0.5) / s2))

    stamps = flux[:, None, None] * profile(cy, y)[:, :, None] * profile(cx, x)[:, None, :]
    rows = np.broadcast_to(cy[:, None, None] + offs[None, :, None], stamps.shape)
    cols = np.broadcast_to(cx[:, None, None] + offs[None, None, :], stamps.shape)
    ok = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    np.add.at(image, (rows[ok], cols[ok]), stamps[ok])
    return image


def observe(expected_adu, rng):
    """Poisson electrons + read noise, back to ADU (float32, like a reduced frame)."""
    electrons = rng.poisson(GAIN * np.clip(expected_adu, 0, None)).astype(np.float64)
    electrons += rng.normal(0.0, READ_NOISE, expected_adu.shape)
    return (electrons / GAIN).astype(np.float32)
