"""A ``ROWORDER = 'TOP-DOWN'`` image is turned bottom-up at read, and what counts its stored
rows turns with it: the WCS (with SIP), BIASSEC/TRIMSEC, a .SRC list (issue 22).

Truth: the sky position of every stored pixel before the flip equals that of the same pixel
after it; a simulated top-down night goes through the whole pipeline in
test_styles_end_to_end.py (maxim, nina, sharpcap: positions within 0.3" of the truth).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from header_fixtures import load_header

from clinepipe.astrometry.wcs import header_wcs, pixel_to_sky
from clinepipe.catalogs.match import separation_arcsec
from clinepipe.ingest.fits_reader import read_image
from clinepipe.ingest.row_order import FLIPPED, flip_header_rows, flip_y


def _same_sky(before: fits.Header, after: fits.Header, nx: int, ny: int) -> float:
    """Largest separation (arcsec) between stored pixel (x, j) through ``before`` and the
    same pixel, now row ny - 1 - j, through ``after``."""
    x, j = np.meshgrid(np.linspace(0, nx - 1, 7), np.linspace(0, ny - 1, 7))
    ra0, dec0 = pixel_to_sky(header_wcs(before), x.ravel(), j.ravel())
    ra1, dec1 = pixel_to_sky(header_wcs(after), x.ravel(), flip_y(j.ravel(), ny))
    return float(np.max(separation_arcsec(ra0, dec0, ra1, dec1)))


WCS_CARDS = ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2",
             "CD2_1", "CD2_2", "CDELT1", "CDELT2", "CROTA1", "CROTA2")


@pytest.mark.parametrize("name", ["NINA_light_5.txt", "NINA_light_4_via_ASTAP.txt"])
def test_an_astap_wcs_of_a_nina_file_turns_with_its_rows(name):
    real = load_header(name)  # its over-long COMMENT cards stop astropy's WCS: its WCS cards
    before = fits.Header([(k, real[k]) for k in WCS_CARDS if k in real])
    nx, ny = 4096, 4096
    if name.startswith("NINA_light_4"):  # the .wcs sidecar has no NAXIS: its CRPIX centre
        nx, ny = int(2 * before["CRPIX1"] - 1), int(2 * before["CRPIX2"] - 1)
    det = before["CD1_1"] * before["CD2_2"] - before["CD1_2"] * before["CD2_1"]
    assert det > 0  # the mirrored parity of a normal sky seen through stored top-down rows
    after = before.copy()
    flip_header_rows(after, ny)
    assert after[FLIPPED] is True
    assert after["CD1_1"] * after["CD2_2"] - after["CD1_2"] * after["CD2_1"] < 0
    assert _same_sky(before, after, nx, ny) < 1e-6


def test_a_sip_wcs_turns_with_its_rows():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crval = [150.0, 20.0]
    w.wcs.crpix = [410.0, 290.0]
    w.wcs.cd = np.array([[-2.7e-4, 3e-6], [2e-6, 2.7e-4]])
    before = w.to_header(relax=True)
    # a strong distortion with every power of y up to 3
    for p, q, a, b in ((2, 0, 3e-6, 1e-6), (1, 1, -2e-6, 4e-6), (0, 2, 5e-6, -3e-6),
                       (2, 1, 1e-9, 2e-9), (0, 3, -2e-9, 3e-9), (1, 2, 3e-9, -1e-9)):
        before[f"A_{p}_{q}"], before[f"B_{p}_{q}"] = a, b
    before["A_ORDER"] = before["B_ORDER"] = 3
    ny, nx = 600, 800
    after = before.copy()
    flip_header_rows(after, ny)
    assert _same_sky(before, after, nx, ny) < 1e-6
    unflipped = before.copy()
    unflipped["CRPIX2"] = ny + 1 - before["CRPIX2"]  # the linear part alone is not enough
    assert _same_sky(before, unflipped, nx, ny) > 100.0


def test_read_image_turns_pixels_wcs_sections_together(tmp_path):
    ny, nx = 52, 40
    stored = np.arange(ny * nx, dtype=np.uint16).reshape(ny, nx)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [83.0, -5.0]
    w.wcs.crpix = [12.0, 9.0]
    w.wcs.cd = np.array([[-3e-4, 0.0], [0.0, 3e-4]])
    header = w.to_header()
    header["ROWORDER"] = "TOP-DOWN"
    header["BIASSEC"] = f"[33:{nx},1:48]"
    header["TRIMSEC"] = "[1:32,1:48]"  # the 4 rows stored last (the bottom ones) are cut
    path = tmp_path / "topdown.fits"
    fits.PrimaryHDU(stored, header).writeto(path)
    data, h = read_image(path)
    np.testing.assert_array_equal(data, stored[::-1].astype(np.float32))
    assert h["ROWORDER"] == "BOTTOM-UP" and h["TRIMSEC"] == "[1:32,5:52]"
    assert h["BIASSEC"] == f"[33:{nx},5:52]"
    # a pixel value and its sky position travel together
    j = 9  # stored row
    ra0, dec0 = pixel_to_sky(header_wcs(header), [5.0], [float(j)])
    ra1, dec1 = pixel_to_sky(header_wcs(h), [5.0], flip_y([j], ny))
    assert data[int(flip_y([j], ny)[0]), 5] == stored[j, 5]
    assert separation_arcsec(ra0, dec0, ra1, dec1)[0] < 1e-6
    # the same section of the stored and of the turned array holds the same pixels
    np.testing.assert_array_equal(np.sort(stored[0:48, 0:32], axis=None),
                                  np.sort(data[4:52, 0:32], axis=None).astype(np.uint16))


def test_a_top_down_subframe_takes_the_masters_rows_it_was_read_from(tmp_path):
    """MaxIm counts YORGSUBF from the sensor's top row: a TOP-DOWN subframe at YORGSUBF = 10
    of a 60-row sensor covers, bottom-up, the master's rows 30..49 (60 - 10 - 20)."""
    from clinepipe.ccd.reduce_light import reduce_light
    from clinepipe.config import CameraConfig, ReductionConfig, SiteConfig
    from clinepipe.ingest.classify import read_frame_info

    sensor_ny, nx, ny, yorg = 60, 24, 20, 10
    rows = np.arange(sensor_ny, dtype=np.float64)[:, None]
    bias = np.repeat(1000.0 + 5.0 * rows, nx, axis=1).astype(np.float32)  # bottom-up master
    top_rows = yorg + np.arange(ny)             # sensor rows counted from the top, as stored
    stored = bias[sensor_ny - 1 - top_rows] + 100.0 + np.arange(nx)[None, :]
    header = fits.Header({"IMAGETYP": "Light Frame", "EXPTIME": 10.0, "FILTER": "V",
                          "DATE-OBS": "2024-03-02T03:00:00", "XBINNING": 1, "YBINNING": 1,
                          "CCD-TEMP": -10.0, "EGAIN": 1.0, "XORGSUBF": 0, "YORGSUBF": yorg,
                          "ROWORDER": "TOP-DOWN"})
    path = tmp_path / "sub.fits"
    fits.PrimaryHDU(stored.astype(np.uint16), header).writeto(path)
    camera = CameraConfig(gain=1.0, read_noise=5.0)
    info = read_frame_info(path, camera, SiteConfig())
    frame = reduce_light(path, info, bias=bias, camera=camera,
                         reduction=ReductionConfig(without_masters="measure"))
    np.testing.assert_allclose(frame.data, 100.0 + np.arange(nx)[None, :].repeat(ny, 0),
                               atol=1e-3)
    assert frame.header["CLPYORG"] == sensor_ny - yorg - ny
