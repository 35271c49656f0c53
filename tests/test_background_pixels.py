"""The background model at given pixels (``Background.level_at``/``rms_at``,
``photometry.mesh_spline``) equals sep's full-frame ``back()``/``rms()`` exactly, and the
photometry that uses it gives the same results as with the full maps.

The frames are made here: a sky with a curved gradient, Poisson + read noise, stars
(pixel-integrated Gaussians) and a masked block, in sizes that are and are not multiples of
the mesh box, with one-row and one-column meshes, odd and even boxes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sep
from synthetic_stars import GAIN, READ_NOISE, observe, pixel_gaussians

from clinepipe.photometry.aperture import aperture_photometry
from clinepipe.photometry.background import Background, measure_background
from clinepipe.photometry.mesh_spline import read_sep_mesh
from clinepipe.photometry.psf import psf_shape

# (rows, columns, box): square and not, multiples of the box and not, one mesh row or
# column, an odd box, two mesh boxes, and boxes smaller than the filter
SHAPES = [(256, 256, 64), (300, 457, 64), (333, 201, 32), (100, 90, 33), (64, 500, 64),
          (40, 500, 64), (500, 60, 64), (130, 129, 64), (97, 97, 7), (211, 389, 25)]


def frame(shape, seed, n_stars=40):
    """A sky with a curved gradient and stars, observed with noise; a masked block."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    sky = 300.0 + 0.05 * xx + 40.0 * np.sin(yy / max(ny, 1) * 3.0) ** 2
    x = rng.uniform(0, nx - 1, n_stars)
    y = rng.uniform(0, ny - 1, n_stars)
    flux = 10 ** rng.uniform(3.0, 5.0, n_stars)
    data = observe(sky + pixel_gaussians(shape, x, y, flux, 1.5), rng)
    mask = np.zeros(shape, np.uint8)
    mask[ny // 3: ny // 2, nx // 4: nx // 2] = 4  # a bad-flat block: sep ignores it
    return data, mask, x, y


@pytest.mark.parametrize("shape_box", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_pixel_equals_seps_maps(shape_box):
    ny, nx, box = shape_box
    data, mask, _, _ = frame((ny, nx), seed=ny * 7 + nx)
    bkg = measure_background(data, mask=mask, box=box)
    ref = sep.Background(data, mask=mask, bw=box, bh=box, fw=3, fh=3)
    yy, xx = np.mgrid[0:ny, 0:nx]
    level, rms = bkg.level_at(xx, yy), bkg.rms_at(xx, yy)
    assert level.dtype == np.float32 and rms.dtype == np.float32
    np.testing.assert_array_equal(level, ref.back(dtype=np.float32))
    np.testing.assert_array_equal(rms, ref.rms(dtype=np.float32))
    # the maps were not evaluated to get there
    assert "level" not in vars(bkg) and "rms" not in vars(bkg)
    assert bkg.shape == (ny, nx)


def test_full_resolution_pixels_and_stamps():
    """A 3352x2532 frame: random pixels, whole stamps at the corners and edges, and a
    masked region, against sep's maps."""
    ny, nx = 2532, 3352
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:ny, 0:nx]
    sky = (300.0 + 0.01 * xx + 30.0 * np.cos(yy / 700.0)).astype(np.float32)
    data = sky + rng.normal(0.0, 12.0, (ny, nx)).astype(np.float32)
    mask = np.zeros((ny, nx), np.uint8)
    mask[1000:1400, 2000:2600] = 8
    data[1000:1400, 2000:2600] = 5e4  # what the mask hides must not matter
    bkg = measure_background(data, mask=mask, box=64)
    ref = sep.Background(data, mask=mask, bw=64, bh=64, fw=3, fh=3)
    back, sigma = ref.back(dtype=np.float32), ref.rms(dtype=np.float32)
    x = rng.integers(0, nx, 20000)
    y = rng.integers(0, ny, 20000)
    np.testing.assert_array_equal(bkg.level_at(x, y), back[y, x])
    np.testing.assert_array_equal(bkg.rms_at(x, y), sigma[y, x])
    offs = np.arange(-7, 8)
    for cx, cy in [(7, 7), (nx - 8, 7), (7, ny - 8), (nx - 8, ny - 8), (nx // 2, 7),
                   (7, ny // 2), (2300, 1200), (nx - 8, 1337)]:
        rows, cols = cy + offs[:, None], cx + offs[None, :]
        np.testing.assert_array_equal(bkg.level_at(cols, rows), back[rows, cols])
        np.testing.assert_array_equal(bkg.rms_at(cols, rows), sigma[rows, cols])


def test_mesh_read_only_when_it_matches():
    """The mesh is read from sep only when sep's struct agrees with the image; otherwise
    the background falls back to the full maps, with the same values."""
    data, mask, _, _ = frame((200, 300), seed=3)
    ref = sep.Background(data, mask=mask, bw=32, bh=32, fw=3, fh=3)
    assert read_sep_mesh(ref, (200, 300), 32) is not None
    assert read_sep_mesh(ref, (200, 301), 32) is None
    assert read_sep_mesh(ref, (200, 300), 64) is None
    assert read_sep_mesh(object(), (200, 300), 32) is None
    fallback = Background(ref, global_level=ref.globalback, global_rms=ref.globalrms, box=32)
    x, y = np.array([0, 299, 150]), np.array([0, 199, 77])
    np.testing.assert_array_equal(fallback.level_at(x, y), ref.back(dtype=np.float32)[y, x])
    np.testing.assert_array_equal(fallback.rms_at(x, y), ref.rms(dtype=np.float32)[y, x])
    assert fallback.shape == (200, 300)


def test_mesh_pixels_outside_the_image_are_refused():
    data, mask, _, _ = frame((100, 120), seed=4)
    bkg = measure_background(data, mask=mask, box=32)
    with pytest.raises(IndexError, match="outside"):
        bkg.level_at(np.array([120]), np.array([0]))
    with pytest.raises(IndexError, match="outside"):
        bkg.rms_at(np.array([0]), np.array([-1]))


def test_photometry_same_as_with_full_maps():
    """FWHM, elongation, fluxes, errors and background per star: identical whether the
    background is read at the pixels or from the full-frame maps, and the fluxes right."""
    shape = (700, 900)
    rng = np.random.default_rng(11)
    g = np.arange(40, 860, 45)
    gx, gy = np.meshgrid(g, g[g < 660])
    x = gx.ravel() + rng.uniform(-4, 4, gx.size)
    y = gy.ravel() + rng.uniform(-4, 4, gy.size)
    flux = 10 ** rng.uniform(3.5, 5.5, x.size)
    sigma = 1.6
    sky = 250.0 + 0.03 * np.mgrid[0:shape[0], 0:shape[1]][1]
    data = observe(sky + pixel_gaussians(shape, x, y, flux, sigma), rng)
    mask = np.zeros(shape, np.uint8)
    mask[300:340, 100:700] = 4
    fast = measure_background(data, mask=mask, box=64)
    full = Background((fast.level, fast.rms), fast.global_level, fast.global_rms, box=64)
    fast = measure_background(data, mask=mask, box=64)  # a new one: no maps evaluated yet
    assert fast.shape == full.shape == shape

    shape_fast = psf_shape(data, x, y, background=fast.level_at, rms=fast.rms_at, box=7)
    shape_full = psf_shape(data, x, y, background=full.level, rms=full.rms, box=7)
    assert shape_fast == shape_full
    assert shape_fast[0] == pytest.approx(2.3548 * sigma, rel=0.05)

    radius = 1.5 * 2.3548 * sigma
    kw = {"gain": GAIN, "read_noise": READ_NOISE, "mask": mask}
    p_fast = aperture_photometry(data, x, y, radius, background=fast, **kw)
    p_full = aperture_photometry(data, x, y, radius, background=full, **kw)
    for name in p_fast.dtype.names:
        np.testing.assert_array_equal(p_fast[name], p_full[name], err_msg=name)
    np.testing.assert_array_equal(fast.level_error(x, y), full.level_error(x, y))
    assert "level" not in vars(fast) and "rms" not in vars(fast)
    # and right: the fluxes of clean stars against the truth, within their errors
    clean = p_fast["flags"] == 0
    enclosed = 1.0 - math.exp(-radius ** 2 / (2 * sigma ** 2))
    z = (p_fast["flux"][clean] - flux[clean] * enclosed) / p_fast["flux_err"][clean]
    assert clean.sum() > 150
    assert abs(np.median(z)) < 0.5 and np.std(z) < 1.5
