"""QC flags relative to the night, and PSF shape from windowed moments, against known answers."""

import math

import numpy as np

from clinepipe.photometry.psf import psf_shape
from clinepipe.photometry.quality import night_flags


def gaussian_field(rng, sx, sy, n=30, size=200):
    yy, xx = np.mgrid[:size, :size]
    xs = rng.uniform(20, size - 20, n)
    ys = rng.uniform(20, size - 20, n)
    img = np.zeros((size, size))
    for x, y in zip(xs, ys):
        img += 1e4 * np.exp(-((xx - x) ** 2 / (2 * sx ** 2) + (yy - y) ** 2 / (2 * sy ** 2)))
    return img + rng.normal(0, 5, img.shape), xs, ys


def test_psf_shape_recovers_fwhm_and_elongation():
    rng = np.random.default_rng(0)
    for sx, sy in [(1.2, 1.2), (3.0, 1.2), (2.0, 2.0)]:
        img, xs, ys = gaussian_field(rng, sx, sy)
        fwhm, elong = psf_shape(img, xs, ys, box=8)
        true_fwhm = 2.3548 * math.sqrt((sx ** 2 + sy ** 2) / 2)
        assert abs(fwhm - true_fwhm) / true_fwhm < 0.03
        assert abs(elong - sx / sy) < 0.05 * sx / sy


def test_night_flags_find_exactly_the_bad_frames():
    rng = np.random.default_rng(1)
    n = 30
    airmass = np.linspace(1.0, 2.0, n)
    zp = 22.0 - 0.2 * airmass + rng.normal(0, 0.01, n)
    fwhm = 2.5 + rng.normal(0, 0.1, n)
    elong = 1.05 + rng.normal(0, 0.02, n)
    sky = 300 + rng.normal(0, 10, n)
    stars = 200 + rng.normal(0, 10, n)
    rms = np.full(n, 0.2)
    zp[5] -= 1.0                 # clouds
    elong[10] = 2.5              # trailed
    fwhm[15] = 6.5               # defocused: its zero point also drops (aperture losses)
    zp[15] -= 0.6
    sky[20] = 900                # moon
    stars[25] = 20               # few stars
    rms[28] = 3.0                # bad astrometry
    flags = night_flags(zp, airmass, fwhm, elong, sky, stars, rms)
    expected = {5: ["clouds"], 10: ["trailed"], 15: ["focus"], 20: ["bright-sky"],
                25: ["few-stars"], 28: ["astrometry"]}
    for i in range(n):
        assert flags[i] == expected.get(i, []), (i, flags[i])


def test_night_flags_tolerate_missing_values():
    flags = night_flags([np.nan, 21.0], [np.nan, 1.2], [np.nan, 2.0], [np.nan, 1.0],
                        [np.nan, 100], [np.nan, 50], [np.nan, 0.1])
    assert flags == [[], []]
