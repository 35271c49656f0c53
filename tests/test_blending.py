"""Blending means the neighbour's light matters (issue 19, item 2): the flag follows the
neighbours' estimated light inside the aperture, checked against synthetic images."""

import math

import numpy as np
import sep

from clinepipe.photometry.aperture import (
    FLAG_BLENDED,
    aperture_photometry,
    blend_contamination,
)

GAIN, READ_NOISE, SKY = 1.5, 8.0, 200.0
SHAPE = (80, 80)
FWHM = 3.0  # pixels (3" seeing at 1"/px)
RADIUS = 6.0  # pixels
ZP = 25.0  # mag of 1 ADU (total flux)


def gaussian_star(flux, x0, y0, fwhm=FWHM, shape=SHAPE):
    """A pixel-integrated circular Gaussian of total ``flux`` ADU (10x10 sub-pixels)."""
    s = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    sub = (np.arange(10) + 0.5) / 10 - 0.5
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    img = np.zeros(shape)
    for dy in sub:
        gy = np.exp(-0.5 * ((yy + dy - y0) / s) ** 2)
        for dx in sub:
            img += gy * np.exp(-0.5 * ((xx + dx - x0) / s) ** 2)
    return flux * img / (100 * 2 * math.pi * s * s)


def true_light_in_aperture(neighbour_image, x, y):
    total, _, _ = sep.sum_circle(np.ascontiguousarray(neighbour_image), [x], [y], RADIUS, subpix=0)
    return float(total[0])


def frame_fwhm():
    """The FWHM as the light stages measure it (windowed moments on the pixels), px."""
    from clinepipe.photometry.psf import psf_shape

    fwhm, _ = psf_shape(gaussian_star(1e5, 40.3, 39.6), [40.3], [39.6], box=7)
    assert abs(fwhm - FWHM) < 0.15  # pixelisation adds 1/12 px**2 to the Gaussian's variance
    return fwhm


def measure(data, x, y):
    return aperture_photometry(data, x, y, RADIUS, background=SKY, gain=GAIN,
                               read_noise=READ_NOISE, fwhm=frame_fwhm(), blend_fraction=0.01)


def noisy(image, seed):
    rng = np.random.default_rng(seed)
    electrons = rng.poisson(np.clip((image + SKY) * GAIN, 0, None))
    return (electrons + rng.normal(0, READ_NOISE, image.shape)) / GAIN


def test_faint_neighbour_at_9_5_arcsec_does_not_blend():
    """The issue's target: 14.4 mag with a 16.7-mag star 9.5" away, 6-px aperture at 1"/px."""
    f_star, f_nb = 10 ** (-0.4 * (14.4 - ZP)), 10 ** (-0.4 * (16.7 - ZP))
    x = np.array([40.0, 40.0 + 9.5])
    y = np.array([40.0, 40.0])
    star, nb = gaussian_star(f_star, x[0], y[0]), gaussian_star(f_nb, x[1], y[1])
    phot = measure(noisy(star + nb, 1), x, y)
    assert not phot["flags"][0] & FLAG_BLENDED
    # the other way round the light matters: 8x brighter wings are > 1 % of the faint star
    assert phot["flags"][1] & FLAG_BLENDED
    truth = true_light_in_aperture(nb, x[0], y[0])
    assert truth < 1e-3 * f_star  # the premise: its light is tiny
    assert abs(phot["contamination"][0] - truth) < 0.2 * truth
    # the old rule (any source within twice the aperture radius) flagged it
    assert math.hypot(x[1] - x[0], y[1] - y[0]) < 2 * RADIUS


def test_equal_neighbour_at_1_5_fwhm_blends_and_its_light_is_measured():
    f = 2.0e5
    x = np.array([40.0, 40.0 + 1.5 * FWHM])
    y = np.array([40.0, 40.0 + 0.3])
    a, b = gaussian_star(f, x[0], y[0]), gaussian_star(f, x[1], y[1])
    phot = measure(noisy(a + b, 2), x, y)
    assert np.all(phot["flags"] & FLAG_BLENDED)
    for me, other in ((0, b), (1, a)):
        truth = true_light_in_aperture(other, x[me], y[me])
        assert truth > 0.3 * f  # heavily blended
        assert abs(phot["contamination"][me] - truth) < 0.2 * truth


def test_threshold_is_the_fraction_of_the_flux_or_the_flux_error():
    """The same pair flags or not by ``blend_fraction`` when the noise is large; with almost
    no noise the neighbour's light exceeds the 1-sigma error and flags at any fraction."""
    f = 5.0e4
    x = np.array([40.0, 40.0 + 3.0 * FWHM])
    y = np.array([40.0, 40.0])
    img = gaussian_star(f, x[0], y[0]) + gaussian_star(f, x[1], y[1])
    frac = blend_contamination(x, y, [f, f], RADIUS, FWHM)[0] / f
    assert 1e-3 < frac < 0.05

    def flags(sky, gain, fraction):
        phot = aperture_photometry(img + sky, x, y, RADIUS, background=sky, gain=gain,
                                   read_noise=0.0, fwhm=FWHM, blend_fraction=fraction)
        assert phot["contamination"][0] < phot["flux_err"][0] or sky == 0
        return phot["flags"][0]

    bright_sky = 1.0e6  # ADU: a flux error of ~1e4 ADU, far above the neighbour's light
    assert not flags(bright_sky, 1.0, 2 * frac) & FLAG_BLENDED
    assert flags(bright_sky, 1.0, 0.5 * frac) & FLAG_BLENDED
    assert flags(0.0, 1e6, 2 * frac) & FLAG_BLENDED  # its light is above the tiny error


def test_many_stars_vectorised_matches_each_pair_alone():
    """Isolated pairs in one long list: each star's contamination is what its pair alone gives."""
    rng = np.random.default_rng(5)
    n = 200
    x = np.repeat(np.arange(n // 2) * 100.0, 2) + rng.uniform(0, 1, n)
    y = rng.uniform(0, 1, n)
    x[1::2] += rng.uniform(2.0, 12.0, n // 2)
    flux = rng.uniform(1e3, 1e5, n)
    together = blend_contamination(x, y, flux, RADIUS, FWHM)
    for k in range(0, n, 2):  # the reference: one call per pair
        alone = blend_contamination(x[k:k + 2], y[k:k + 2], flux[k:k + 2], RADIUS, FWHM)
        np.testing.assert_allclose(together[k:k + 2], alone, rtol=1e-12, atol=1e-9)
    # light falls with distance: the closest pairs share most
    d = x[1::2] - x[0::2]
    assert np.corrcoef(d, together[0::2] / flux[1::2])[0, 1] < -0.5
