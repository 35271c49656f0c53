"""Truth tests of clinepipe.photometry on synthetic frames made here with numpy.

Stars are pixel-integrated Gaussians (differences of the error function at the pixel
edges), the sky has a gentle gradient, and the noise is Poisson in electrons plus Gaussian
read noise, converted to ADU with a known gain. Every flux is compared with the injected
flux times the aperture's analytic enclosed fraction ``1 - exp(-r**2 / (2 sigma**2))``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from synthetic_stars import GAIN, READ_NOISE, observe, pixel_gaussians

from clinepipe.photometry.aperture import (
    APERTURE_FWHM_FACTOR,
    FLAG_BLENDED,
    FLAG_EDGE,
    FLAG_MASKED,
    FLAG_NONPOSITIVE,
    FLAG_SATURATED,
    PHOTOMETRY_DTYPE,
    aperture_photometry,
    instrumental_magnitude,
)
from clinepipe.photometry.background import Background, measure_background

FWHM = 3.5  # pixels
SIGMA = FWHM / (2.0 * math.sqrt(2.0 * math.log(2.0)))
SHAPE = (1024, 1024)


def sky_model(shape):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return 300.0 + 0.02 * xx + 0.01 * yy  # ADU/pixel


@pytest.fixture(scope="module")
def field():
    """400 isolated stars on a jittered grid, fluxes log-uniform 1e3..5e5 ADU."""
    rng = np.random.default_rng(20180601)
    g = np.arange(32, 1024 - 32, 48)[:20]
    gx, gy = np.meshgrid(g, g)
    x = gx.ravel() + rng.uniform(-5, 5, gx.size)
    y = gy.ravel() + rng.uniform(-5, 5, gy.size)
    flux = 10 ** rng.uniform(3.0, math.log10(5e5), x.size)
    sky = sky_model(SHAPE)
    truth = sky + pixel_gaussians(SHAPE, x, y, flux, SIGMA)
    data = observe(truth, rng)
    return {"x": x, "y": y, "flux": flux, "sky": sky, "data": data, "truth": truth}


def enclosed(radius):
    """Enclosed fraction of the continuous Gaussian within ``radius``."""
    return 1.0 - math.exp(-radius ** 2 / (2 * SIGMA ** 2))


def expected_flux(field, radius):
    """The injected flux times the aperture's enclosed fraction *for pixel data*.

    Any aperture sum treats a partly covered pixel as uniform, which is not exactly the
    continuous Gaussian's fraction (0.1 % less at 1.5 FWHM, 2.5-3 % less at 0.8 FWHM). The
    fraction is therefore taken from the noiseless star image summed with exact overlaps by
    photutils -- an independent implementation -- and checked against the analytic one.
    """
    from photutils.aperture import CircularAperture
    from photutils.aperture import aperture_photometry as photutils_sum

    stars = field["truth"] - field["sky"]
    aperture = CircularAperture(np.column_stack([field["x"], field["y"]]), r=radius)
    return photutils_sum(stars, aperture, method="exact")["aperture_sum"].value


def normalised(phot, field, radius):
    return (phot["flux"] - expected_flux(field, radius)) / phot["flux_err"]


def assert_honest(z, label):
    assert z.size >= 200
    assert np.all(np.isfinite(z)), label
    mean, std = float(np.mean(z)), float(np.std(z))
    print(f"{label}: n={z.size} mean={mean:+.3f} std={std:.3f}")
    assert abs(mean) < 0.15, f"{label}: biased, mean normalised residual {mean:+.3f}"
    assert 0.8 < std < 1.25, f"{label}: dishonest errors, std of normalised residuals {std:.3f}"


RADIUS = APERTURE_FWHM_FACTOR * FWHM


def test_mesh_background_fluxes_are_unbiased_with_honest_errors(field):
    bkg = measure_background(field["data"], box=64)
    phot = aperture_photometry(field["data"], field["x"], field["y"], RADIUS, background=bkg,
                               gain=GAIN, read_noise=READ_NOISE)
    assert phot.dtype == PHOTOMETRY_DTYPE
    assert np.all(phot["flags"] == 0)
    assert_honest(normalised(phot, field, RADIUS), "mesh background")


def test_ccd_equation_with_a_known_sky_map(field):
    phot = aperture_photometry(field["data"], field["x"], field["y"], RADIUS,
                               background=field["sky"], gain=GAIN, read_noise=READ_NOISE)
    assert_honest(normalised(phot, field, RADIUS), "CCD equation, known sky")
    np.testing.assert_allclose(phot["background"], field["sky"][np.rint(field["y"]).astype(int),
                                                               np.rint(field["x"]).astype(int)])


def test_uncertainty_plane_errors_are_honest(field):
    data = field["data"]
    # what a reduction writes: Poisson noise from the (noisy) pixel values plus read noise
    unc = np.sqrt(np.clip(data, 0, None) / GAIN + (READ_NOISE / GAIN) ** 2).astype(np.float32)
    bkg = measure_background(data)
    phot = aperture_photometry(data, field["x"], field["y"], RADIUS, background=bkg,
                               gain=GAIN, read_noise=READ_NOISE, uncertainty=unc)
    assert_honest(normalised(phot, field, RADIUS), "uncertainty plane")
    # and the plane must not be combined with a second source Poisson term
    no_plane = aperture_photometry(data, field["x"], field["y"], RADIUS, background=bkg,
                                   gain=GAIN, read_noise=READ_NOISE)
    np.testing.assert_allclose(phot["flux_err"], no_plane["flux_err"], rtol=0.08)


def test_annulus_background_is_unbiased_with_honest_errors(field):
    phot = aperture_photometry(field["data"], field["x"], field["y"], RADIUS, background=None,
                               annulus=(10.0, 18.0), gain=GAIN, read_noise=READ_NOISE)
    assert np.all(phot["flags"] == 0)
    assert_honest(normalised(phot, field, RADIUS), "annulus")
    sky_at = field["sky"][np.rint(field["y"]).astype(int), np.rint(field["x"]).astype(int)]
    n_annulus = math.pi * (18.0 ** 2 - 10.0 ** 2)
    level_err = bn_rms(field) / math.sqrt(n_annulus)  # one star's local sky error, ADU
    assert abs(np.mean(phot["background"] - sky_at)) < 0.3 * level_err


def test_enclosed_fraction_of_pixel_data(field):
    for radius, tolerance in ((RADIUS, 0.002), (0.8 * FWHM, 0.04)):
        fraction = expected_flux(field, radius) / field["flux"]
        assert np.all(np.abs(fraction / enclosed(radius) - 1) < tolerance)


def bn_rms(field):
    """The frame's background rms (ADU/pixel)."""
    return measure_background(field["data"]).global_rms


def test_mesh_level_is_corrected_for_the_poisson_skew_of_the_mode():
    # sep's mode (2.5 median - 1.5 mean) sits below the mean of Poisson-skewed sky;
    # aperture_photometry adds 0.42 mu3 / sigma**2 back (here ~0.6 ADU = 0.017 sigma/pixel,
    # which over an 87-pixel aperture would be 0.15 sigma of a faint star's flux).
    rng = np.random.default_rng(3)
    sky = 300.0
    data = observe(np.full((1024, 1024), sky), rng)
    bkg = measure_background(data)
    x = rng.uniform(40, 980, 500)
    y = rng.uniform(40, 980, 500)
    raw_bias = float(np.mean(bkg.level)) - sky
    phot = aperture_photometry(data, x, y, RADIUS, background=bkg, gain=GAIN,
                               read_noise=READ_NOISE)
    corrected_bias = float(np.mean(phot["background"])) - sky
    print(f"mesh level bias: sep {raw_bias:+.3f} ADU, corrected {corrected_bias:+.3f} ADU")
    assert raw_bias < -0.3
    assert abs(corrected_bias) < 0.15


def test_small_aperture_is_unbiased_with_honest_errors(field):
    radius = 0.8 * FWHM
    bkg = measure_background(field["data"])
    phot = aperture_photometry(field["data"], field["x"], field["y"], radius, background=bkg,
                               gain=GAIN, read_noise=READ_NOISE)
    assert_honest(normalised(phot, field, radius), "r = 0.8 FWHM")


def test_global_background_is_recovered_within_its_error():
    rng = np.random.default_rng(7)
    sky = 250.0
    data = observe(np.full((512, 512), sky), rng)
    bkg = measure_background(data, box=64)
    rms_true = math.sqrt(sky / GAIN + (READ_NOISE / GAIN) ** 2)
    assert abs(bkg.global_rms - rms_true) < 0.03 * rms_true
    assert bkg.level.shape == data.shape and bkg.level.dtype == np.float32
    assert abs(bkg.global_level - sky) < 3 * float(bkg.level_error(255.5, 255.5))
    # the level map agrees with the truth within its documented, position-dependent error
    yy, xx = np.mgrid[0:512:4, 0:512:4]
    z = (bkg.level[::4, ::4] - sky) / bkg.level_error(xx, yy)
    print(f"background level: std of normalised residuals {z.std():.2f}, max {np.abs(z).max():.2f}")
    assert np.abs(z).max() < 4.5
    assert 0.4 < z.std() < 1.5


def test_background_follows_a_gradient_and_ignores_masked_pixels(field):
    mask = np.zeros(SHAPE, np.uint8)
    data = field["data"].copy()
    data[100:140, 100:140] = 60000.0  # a blob of junk, masked as bad
    mask[100:140, 100:140] = 4
    data[500, 500] = np.nan
    bkg = measure_background(data, mask=mask)
    assert np.all(np.isfinite(bkg.level))
    inner = (slice(64, -64), slice(64, -64))
    resid = (bkg.level - field["sky"])[inner]
    yy, xx = np.mgrid[64:SHAPE[0] - 64, 64:SHAPE[1] - 64]
    assert np.max(np.abs(resid) / bkg.level_error(xx, yy)) < 5


def test_constant_image_sum_in_a_circle_is_pi_r_squared():
    data = np.full((101, 101), 7.0, np.float32)
    for r in (1.0, 2.5, 4.3, 10.0):
        phot = aperture_photometry(data, [50.0, 50.3], [50.0, 49.6], r, background=0.0,
                                   gain=1.0, read_noise=0.0, blend_fraction=0.0)
        np.testing.assert_allclose(phot["flux"], 7.0 * math.pi * r * r, rtol=1e-9)
        np.testing.assert_allclose(phot["area"], math.pi * r * r, rtol=1e-9)
        # background subtraction: the same image with its level given -> zero flux
        zero = aperture_photometry(data, [50.0], [50.0], r, background=7.0, gain=1.0,
                                   read_noise=0.0)
        assert abs(zero["flux"][0]) < 1e-9


def test_ccd_equation_terms_for_a_constant_sky():
    # sigma**2 = F/g + N (sky/g + RN**2/g**2 + dark/g) for a flat noiseless frame
    r, sky, dark, star = 4.0, 100.0, 20.0, 5000.0
    data = np.full((64, 64), sky, np.float64)
    data[32, 32] += star  # all the star's flux in one pixel
    phot = aperture_photometry(data, [32.0], [32.0], r, background=sky, gain=GAIN,
                               read_noise=READ_NOISE, dark_current=dark)
    n = math.pi * r * r
    expected = star / GAIN + n * (sky / GAIN + (READ_NOISE / GAIN) ** 2 + dark / GAIN)
    np.testing.assert_allclose(phot["flux"][0], star, rtol=1e-9)
    np.testing.assert_allclose(phot["flux_err"][0] ** 2, expected, rtol=1e-9)


def test_flags():
    data = np.full((100, 100), 10.0, np.float32)
    mask = np.zeros((100, 100), np.uint8)
    mask[20, 20] = 1  # saturated
    mask[50, 70] = 2  # hot pixel
    data[80, 80] = 70000.0  # above the saturation level, not in the mask
    x = np.array([20.0, 1.0, 70.0, 40.0, 44.0, 80.0, 60.0])
    y = np.array([20.0, 50.0, 50.0, 80.0, 80.0, 80.0, 20.0])
    phot = aperture_photometry(data, x, y, 3.0, background=np.float64(10.0), gain=1.0,
                               read_noise=5.0, mask=mask, saturation=65000.0)
    f = phot["flags"]
    assert f[0] & FLAG_SATURATED and f[0] & FLAG_MASKED
    assert f[1] & FLAG_EDGE
    assert f[2] & FLAG_MASKED and not f[2] & FLAG_SATURATED
    # neighbours with no light (flux 0 on a flat frame) do not blend: only light matters
    assert not f[3] & FLAG_BLENDED and not f[4] & FLAG_BLENDED and not f[6] & FLAG_BLENDED
    assert f[5] & FLAG_SATURATED
    assert f[6] & FLAG_NONPOSITIVE  # empty sky: flux 0
    assert not f[6] & (FLAG_EDGE | FLAG_MASKED | FLAG_SATURATED)
    # the truncated aperture subtracts the background over its true (smaller) area
    assert abs(phot["flux"][1]) < 1e-6 and phot["area"][1] < math.pi * 9


def test_nonfinite_pixels_and_positions_do_not_poison_others():
    data = np.full((60, 60), 5.0, np.float32)
    data[30, 30] = np.nan
    phot = aperture_photometry(data, [30.0, 10.0, np.nan, -50.0], [30.0, 10.0, 5.0, 5.0], 3.0,
                               background=5.0, gain=1.0, read_noise=1.0)
    assert np.isfinite(phot["flux"][0]) and phot["flags"][0] & FLAG_MASKED
    assert phot["flags"][1] & FLAG_MASKED == 0
    assert np.isnan(phot["flux"][2]) and np.isnan(phot["flux"][3])
    assert phot["flags"][3] & FLAG_EDGE and phot["flags"][3] & FLAG_NONPOSITIVE


def test_big_endian_and_integer_data_give_the_same_answer(field):
    sub = field["data"][:256, :256]
    x, y = field["x"][:5], field["y"][:5]
    ref = aperture_photometry(sub, x, y, 5.0, background=300.0, gain=GAIN, read_noise=READ_NOISE)
    for variant in (sub.astype(">f4"), sub.astype(np.float64), sub.astype(">f8")):
        got = aperture_photometry(variant, x, y, 5.0, background=300.0, gain=GAIN,
                                  read_noise=READ_NOISE)
        np.testing.assert_allclose(got["flux"], ref["flux"], rtol=1e-6)
    ints = np.clip(np.rint(sub), 0, 65535).astype(">u2")
    got = aperture_photometry(ints, x, y, 5.0, background=300.0, gain=GAIN, read_noise=READ_NOISE)
    assert np.all(np.isfinite(got["flux"]))
    bkg = measure_background(sub.astype(">f4"))
    assert isinstance(bkg, Background) and np.isfinite(bkg.global_level)


def test_empty_star_list():
    phot = aperture_photometry(np.zeros((10, 10)), [], [], 3.0, background=0.0, gain=1.0,
                               read_noise=1.0)
    assert phot.shape == (0,) and phot.dtype == PHOTOMETRY_DTYPE


def test_instrumental_magnitude():
    mag, err = instrumental_magnitude([1000.0, 0.0, -5.0, np.nan], [10.0, 1.0, 1.0, 1.0], 10.0)
    np.testing.assert_allclose(mag[0], -2.5 * math.log10(100.0))
    np.testing.assert_allclose(err[0], 2.5 / math.log(10) * 0.01)
    assert np.all(np.isnan(mag[1:])) and np.all(np.isnan(err[1:]))
    per_frame, _ = instrumental_magnitude(np.array([100.0]), np.array([1.0]), None)
    np.testing.assert_allclose(per_frame, -5.0)
    with pytest.raises(ValueError):
        instrumental_magnitude([1.0], [1.0], 0.0)


def test_aperture_fwhm_factor_justification():
    # The numbers of APERTURE_FWHM_FACTOR's comment, for a Gaussian PSF (r in units of the FWHM):
    r = np.linspace(0.2, 3.0, 2801)
    frac = 1 - 2.0 ** (-4 * r ** 2)
    r_bg_opt = r[np.argmax(frac / r)]
    assert r_bg_opt == pytest.approx(0.67, abs=0.01)
    k = APERTURE_FWHM_FACTOR
    f_k = 1 - 2.0 ** (-4 * k ** 2)
    assert math.sqrt(f_k) > 0.999  # source-limited S/N within 0.1 % of the maximum
    sensitivity = 8 * math.log(2) * k ** 2 * (1 - f_k)  # |d f / d ln FWHM|
    assert sensitivity < 0.03  # a 5 % seeing change moves fluxes by < 0.15 %
