"""Truth tests of clinepipe.astrometry: .SRC parsing, WCS headers, detection, plate solving.

Images are made here with numpy (pixel-integrated Gaussians, Poisson + read noise); WCS
headers are built with astropy; the plate-solving test renders real Tycho-2 stars read from
the installed astrometry.net index files with a known WCS and checks the solution.
"""

from __future__ import annotations

import glob
import math
import shutil
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from synthetic_stars import GAIN, READ_NOISE, observe, pixel_gaussians

from clinepipe.astrometry import solve as astrometry
from clinepipe.astrometry.detect import (
    SOURCE_DEBLENDED,
    SOURCE_DTYPE,
    SOURCE_EDGE,
    SOURCE_SATURATED,
    detect_sources,
    fwhm_from_half_light_radius,
)
from clinepipe.astrometry.solve import solve_field, solve_field_command
from clinepipe.astrometry.src_lists import SRC_COLUMNS, read_src, src_positions
from clinepipe.astrometry.wcs import (
    header_wcs,
    match_residual_arcsec,
    pixel_scale_arcsec,
    pixel_to_sky,
    sky_to_pixel,
)
from clinepipe.errors import BadInput, ClinepipeError, UsageError

# ---------------------------------------------------------------------------------------
# .SRC
# ---------------------------------------------------------------------------------------

SRC_HEADER = ["#HEIGHT= 844", "#WIDTH = 1117", "#TIME  = 2018-03-14T02:11:09.000",
              "# X_IMAGE Y_IMAGE MAG_APER FWHM_IMAGE FLAGS CLASS_STAR ELONGATION "
              "ELLIPTICITY A_IMAGE B_IMAGE THETA_IMAGE"]
SRC_ROWS = [
    "  101.250   52.500  -9.8731   3.21  0  0.98  1.05  0.048  1.40  1.33   12.5",
    "    1.000    1.000  -7.1000   2.90  2  0.91  1.10  0.091  1.30  1.18  -45.0",
    " 1117.000  844.000 -10.2000   3.40 16  0.99  1.02  0.020  1.50  1.47   80.1",
]


def write_src(path, lines, ending):
    path.write_bytes(ending.join(lines).encode() + ending.encode())
    return path


@pytest.mark.parametrize("ending", ["\n", "\r\n", "mixed"])
def test_read_src_line_endings_and_positions(tmp_path, ending):
    lines = SRC_HEADER + SRC_ROWS
    if ending == "mixed":
        text = "".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(lines))
        path = tmp_path / "frame.SRC"
        path.write_bytes(text.encode())
    else:
        path = write_src(tmp_path / "frame.SRC", lines, ending)
    table = read_src(path)
    assert table.colnames == list(SRC_COLUMNS)
    assert len(table) == 3
    assert table.meta["HEIGHT"] == 844 and table.meta["WIDTH"] == 1117
    assert table.meta["TIME"] == "2018-03-14T02:11:09.000"
    assert table["FLAGS"].dtype.kind == "i" and list(table["FLAGS"]) == [0, 2, 16]
    np.testing.assert_allclose(table["X_IMAGE"], [101.25, 1.0, 1117.0])  # as written
    x0, y0 = src_positions(table)
    np.testing.assert_allclose(x0, [100.25, 0.0, 1116.0])  # 1-based -> 0-based
    np.testing.assert_allclose(y0, [51.5, 0.0, 843.0])
    np.testing.assert_allclose(table["THETA_IMAGE"], [12.5, -45.0, 80.1])


def test_read_src_empty_body_is_an_empty_table(tmp_path):
    table = read_src(write_src(tmp_path / "empty.SRC", SRC_HEADER, "\r\n"))
    assert len(table) == 0 and table.colnames == list(SRC_COLUMNS)
    assert table.meta["WIDTH"] == 1117
    x0, y0 = src_positions(table)
    assert x0.size == 0 and y0.size == 0


@pytest.mark.parametrize("bad_line, what", [
    ("  10.0 20.0 -9.0 3.0 0 0.9 1.0 0.0 1.0 1.0", "columns"),
    ("  10.0 20.0 -9.0 3.0 0 0.9 1.0 0.0 1.0 1.0 5.0 7.0", "columns"),
    ("  10.0 abc -9.0 3.0 0 0.9 1.0 0.0 1.0 1.0 5.0", "not a number"),
    ("  nan 20.0 -9.0 3.0 0 0.9 1.0 0.0 1.0 1.0 5.0", "non-finite"),
    ("  10.0 20.0 -9.0 3.0 0.5 0.9 1.0 0.0 1.0 1.0 5.0", "FLAGS"),
])
def test_read_src_malformed_names_file_and_line(tmp_path, bad_line, what):
    path = write_src(tmp_path / "broken_frame.SRC", SRC_HEADER + SRC_ROWS[:2] + [bad_line], "\n")
    with pytest.raises(BadInput) as info:
        read_src(path)
    assert info.value.reason == "malformed .SRC"
    assert "broken_frame.SRC" in info.value.message
    assert "line 7" in info.value.message and what in info.value.message


def test_read_src_unreadable(tmp_path):
    with pytest.raises(BadInput) as info:
        read_src(tmp_path / "missing.SRC")
    assert "missing.SRC" in info.value.message
    binary = tmp_path / "binary.SRC"
    binary.write_bytes(b"\x00\x01\x02")
    with pytest.raises(BadInput, match="binary.SRC"):
        read_src(binary)


# ---------------------------------------------------------------------------------------
# WCS
# ---------------------------------------------------------------------------------------

def cd_header(rotation_deg=12.0, scale_arcsec=1.0, ra=150.1, dec=36.1):
    """TheSkyX Image Link style: TAN with a CD matrix and the deprecated RADECSYS."""
    t = math.radians(rotation_deg)
    s = scale_arcsec / 3600.0
    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, 1117, 844
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = ra, dec
    h["CRPIX1"], h["CRPIX2"] = 559.0, 422.5
    h["CD1_1"], h["CD1_2"] = -s * math.cos(t), s * math.sin(t)
    h["CD2_1"], h["CD2_2"] = s * math.sin(t), s * math.cos(t)
    h["RADECSYS"], h["EQUINOX"] = "FK5", 2000.0
    return h


def pc_header():
    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, 1000, 800
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = 310.25, -12.5
    h["CRPIX1"], h["CRPIX2"] = 500.5, 400.5
    h["CDELT1"], h["CDELT2"] = -2.0 / 3600, 2.0 / 3600
    h["PC1_1"], h["PC1_2"], h["PC2_1"], h["PC2_2"] = 0.8, -0.6, 0.6, 0.8
    h["RADESYS"] = "ICRS"
    return h


def sip_header():
    h = cd_header(rotation_deg=-30.0, scale_arcsec=3.0, ra=10.5, dec=60.2)
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    h["A_ORDER"], h["B_ORDER"] = 2, 2
    h["A_2_0"], h["A_0_2"], h["A_1_1"] = 2e-6, -1e-6, 3e-6
    h["B_2_0"], h["B_0_2"], h["B_1_1"] = -1e-6, 2e-6, 1e-6
    return h


@pytest.mark.parametrize("make", [cd_header, pc_header, sip_header])
def test_header_wcs_round_trips_sky_positions(make):
    header = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FITSFixedWarning must be silenced inside
        wcs = header_wcs(header)
    assert wcs is not None and wcs.has_celestial
    if "SIP" in header["CTYPE1"]:
        assert wcs.sip is not None
    rng = np.random.default_rng(3)
    x0 = rng.uniform(0, header["NAXIS1"] - 1, 200)
    y0 = rng.uniform(0, header["NAXIS2"] - 1, 200)
    ra, dec = pixel_to_sky(wcs, x0, y0)
    x1, y1 = sky_to_pixel(wcs, ra, dec)
    scale = pixel_scale_arcsec(wcs)
    worst = np.max(np.hypot(x1 - x0, y1 - y0)) * scale
    assert worst < 0.01  # arcsec
    # 0-based in memory: pixel (0, 0) is FITS pixel (1, 1)
    ref = WCS(header) if "SIP" not in header["CTYPE1"] else None
    if ref is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r1, d1 = ref.all_pix2world([[1.0, 1.0]], 1)[0]
        r0, d0 = pixel_to_sky(wcs, [0.0], [0.0])
        assert abs(r0[0] - r1) * 3600 < 1e-6 and abs(d0[0] - d1) * 3600 < 1e-6


def test_header_wcs_scale_and_orientation_of_theskyx_header():
    wcs = header_wcs(cd_header(rotation_deg=0.0, scale_arcsec=1.0))
    ra0, dec0 = pixel_to_sky(wcs, [558.0], [421.5])  # CRPIX, 0-based
    assert abs(ra0[0] - 150.1) < 1e-9 and abs(dec0[0] - 36.1) < 1e-9
    ra1, dec1 = pixel_to_sky(wcs, [558.0], [521.5])  # +100 rows = +100" north
    assert abs((dec1[0] - dec0[0]) * 3600 - 100.0) < 0.01


def test_header_wcs_none_for_missing_or_broken():
    assert header_wcs(fits.Header()) is None
    assert header_wcs(None) is None
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "LINEAR", "LINEAR"
    h["CRVAL1"], h["CRVAL2"], h["CDELT1"], h["CDELT2"] = 0.0, 0.0, 1.0, 1.0
    assert header_wcs(h) is None  # not celestial
    singular = cd_header()
    for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        singular[key] = 1e-4  # rank 1
    assert header_wcs(singular) is None
    zero = cd_header()
    for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        zero[key] = 0.0
    assert header_wcs(zero) is None


def test_pixel_to_sky_without_wcs_gives_nan():
    ra, dec = pixel_to_sky(None, [1.0, 2.0], [3.0, 4.0])
    assert ra.shape == (2,) and np.all(np.isnan(ra)) and np.all(np.isnan(dec))


def test_match_residual_arcsec():
    wcs = header_wcs(cd_header(scale_arcsec=1.0))
    rng = np.random.default_rng(11)
    x0, y0 = rng.uniform(20, 1000, 300), rng.uniform(20, 800, 300)
    ra, dec = pixel_to_sky(wcs, x0, y0)
    jitter = 0.3  # arcsec per axis
    ra_cat = ra + rng.normal(0, jitter, ra.size) / 3600 / np.cos(np.radians(dec))
    dec_cat = dec + rng.normal(0, jitter, dec.size) / 3600
    rms = match_residual_arcsec(wcs, x0, y0, ra_cat, dec_cat)
    assert abs(rms - jitter * math.sqrt(2)) < 0.05
    # a WCS 30" off: nothing but chance pairs within the 3" match radius
    shifted = match_residual_arcsec(wcs, x0 + 30, y0, ra_cat, dec_cat)
    assert math.isnan(shifted) or shifted > 2 * rms
    assert math.isnan(match_residual_arcsec(wcs, x0[:20] + 30, y0[:20], ra_cat[:20], dec_cat[:20]))


# ---------------------------------------------------------------------------------------
# detection
# ---------------------------------------------------------------------------------------

FWHM = 3.0
SIGMA = FWHM / (2 * math.sqrt(2 * math.log(2)))


@pytest.fixture(scope="module")
def star_field():
    rng = np.random.default_rng(42)
    shape = (768, 768)
    g = np.arange(24, 768 - 24, 36)
    gx, gy = np.meshgrid(g, g)
    x = gx.ravel() + rng.uniform(-6, 6, gx.size)
    y = gy.ravel() + rng.uniform(-6, 6, gy.size)
    flux = 10 ** rng.uniform(2.5, 5.5, x.size)  # ADU
    sky = 300.0
    data = observe(sky + pixel_gaussians(shape, x, y, flux, SIGMA), rng)
    # S/N in an aperture of radius 1 FWHM (enclosed 94 %), the CCD equation in electrons
    n_pix = math.pi * FWHM ** 2
    signal = 0.94 * flux * GAIN
    snr = signal / np.sqrt(signal + n_pix * (sky * GAIN + READ_NOISE ** 2))
    return {"data": data, "x": x, "y": y, "flux": flux, "snr": snr, "sky": sky}


def nearest(src, x, y):
    d = np.hypot(src["x"][None, :] - x[:, None], src["y"][None, :] - y[:, None])
    j = np.argmin(d, axis=1)
    return j, d[np.arange(x.size), j]


def test_detection_completeness_and_centroids(star_field):
    f = star_field
    src = detect_sources(f["data"], threshold=3.0)
    assert src.dtype == SOURCE_DTYPE
    assert np.all(np.diff(src["flux"]) <= 0)  # brightest first
    j, d = nearest(src, f["x"], f["y"])
    found = d < 1.5
    strong = f["snr"] > 20
    completeness = found[strong].mean()
    bright = f["snr"] > 100
    dx = src["x"][j] - f["x"]
    dy = src["y"][j] - f["y"]
    err = np.hypot(dx, dy)[bright]
    print(f"detection: {strong.sum()} stars with S/N>20, completeness {completeness:.3f}; "
          f"{bright.sum()} with S/N>100: max centroid error {err.max():.3f} px, "
          f"median {np.median(err):.3f} px, mean offset ({dx[bright].mean():+.3f}, "
          f"{dy[bright].mean():+.3f})")
    assert strong.sum() > 150
    assert completeness >= 0.95
    assert err.max() < 0.1  # positions of bright stars within 0.1 pixel, 0-based
    assert abs(dx[bright].mean()) < 0.02 and abs(dy[bright].mean()) < 0.02
    # few spurious detections: almost every source is a star
    k, dk = nearest({"x": f["x"], "y": f["y"]}, src["x"], src["y"])
    assert np.mean(dk < 1.5) > 0.95
    # FWHM of clean bright stars: the injected one
    clean = (src["flags"] == 0) & (src["flux"] > 3e4)
    print(f"detection: median FWHM of bright stars {np.median(src['fwhm'][clean]):.3f} px, "
          f"injected {FWHM}")
    assert abs(np.median(src["fwhm"][clean]) - FWHM) < 0.03 * FWHM
    assert abs(np.median(src["elongation"][clean]) - 1.0) < 0.05


def test_fwhm_from_half_light_radius_on_noiseless_pixel_stars():
    rng = np.random.default_rng(0)
    g = np.arange(40, 480, 44)
    gx, gy = np.meshgrid(g, g)
    x = gx.ravel() + rng.uniform(-0.5, 0.5, gx.size)
    y = gy.ravel() + rng.uniform(-0.5, 0.5, gy.size)
    import sep

    for fwhm in (2.0, 3.5, 6.0):
        image = pixel_gaussians((512, 512), x, y, np.full(x.size, 1e4), fwhm / 2.3548)
        r_half, _ = sep.flux_radius(image, x, y, np.full(x.size, 4 * fwhm), 0.5, subpix=5)
        got = fwhm_from_half_light_radius(r_half)
        assert abs(np.median(got) - fwhm) < 0.01 * fwhm
    assert np.isnan(fwhm_from_half_light_radius(0.0))


def test_detection_flags_and_input_types():
    rng = np.random.default_rng(5)
    shape = (200, 300)
    x = np.array([100.0, 200.0, 1.0, 149.0, 155.0])
    y = np.array([100.0, 50.0, 120.0, 160.0, 160.0])
    flux = np.array([4e5, 2e4, 2e4, 3e4, 3e4])
    truth = 300.0 + pixel_gaussians(shape, x, y, flux, SIGMA)
    data = observe(truth, rng)
    data = np.minimum(data, 30000.0)  # star 0 is clipped: saturated
    src = detect_sources(data, saturation=30000.0)
    j, d = nearest(src, x, y)
    assert np.all(d[:3] < 1.0)
    flags = src["flags"][j]
    assert flags[0] & SOURCE_SATURATED
    assert not flags[1] & (SOURCE_SATURATED | SOURCE_EDGE)
    assert flags[2] & SOURCE_EDGE
    pair = src[(np.abs(src["y"] - 160) < 3) & (np.abs(src["x"] - 152) < 5)]  # 2 FWHM apart
    assert len(pair) == 2 and np.all(pair["flags"] & SOURCE_DEBLENDED)
    # the same frame as the reduction writes it: saturated pixels in the mask, a bad column
    mask = np.zeros(shape, np.uint8)
    mask[data >= 30000.0] |= 1
    data2 = data.copy()
    data2[:, 250] = 60000.0
    mask[:, 250] |= 4
    data2[10, 10] = np.nan
    src2 = detect_sources(data2, mask=mask)
    j2, d2 = nearest(src2, x[:3], y[:3])
    assert np.all(d2 < 1.0) and src2["flags"][j2[0]] & SOURCE_SATURATED
    assert not np.any(np.abs(src2["x"] - 250) < 2)  # the bad column is not a source
    # big-endian float32 (as read from FITS) and int16 data give the same sources
    for variant in (data.astype(">f4"), data.astype(">f8")):
        other = detect_sources(variant)
        np.testing.assert_allclose(np.sort(other["x"]), np.sort(detect_sources(data)["x"]),
                                   atol=1e-4)
    ints = detect_sources(np.clip(data, 0, 32767).astype(">i2"))
    assert len(ints) >= 4


def test_detection_empty_and_constant_frames():
    assert len(detect_sources(np.full((64, 64), 100.0, np.float32))) == 0
    rng = np.random.default_rng(1)
    assert len(detect_sources(rng.normal(100, 5, (128, 128)), threshold=6.0)) == 0


def test_detection_on_a_big_crowded_frame():
    rng = np.random.default_rng(9)
    shape = (2048, 2048)
    n = 3000
    x, y = rng.uniform(5, 2043, n), rng.uniform(5, 2043, n)
    flux = 10 ** rng.uniform(4, 6.5, n)
    data = rng.normal(200, 10, shape).astype(np.float32)
    data += pixel_gaussians(shape, x, y, flux, 2.5).astype(np.float32)
    src = detect_sources(data, threshold=5.0)
    assert len(src) > 0.8 * n


def test_detection_grows_a_full_pixel_stack(monkeypatch, star_field):
    import sep

    before = sep.get_extract_pixstack()
    try:
        monkeypatch.setattr("clinepipe.astrometry.detect._PIXSTACK_START", 50)
        sep.set_extract_pixstack(50)  # far too small for this frame: sep reports it full
        src = detect_sources(star_field["data"])
        assert len(src) > 250 and sep.get_extract_pixstack() > 50
    finally:
        sep.set_extract_pixstack(max(before, sep.get_extract_pixstack()))


# ---------------------------------------------------------------------------------------
# plate solving
# ---------------------------------------------------------------------------------------

def test_solve_field_command_construction(tmp_path):
    cmd = solve_field_command(tmp_path / "s.xyls", 1117, 844, tmp_path, scale_low=0.9,
                              scale_high=1.1, ra=150.0, dec=36.0, radius=2.0, timeout=60)
    joined = " ".join(cmd)
    assert cmd[0] == "solve-field"
    for part in ("--width 1117", "--height 844", "--x-column X", "--y-column Y",
                 "--sort-column FLUX", "--no-plots", "--overwrite", "--new-fits none",
                 "--scale-units arcsecperpix", "--scale-low 0.9", "--scale-high 1.1",
                 "--ra 150.00000000", "--dec 36.00000000", "--radius 2", "--cpulimit 60",
                 f"--dir {tmp_path}", "--out solution"):
        assert part in joined
    bare = solve_field_command(tmp_path / "s.xyls", 100, 100, tmp_path)
    assert "--scale-low" not in bare and "--ra" not in bare


def test_solve_field_not_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(astrometry.shutil, "which", lambda name: None)
    with pytest.raises(ClinepipeError) as info:
        solve_field(tmp_path / "x.fits", tmp_path / "y.fits")
    assert "solve-field (astrometry.net) is not installed" in info.value.message
    assert "x.fits" in info.value.message


def test_solution_rms_rejects_a_bad_fit(tmp_path):
    """The residual check alone, with a hand-made .corr table."""
    from astropy.table import Table

    wcs = header_wcs(cd_header(scale_arcsec=2.0))
    rng = np.random.default_rng(2)
    fx, fy = rng.uniform(0, 1000, 40), rng.uniform(0, 800, 40)
    ra, dec = pixel_to_sky(wcs, fx, fy)
    good = tmp_path / "good.corr"
    Table({"field_x": fx + 1 + rng.normal(0, 0.2, 40), "field_y": fy + 1 + rng.normal(0, 0.2, 40),
           "index_ra": ra, "index_dec": dec}).write(good, format="fits")
    rms, n = astrometry._solution_rms(wcs, good)
    assert n == 40 and 0.15 < rms < 0.45
    bad = tmp_path / "bad.corr"
    Table({"field_x": fx + 4.0, "field_y": fy + 1, "index_ra": ra,
           "index_dec": dec}).write(bad, format="fits")
    rms, _ = astrometry._solution_rms(wcs, bad)
    assert abs(rms - 3.0) < 1e-6


def _index_files():
    return sorted(glob.glob("/usr/share/astrometry/index-tycho2-07*.fits"))


def tycho_stars(ra0, dec0, radius_deg):
    """RA, Dec (deg) and V_T mag of the Tycho-2 stars an astrometry.net index holds near
    (ra0, dec0): the star kd-tree stores unit vectors as scaled uint32 (low + value / scale,
    from ``kdtree_range_stars``), and the tag-along table carries MAG_VT in the same order."""
    with fits.open(_index_files()[0], memmap=True) as hdus:
        by_name = {h.header.get("TTYPE1"): h for h in hdus[1:]}
        rng = np.frombuffer(by_name["kdtree_range_stars"].data.tobytes(), "<f8")
        raw = np.frombuffer(by_name["kdtree_data_stars"].data.tobytes(), "<u4").reshape(-1, 3)
        xyz = rng[:3] + raw * (1.0 / rng[6])
        target = np.array([math.cos(math.radians(dec0)) * math.cos(math.radians(ra0)),
                           math.cos(math.radians(dec0)) * math.sin(math.radians(ra0)),
                           math.sin(math.radians(dec0))])
        near = xyz @ target > math.cos(math.radians(radius_deg))
        xyz = xyz[near]
        mag = np.asarray([h for h in hdus if h.header.get("AN_FILE", "").strip() == "TAGALONG"][0]
                         .data["MAG_VT"])[near]
    ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360
    dec = np.degrees(np.arcsin(np.clip(xyz[:, 2] / np.linalg.norm(xyz, axis=1), -1, 1)))
    return ra, dec, mag


_SOLVER_MARKS = [
    pytest.mark.solver,
    pytest.mark.skipif(shutil.which("solve-field") is None,
                       reason="astrometry.net solve-field is not installed (make system-deps)"),
    pytest.mark.skipif(not _index_files(),
                       reason="astrometry.net Tycho-2 index files (astrometry-data-tycho2, "
                              "index-tycho2-07) are not installed in /usr/share/astrometry"),
]


def needs_solver(test):
    """Mark ``solver`` and skip, with the reason, when solve-field or the index is missing."""
    for mark in _SOLVER_MARKS:
        test = mark(test)
    return test


def tycho_field(tmp_path, header_extra):
    """A 1-degree, 4.5"/px frame of the real Tycho-2 stars around RA 300, Dec +35 (Cygnus),
    rendered through a known TAN WCS rotated by 23 degrees; returns (path, true WCS, image)."""
    ra0, dec0, scale, size = 300.0, 35.0, 4.5, 800
    truth = fits.Header()
    t = math.radians(23.0)
    s = scale / 3600
    truth["CTYPE1"], truth["CTYPE2"] = "RA---TAN", "DEC--TAN"
    truth["CRVAL1"], truth["CRVAL2"] = ra0, dec0
    truth["CRPIX1"], truth["CRPIX2"] = size / 2 + 0.5, size / 2 + 0.5
    truth["CD1_1"], truth["CD1_2"] = -s * math.cos(t), s * math.sin(t)
    truth["CD2_1"], truth["CD2_2"] = s * math.sin(t), s * math.cos(t)
    true_wcs = WCS(truth)
    ra, dec, mag = tycho_stars(ra0, dec0, 1.0)
    x, y = sky_to_pixel(true_wcs, ra, dec)
    inside = (x > -10) & (x < size + 10) & (y > -10) & (y < size + 10)
    assert inside.sum() >= 20, "too few index stars in the test field"
    flux = 2e5 * 10 ** (-0.4 * (mag[inside] - 9.0))
    rng = np.random.default_rng(2024)
    image = observe(200.0 + pixel_gaussians((size, size), x[inside], y[inside], flux, 1.1), rng)
    header = fits.Header()
    header["IMAGETYP"], header["EXPTIME"], header["OBJECT"] = "Light Frame", 60.0, "test"
    for key, value in header_extra.items():
        header[key] = value
    path = tmp_path / "light.fits"
    fits.PrimaryHDU(image.astype(">f4"), header).writeto(path)
    return path, true_wcs, image


def assert_solution_matches(out, true_wcs, image):
    size = image.shape[0]
    with fits.open(out) as hdus:
        solved_header = hdus[0].header
        np.testing.assert_array_equal(hdus[0].data, image)
    assert solved_header["IMAGETYP"] == "Light Frame" and solved_header["ASTRMRMS"] < 1.0
    solved = header_wcs(solved_header)
    assert solved is not None
    gx, gy = np.meshgrid(np.linspace(0, size - 1, 9), np.linspace(0, size - 1, 9))
    sra, sdec = pixel_to_sky(solved, gx.ravel(), gy.ravel())
    tx, ty = sky_to_pixel(true_wcs, sra, sdec)
    offset = np.hypot(tx - gx.ravel(), ty - gy.ravel())
    print(f"solve-field: {solved_header['ASTRMNUM']} stars, rms {solved_header['ASTRMRMS']:.3f} px;"
          f" solved vs true WCS over the frame: max {offset.max():.3f} px")
    assert offset.max() < 1.0
    return solved_header


@needs_solver
def test_solve_field_recovers_the_true_wcs_of_real_tycho2_stars(tmp_path):
    # a stale, wrong WCS in the header, to be replaced (not merged with)
    stale = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 1.0, "CRVAL2": 2.0,
             "CDELT1": 1e-3, "CDELT2": 1e-3, "PC1_1": 1.0, "PC2_2": 1.0}
    raw, true_wcs, image = tycho_field(tmp_path, stale)
    before = raw.read_bytes()
    out = solve_field(raw, tmp_path / "solved.fits", scale_low=4.0, scale_high=5.0,
                      ra=300.5, dec=34.6, radius=3.0, timeout=60)
    assert raw.read_bytes() == before  # the raw file is never modified
    header = assert_solution_matches(out, true_wcs, image)
    assert "PC1_1" not in header and "CDELT1" not in header and "CD1_1" in header
    assert header["CTYPE1"] == "RA---TAN-SIP" and "A_ORDER" in header


@needs_solver
def test_solve_field_uses_the_mount_pointing_in_the_header(tmp_path):
    pointing = {"OBJCTRA": "20 02 00.0", "OBJCTDEC": "+34 50 00", "FOCALLEN": 500.0,
                "XPIXSZ": 10.9}  # 4.5"/px
    raw, true_wcs, image = tycho_field(tmp_path, pointing)
    hints = astrometry._header_hints(fits.getheader(raw))
    assert abs(hints["ra"] - 300.5) < 1e-6 and abs(hints["dec"] - 34.8333333) < 1e-6
    assert hints["scale_low"] < 4.5 < hints["scale_high"]
    assert_solution_matches(solve_field(raw, tmp_path / "solved.fits", timeout=60),
                            true_wcs, image)


def test_header_hints():
    h = fits.Header()
    assert astrometry._header_hints(h) == {}
    h["RA"], h["DEC"] = 150.25, -20.5
    h["FOCALLEN"], h["XPIXSZ"] = 1000.0, 16.2  # 3.34"/px
    hints = astrometry._header_hints(h)
    assert hints["ra"] == 150.25 and hints["dec"] == -20.5 and hints["radius"] == 2.0
    assert hints["scale_low"] == pytest.approx(0.8 * 3.3415, rel=1e-3)
    only_wcs = cd_header(scale_arcsec=1.0)
    hints = astrometry._header_hints(only_wcs)
    assert hints["scale_low"] == pytest.approx(0.8) and hints["scale_high"] == pytest.approx(1.2)
    assert abs(hints["ra"] - 150.1) < 0.01


def test_solve_field_refuses_to_overwrite_the_raw_file(tmp_path):
    if shutil.which("solve-field") is None:
        pytest.skip("solve-field is not installed")
    raw = tmp_path / "raw.fits"
    fits.PrimaryHDU(np.zeros((10, 10), np.float32)).writeto(raw)
    with pytest.raises(UsageError):
        solve_field(raw, raw)


@needs_solver
def test_solve_field_falls_back_to_a_blind_search_when_header_hints_are_wrong(tmp_path):
    stale = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 1.0, "CRVAL2": 2.0,
             "CDELT1": -1e-3, "CDELT2": 1e-3}  # 3.6"/px at RA 1, Dec 2: both wrong
    raw, true_wcs, image = tycho_field(tmp_path, stale)
    assert_solution_matches(solve_field(raw, tmp_path / "solved.fits", timeout=60),
                            true_wcs, image)


def test_solve_field_too_few_stars(tmp_path, monkeypatch):
    monkeypatch.setattr(astrometry.shutil, "which", lambda name: "/usr/bin/solve-field")
    raw = tmp_path / "blank.fits"
    fits.PrimaryHDU(np.random.default_rng(0).normal(100, 5, (200, 200)).astype(np.float32)
                    ).writeto(raw)
    with pytest.raises(BadInput) as info:
        solve_field(raw, tmp_path / "out.fits")
    assert info.value.reason == "plate solving failed" and "blank.fits" in info.value.message
    assert not (tmp_path / "out.fits").exists()


@needs_solver
def test_solve_field_reports_a_field_it_cannot_solve(tmp_path):
    rng = np.random.default_rng(4)
    n = 60  # random "stars": no real sky matches them
    x, y, flux = rng.uniform(10, 590, n), rng.uniform(10, 590, n), 10 ** rng.uniform(4, 6, n)
    image = observe(200.0 + pixel_gaussians((600, 600), x, y, flux, 1.1), rng)
    raw = tmp_path / "nowhere.fits"
    fits.PrimaryHDU(image).writeto(raw)
    with pytest.raises(BadInput) as info:
        solve_field(raw, tmp_path / "out.fits", scale_low=4.0, scale_high=5.0, ra=300.0,
                    dec=35.0, radius=1.0, timeout=20)
    assert info.value.reason == "plate solving failed" and "nowhere.fits" in info.value.message
    assert not (tmp_path / "out.fits").exists()
