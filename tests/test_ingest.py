"""Ingest: file discovery, header facts, named reasons for every bad input, nights, archive copies.

Every test that reads a raw file also checks that its SHA-256 did not change (raw files are
never modified).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from clinepipe.config import CameraConfig, SiteConfig
from clinepipe.errors import BadInput
from clinepipe.ingest.classify import is_subframe, observing_night, read_frame_info
from clinepipe.ingest.files import (
    archive_destination,
    find_new_files,
    fits_stem,
    sha256_file,
)
from clinepipe.ingest.fits_reader import check_data, read_image
from clinepipe.ingest.frame_info import FrameInfo

CAMERA = CameraConfig()
SITE = SiteConfig()  # Greensboro, longitude -79.8089

THESKYX = {
    "IMAGETYP": "Light Frame", "XBINNING": 1, "YBINNING": 1, "FILTER": "V", "EXPTIME": 60.0,
    "CCD-TEMP": -10.0, "EGAIN": 0.4, "DATE-OBS": "2024-03-02T03:12:44.500", "OBJECT": "M67",
    "XORGSUBF": 0, "YORGSUBF": 0, "PEDESTAL": -100,
}


def make_data(shape=(40, 50), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(1000, 20, shape).clip(0, 65535).astype(np.uint16)


def write_frame(path: Path, data=None, drop=(), **cards) -> Path:
    """A TheSkyX-style 16-bit frame; ``cards`` override, ``drop`` removes header keywords."""
    hdr = fits.Header()
    for key, value in {**THESKYX, **cards}.items():
        if key not in drop and value is not None:
            hdr[key] = value
    data = make_data() if data is None else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header=hdr).writeto(path, overwrite=True)
    return path


def reason_of(path, **kw):
    before = sha256_file(path)
    with pytest.raises(BadInput) as err:
        read_frame_info(path, CAMERA, SITE, **kw)
    assert sha256_file(path) == before, "the raw file was modified"
    assert path.name in err.value.message
    assert err.value.message.count(". ") == 0 and err.value.message.endswith(".")
    return err.value.reason


# ----------------------------------------------------------------------------- discovery

def test_find_new_files_recursive_suffixes_hidden_and_settling(tmp_path):
    inc = tmp_path / "incoming"
    names = ["a/one.fits", "a/b/two.FIT", "three.fts", "c/four.fits.gz", "five.fz", "six.Fit.GZ",
             "seven.Fits"]
    for n in names:
        p = inc / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    for n in [".hidden.fits", "notes.txt", "image.fits.bak", ".sync/x.fits", "a/.tmp/y.fit"]:
        p = inc / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    old = time.time() - 100
    for p in inc.rglob("*"):
        os.utime(p, (old, old))
    growing = inc / "a" / "growing.fits"
    growing.write_bytes(b"x")  # mtime now: still being written

    found = find_new_files(inc, settle_seconds=2.0)
    assert found == sorted(inc / n for n in names)
    assert growing not in found
    # once settled it is found; a far-future "now" settles everything
    assert growing in find_new_files(inc, settle_seconds=2.0, now=time.time() + 10)
    assert find_new_files(inc, settle_seconds=0.0, now=old - 1) == []


def test_sha256_file(tmp_path):
    p = tmp_path / "x.bin"
    blob = os.urandom(3_000_001)
    p.write_bytes(blob)
    assert sha256_file(p, chunk=4096) == hashlib.sha256(blob).hexdigest()


def test_fits_stem():
    assert fits_stem("a.fits.gz") == "a"
    assert fits_stem("b.FIT") == "b"
    assert fits_stem("c.fits.fz") == "c"
    assert fits_stem("d.v2.fts") == "d.v2"


# ----------------------------------------------------------------------------- header facts

def test_read_frame_info_theskyx_light(tmp_path):
    p = write_frame(tmp_path / "m67_V_001.fit", data=make_data((40, 50)), XORGSUBF=12, YORGSUBF=7)
    info = read_frame_info(p, CAMERA, SITE)
    assert isinstance(info, FrameInfo)
    assert info.kind == "light" and info.filter == "V" and info.binning == 1
    assert info.exptime == 60.0 and info.ccd_temp == -10.0 and info.gain == 0.4
    assert info.shape == (40, 50) and (info.xorg, info.yorg) == (12, 7)
    assert info.object == "M67"
    t0 = Time("2024-03-02T03:12:44.5", scale="utc").jd
    assert info.jd_start == pytest.approx(t0, abs=1e-9)
    assert info.jd_mid == pytest.approx(t0 + 30.0 / 86400.0, abs=1e-9)
    assert info.night == "20240301"  # 22:12 local the evening before
    assert info.path == p


@pytest.mark.parametrize("imagetyp,kind", [
    ("Bias Frame", "bias"), ("BIAS", "bias"), ("zero", "bias"), ("Dark Frame", "dark"),
    ("DARK", "dark"), ("Flat Field", "flat"), ("flat", "flat"), ("Light Frame", "light"),
    ("LIGHT", "light"), ("Object", "light"), ("  light frame ", "light"),
])
def test_frame_types_case_insensitive(tmp_path, imagetyp, kind):
    p = write_frame(tmp_path / "f.fits", IMAGETYP=imagetyp)
    assert read_frame_info(p, CAMERA, SITE).kind == kind


def test_defaults_and_fallbacks(tmp_path):
    p = write_frame(tmp_path / "bias.fits", IMAGETYP="Bias Frame", EXPTIME=None, EXPOSURE=0.0,
                    drop=("XBINNING", "YBINNING", "FILTER", "CCD-TEMP", "EGAIN", "XORGSUBF",
                          "YORGSUBF", "OBJECT"))
    info = read_frame_info(p, CAMERA, SITE)
    assert info.exptime == 0.0 and info.binning == 1 and info.filter is None
    assert info.ccd_temp is None and info.gain is None and (info.xorg, info.yorg) == (0, 0)
    p2 = write_frame(tmp_path / "b2.fits", XBINNING=3, YBINNING=3)
    assert read_frame_info(p2, CAMERA, SITE).binning == 3


def test_compressed_files_read_like_plain(tmp_path):
    data = make_data((30, 20), seed=3)
    plain = write_frame(tmp_path / "p.fits", data=data)
    gz = tmp_path / "g.fits.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    fz = tmp_path / "c.fits.fz"
    hdr = fits.getheader(plain)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=hdr)]).writeto(fz)
    ref = read_frame_info(plain, CAMERA, SITE)
    for p in (gz, fz):
        before = sha256_file(p)
        info = read_frame_info(p, CAMERA, SITE)
        facts = (info.kind, info.filter, info.shape, info.jd_mid)
        assert facts == (ref.kind, ref.filter, ref.shape, ref.jd_mid)
        img, _ = read_image(p)
        np.testing.assert_array_equal(img, data.astype(np.float32))
        assert sha256_file(p) == before


# ----------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("bitpix, bzero, bscale, blank", [
    (16, 32768, None, None),   # unsigned 16-bit camera frame: read by clinepipe itself
    (16, None, None, None), (8, None, None, None), (-32, None, None, None),
    (-64, None, None, None),
    (16, 1000, None, None), (16, 32768, 2.0, None), (16, 32768, None, -32768),  # astropy's
    (32, 2147483648, None, None)])
def test_read_image_equals_astropy(tmp_path, monkeypatch, bitpix, bzero, bscale, blank):
    """read_image's own reader gives astropy's float32 values and header, bit for bit."""
    import clinepipe.ingest.fits_reader as ingest
    rng = np.random.default_rng(bitpix + 100)
    dtype = {8: ">u1", 16: ">i2", 32: ">i4", -32: ">f4", -64: ">f8"}[bitpix]
    stored = rng.integers(0 if bitpix == 8 else -30000, 250 if bitpix == 8 else 30000,
                          size=(37, 53)).astype(dtype)
    if bitpix < 0:
        stored[3, 4] = np.nan
    hdu = fits.PrimaryHDU()
    hdu.header["BITPIX"] = bitpix
    hdu.header["NAXIS"] = 2
    hdu.header["NAXIS1"] = 53
    hdu.header["NAXIS2"] = 37
    for key, value in (("BZERO", bzero), ("BSCALE", bscale), ("BLANK", blank)):
        if value is not None:
            hdu.header[key] = value
    hdu.header["FILTER"] = "V"
    head = hdu.header.tostring().encode()
    body = stored.tobytes()
    path = tmp_path / "raw.fits"
    path.write_bytes(head + body + bytes(-len(body) % 2880))
    own = bscale is None and blank is None and bzero in (None, 32768) and bitpix != 32
    if own:  # astropy's data reader is not used
        monkeypatch.setattr(ingest, "_load_data", lambda *a: pytest.fail("astropy read the data"))
    data, header = read_image(path)
    monkeypatch.undo()
    with fits.open(path) as hdul:
        expected = np.array(hdul[0].data, dtype=np.float32)
        expected_header = hdul[0].header.copy()
    assert data.dtype == np.float32 and data.shape == (37, 53)
    np.testing.assert_array_equal(data, expected)
    assert header.tostring() == expected_header.tostring()
    if bzero == 32768 and bscale is None and blank is None:
        assert data.min() >= 0 and data.max() < 65536


def test_not_fits_and_empty(tmp_path):
    text = tmp_path / "notes.fits"
    text.write_text("this is not an image\n" * 200)
    assert reason_of(text) == "not FITS"
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    assert reason_of(empty) == "empty file"
    badgz = tmp_path / "bad.fits.gz"
    badgz.write_bytes(b"\x1f\x8b" + b"garbage" * 100)
    assert reason_of(badgz) in ("not FITS", "truncated FITS")


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.2, 0.03])
def test_truncated(tmp_path, keep):
    good = write_frame(tmp_path / "good.fits", data=make_data((100, 120)))
    blob = good.read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(blob[: int(len(blob) * keep)])
    assert reason_of(cut) == "truncated FITS"
    assert reason_of(cut, check=False) == "truncated FITS"


def test_truncated_gzip(tmp_path):
    good = write_frame(tmp_path / "good.fits", data=make_data((100, 120)))
    blob = gzip.compress(good.read_bytes())
    cut = tmp_path / "cut.fits.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    assert reason_of(cut) == "truncated FITS"


def test_missing_final_padding_is_tolerated(tmp_path):
    data = make_data((100, 120))
    good = write_frame(tmp_path / "good.fits", data=data)
    blob = good.read_bytes()
    hdr_len = len(blob) - ((data.nbytes + 2879) // 2880) * 2880
    unpadded = tmp_path / "unpadded.fits"
    unpadded.write_bytes(blob[: hdr_len + data.nbytes])
    assert read_frame_info(unpadded, CAMERA, SITE).shape == (100, 120)


def test_no_image_data(tmp_path):
    p = tmp_path / "noimg.fits"
    hdr = fits.Header({k: v for k, v in THESKYX.items()})
    fits.PrimaryHDU(header=hdr).writeto(p)
    assert reason_of(p) == "no image data"
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((2, 5, 5), np.uint16), header=hdr).writeto(cube)
    assert reason_of(cube) == "no image data"


@pytest.mark.parametrize("drop,cards,reason", [
    (("IMAGETYP",), {}, "no frame type"),
    (("EXPTIME",), {}, "missing EXPTIME"),
    ((), {"EXPTIME": "soon"}, "unreadable EXPTIME"),
    ((), {"EXPTIME": -3.0}, "negative EXPTIME"),
    (("DATE-OBS",), {}, "missing DATE-OBS"),
    ((), {"DATE-OBS": "yesterday evening"},
     "DATE-OBS 'yesterday evening' is not a date clinepipe reads"),
    ((), {"DATE-OBS": "2024-03-02"}, "DATE-OBS '2024-03-02' has no time of day"),
    ((), {"XBINNING": 5, "YBINNING": 5}, "unknown binning 5"),
    ((), {"XBINNING": 2, "YBINNING": 1}, "unknown binning 2x1"),
    ((), {"XORGSUBF": -4}, "bad subframe origin"),
])
def test_header_problems_have_named_reasons(tmp_path, drop, cards, reason):
    p = write_frame(tmp_path / "frame.fits", drop=drop, **cards)
    assert reason_of(p) == reason


def test_no_frame_type_names_the_key_that_fixes_it(tmp_path):
    p = write_frame(tmp_path / "frame.fits", drop=("IMAGETYP",))
    with pytest.raises(BadInput) as err:
        read_frame_info(p, CAMERA, SITE)
    assert "[headers] default_kind" in err.value.message


def test_unknown_frame_type_is_skipped_with_its_value(tmp_path):
    from clinepipe.ingest.classify import SkippedFrame

    p = write_frame(tmp_path / "frame.fits", IMAGETYP="Temp")
    with pytest.raises(SkippedFrame) as err:
        read_frame_info(p, CAMERA, SITE)
    assert err.value.reason == "frame type 'Temp' skipped"
    assert "'Temp'" in err.value.message and p.name in err.value.message


@pytest.mark.parametrize("drop,cards", [
    (("FILTER",), {}),
    (("FILTER",), {"IMAGETYP": "Flat Field"}),
    ((), {"FILTER": "  "}),
])
def test_missing_filter_is_the_default_filter(tmp_path, drop, cards):
    p = write_frame(tmp_path / "frame.fits", drop=drop, **cards)
    info = read_frame_info(p, CAMERA, SITE)
    assert info.filter == "C"
    assert [r for r, _ in info.notes] == ["no filter"]


def test_filter_optional_for_bias_and_dark(tmp_path):
    for typ in ("Bias Frame", "Dark Frame"):
        p = write_frame(tmp_path / f"{typ}.fits", drop=("FILTER",), IMAGETYP=typ)
        assert read_frame_info(p, CAMERA, SITE).filter is None


def test_nan_and_constant_data(tmp_path):
    nan = write_frame(tmp_path / "nan.fits", data=np.full((20, 20), np.nan, np.float32))
    assert reason_of(nan) == "all-NaN data"
    const = write_frame(tmp_path / "const.fits", data=np.full((20, 20), 1000, np.uint16))
    assert reason_of(const) == "constant data"
    with pytest.raises(BadInput) as err:
        check_data(np.array([[np.nan, 3.0], [3.0, np.nan]]), Path("x.fits"))
    assert err.value.reason == "constant data"
    check_data(np.array([[np.nan, 3.0], [4.0, np.nan]]), Path("x.fits"))  # fine


def test_constant_data_decided_past_the_first_pixels():
    """check_data looks at the first pixels first: a frame constant there but not further on is
    fine, and one constant (or NaN) everywhere past them is still named."""
    const = np.full((100, 100), 7.0, np.float32)
    with pytest.raises(BadInput) as err:
        check_data(const, Path("x.fits"))
    assert err.value.reason == "constant data"
    late = const.copy()
    late[-1, -1] = 8.0
    check_data(late, Path("x.fits"))  # fine: only the last pixel differs
    check_data(late.astype(np.uint16), Path("x.fits"))
    nan_head = np.full((100, 100), np.nan, np.float32)
    nan_head[-1, :2] = 5.0
    with pytest.raises(BadInput) as err:
        check_data(nan_head, Path("x.fits"))
    assert err.value.reason == "constant data"


def test_frame_info_reads_the_whole_frame_when_its_first_pixels_do_not_vary(tmp_path):
    """read_frame_info reads a plain frame's first pixels, and the rest only when those do not
    vary: a frame of 10,000 pixels (more than are read first) constant or NaN throughout is
    named, one whose last pixels differ is fine."""
    const = np.full((100, 100), 1000, np.uint16)
    assert reason_of(write_frame(tmp_path / "const.fits", data=const)) == "constant data"
    late = const.copy()
    late[-1, -1] = 1001
    read_frame_info(write_frame(tmp_path / "late.fits", data=late), CAMERA, SITE)
    nan = np.full((100, 100), np.nan, np.float32)
    assert reason_of(write_frame(tmp_path / "nan.fits", data=nan)) == "all-NaN data"
    nan[-1, :2] = (5.0, 6.0)
    read_frame_info(write_frame(tmp_path / "nan_late.fits", data=nan), CAMERA, SITE)


# ----------------------------------------------------------------------------- nights

def _jd(iso):
    return Time(iso, scale="utc").jd


def test_observing_night_edges_greensboro():
    lon = -79.8089  # local mean noon = 12 h + 5.3206 h = 17:19:14.1 UTC
    noon = Time("2024-03-02T17:19:14.136", scale="utc")
    assert observing_night(_jd("2024-03-02T03:00:00"), lon) == "20240301"
    assert observing_night(noon.jd - 1.0 / 86400, lon) == "20240301"
    assert observing_night(noon.jd + 1.0 / 86400, lon) == "20240302"
    assert observing_night(_jd("2024-03-02T23:00:00"), lon) == "20240302"
    assert observing_night(_jd("2024-03-01T05:00:00"), lon) == "20240229"  # leap day
    assert observing_night(_jd("2024-01-01T04:00:00"), lon) == "20231231"  # year boundary


def test_observing_night_boundary_instant_and_east_longitude():
    assert observing_night(_jd("2024-03-02T12:00:00"), 0.0) == "20240302"
    assert observing_night(_jd("2024-03-02T11:59:59.9"), 0.0) == "20240301"
    # 150 E: local noon is 02:00 UTC
    assert observing_night(_jd("2024-03-02T01:59:59"), 150.0) == "20240301"
    assert observing_night(_jd("2024-03-02T02:00:01"), 150.0) == "20240302"
    assert observing_night(_jd("2024-03-01T20:00:00"), 150.0) == "20240301"  # 06:00 local


# ----------------------------------------------------------------------------- archive copy

def test_archive_destination_names_and_collisions(tmp_path):
    """The archive copy's name (ingest renames a staged copy to it): the raw name, the same
    path again for the same bytes, a checksum suffix for other bytes under the same name."""
    src = write_frame(tmp_path / "incoming" / "dark_001.fit", IMAGETYP="Dark Frame")
    before = (sha256_file(src), src.stat().st_mtime_ns, src.stat().st_size)
    info = read_frame_info(src, CAMERA, SITE)
    digest = sha256_file(src)
    archive = tmp_path / "archive"
    dest, there = archive_destination(archive, src.name, info, digest)
    assert (dest, there) == (archive / "raw" / "20240301" / "dark" / "dark_001.fit", False)
    assert dest.parent.is_dir()
    dest.write_bytes(src.read_bytes())
    # the same bytes are there already: not copied again
    assert archive_destination(archive, src.name, info, digest) == (dest, True)
    # a different file with the same name gets a checksum suffix
    other = write_frame(tmp_path / "other" / "dark_001.fit", data=make_data(seed=9),
                        IMAGETYP="Dark Frame")
    d2 = sha256_file(other)
    info2 = read_frame_info(other, CAMERA, SITE)
    dest2, there2 = archive_destination(archive, other.name, info2, d2)
    assert (dest2, there2) == (dest.with_name(f"dark_001_{d2[:8]}.fit"), False)
    dest2.write_bytes(other.read_bytes())
    assert archive_destination(archive, other.name, info2, d2) == (dest2, True)
    assert archive_destination(archive, src.name, info, digest) == (dest, True)
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted([dest.name, dest2.name])
    assert (sha256_file(src), src.stat().st_mtime_ns, src.stat().st_size) == before


def test_is_subframe():
    info = FrameInfo(path=Path("x"), kind="light", binning=1, filter="V", exptime=1.0,
                     ccd_temp=None, date_obs="", jd_start=0.0, jd_mid=0.0, night="",
                     shape=(40, 50))
    assert not is_subframe(info, (40, 50))
    assert is_subframe(info, (80, 100))
