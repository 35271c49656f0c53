"""Reduction against known answers: a light made from a known sky+stars image (through a known
bias, dark, flat, gain and read noise) reduces back to that image within its uncertainty plane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from clinepipe.ccd.masks import (
    MASK_BAD_FLAT,
    MASK_COSMIC_RAY,
    MASK_HOT,
    MASK_NONFINITE,
    MASK_SATURATED,
)
from clinepipe.ccd.master_files import write_master
from clinepipe.ccd.master_stacks import build_bias, build_dark, build_flat
from clinepipe.ccd.master_use import crop_master
from clinepipe.ccd.masters import make_masters
from clinepipe.ccd.overscan import parse_section
from clinepipe.ccd.reduce import reduce_frame
from clinepipe.ccd.reduce_light import reduce_files, reduce_light
from clinepipe.ccd.reduced_files import ReducedFrame, read_reduced, write_reduced
from clinepipe.config import CameraConfig, ReductionConfig, SiteConfig
from clinepipe.errors import BadInput, MissingCalibration
from clinepipe.ingest.classify import read_frame_info
from clinepipe.ingest.files import sha256_file

# ----------------------------------------------------------------------------- synthetic camera

NY, NX = 96, 128
GAIN = 0.4  # e-/ADU
RN = 9.3  # e-
RN_ADU = RN / GAIN
CAMERA = CameraConfig(gain=GAIN, read_noise=RN, max_ccd_temp=-3.0, saturation=65535.0)
T_LIGHT, T_DARK = 60.0, 120.0


def truth(seed=1, nx=NX):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:NY, :nx].astype(np.float64)
    bias = 1000.0 + 6.0 * np.sin(2 * np.pi * x / 9.0) + 0.02 * y
    rate = np.full((NY, nx), 0.05)
    hot = (rng.integers(2, NY - 2, 20), rng.integers(2, min(nx, NX) - 2, 20))
    rate[hot] = rng.uniform(2.0, 20.0, 20)
    r2 = ((x - NX / 2) ** 2 + (y - NY / 2) ** 2) / ((NX / 2) ** 2 + (NY / 2) ** 2)
    flat = (1.0 - 0.25 * r2) * (1.0 + 0.01 * rng.standard_normal((NY, nx)))
    flat /= np.median(flat[:, :NX])
    return {"bias": bias, "rate": rate, "flat": flat, "hot": hot}


def sky_and_stars(seed=3, nx=NX):
    """The true image in flat-fielded ADU for T_LIGHT seconds: sky 200 ADU + 25 stars."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:NY, :nx].astype(np.float64)
    img = np.full((NY, nx), 200.0)
    for _ in range(25):
        x0, y0 = rng.uniform(5, NX - 5), rng.uniform(5, NY - 5)
        img += rng.uniform(300, 20000) * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * 1.4 ** 2))
    return img


def expose(rng, bias, signal_adu):
    electrons = rng.poisson(np.clip(signal_adu * GAIN, 0, None))
    adu = bias + electrons / GAIN + rng.normal(0.0, RN_ADU, bias.shape)
    return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)


def write_raw(path: Path, data, imagetyp, exptime, *, filt=None, temp=-10.0, binning=1,
              date="2024-03-02T03:00:00", drop=(), **cards) -> Path:
    hdr = fits.Header()
    base = {"IMAGETYP": imagetyp, "EXPTIME": float(exptime), "XBINNING": binning,
            "YBINNING": binning, "FILTER": filt, "CCD-TEMP": temp, "EGAIN": GAIN, "DATE-OBS": date}
    for k, v in {**base, **cards}.items():
        if v is not None and k not in drop:
            hdr[k] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header=hdr).writeto(path, overwrite=True)
    return path


def make_calibration(root: Path, t, rng, *, n=(7, 5, 5), overscan=None, binning=1):
    def raw(signal, offset=0.0):
        frame = expose(rng, t["bias"] + offset, signal).astype(np.float64)
        if overscan is not None:
            frame[:, overscan] = np.rint(t["bias"][:, overscan] + offset
                                         + rng.normal(0, RN_ADU, frame[:, overscan].shape))
        return frame.astype(np.uint16)

    cards = overscan_cards() if overscan is not None else {}
    biases = [write_raw(root / f"bias_{i}.fit", raw(0.0), "Bias Frame", 0.0, binning=binning, **cards)
              for i in range(n[0])]
    darks = [write_raw(root / f"dark_{i}.fit", raw(t["rate"] * T_DARK), "Dark Frame", T_DARK,
                       binning=binning, **cards) for i in range(n[1])]
    flats = [write_raw(root / f"flat_V_{i}.fit", raw(25000 * t["flat"] + t["rate"] * 3.0),
                       "Flat Field", 3.0, filt="V", binning=binning, **cards) for i in range(n[2])]
    return biases, darks, flats


def overscan_cards():
    return {"BIASSEC": f"[{NX + 1}:{NX + 16},1:{NY}]", "TRIMSEC": f"[1:{NX},1:{NY}]"}


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Calibration frames, masters of both modes written as the pipeline would, one light."""
    root = tmp_path_factory.mktemp("night")
    t = truth()
    rng = np.random.default_rng(2)
    biases, darks, flats = make_calibration(root / "cal", t, rng)
    out = {"root": root, "truth": t, "image": sky_and_stars(), "bias_frames": biases,
           "dark_frames": darks, "flat_frames": flats}
    bias = build_bias(biases)
    dark = build_dark(darks, bias.data)
    for mode in ("default", "seed"):
        flat = build_flat(flats, bias.data, dark.data, dark.exptime, mode=mode)
        paths = {k: root / mode / f"{k}.fits" for k in ("bias", "dark", "flat")}
        write_master(paths["bias"], bias, kind="bias", mode=mode, binning=1)
        write_master(paths["dark"], dark, kind="dark", mode=mode, binning=1)
        write_master(paths["flat"], flat, kind="flat", mode=mode, binning=1, filter="V")
        out[mode] = {"paths": paths, "bias": bias, "dark": dark, "flat": flat}
    signal = out["image"] * t["flat"] + t["rate"] * T_LIGHT
    out["light"] = write_raw(root / "light_V_001.fit", expose(rng, t["bias"], signal), "Light Frame",
                             T_LIGHT, filt="V")
    return out


def info_of(path):
    return read_frame_info(path, CAMERA, SiteConfig())


# ----------------------------------------------------------------------------- truth

def test_reduced_light_recovers_the_true_image_within_its_uncertainty(night):
    light = night["light"]
    before = sha256_file(light)
    frame = reduce_light(light, info_of(light), night["default"]["paths"], mode="default",
                         camera=CAMERA, reduction=ReductionConfig())
    assert sha256_file(light) == before
    assert isinstance(frame, ReducedFrame)
    assert frame.data.dtype == np.float32 and frame.uncertainty.dtype == np.float32
    assert frame.mask.dtype == np.uint8 and frame.data.shape == (NY, NX)
    z = (frame.data - night["image"]) / frame.uncertainty
    good = frame.mask == 0
    assert good.mean() > 0.99
    assert 0.8 < float(np.std(z[good])) < 1.25
    assert abs(float(np.mean(z[good]))) < 0.1
    # hot pixels: the dark scaled from 120 s to 60 s removes them within the noise too
    hot = night["truth"]["hot"]
    assert np.all(frame.mask[hot] & MASK_HOT)
    assert float(np.median(np.abs(z[hot]))) < 2.0
    assert frame.header["CALSTAT"] == "BDF" and frame.header["CLPMODE"] == "default"
    assert frame.header["CLPDSCAL"] == pytest.approx(0.5)
    assert frame.header["BIASFILE"] == "bias.fits" and frame.header["FLATFILE"] == "flat.fits"


def test_seed_mode_light_is_the_image_up_to_the_flat_scale(night):
    """The seed flat (median/max of raw flats, bias included) is the true flat only up to a
    scale and a small bias-induced distortion: the sky comes back scaled by a constant."""
    light = night["light"]
    seed = reduce_light(light, info_of(light), night["seed"]["paths"], mode="seed", camera=CAMERA)
    default = reduce_light(light, info_of(light), night["default"]["paths"], camera=CAMERA)
    assert seed.header["CLPMODE"] == "seed"
    ratio = seed.data / default.data
    sky = night["image"] < 210
    assert float(np.std(ratio[sky])) / float(np.median(ratio[sky])) < 0.25
    assert 1.0 < float(np.median(ratio[sky])) < 1.5  # max-normalised flat < 1 -> larger values


def test_both_modes_are_the_interface_formula(night):
    raw = fits.getdata(night["light"]).astype(np.float32)
    for mode in ("default", "seed"):
        m = night[mode]
        frame = reduce_frame(raw, bias=m["bias"].data, dark=m["dark"].data, dark_exptime=T_DARK,
                             flat=m["flat"].data, exptime=T_LIGHT, mode=mode, gain=GAIN,
                             read_noise=RN)
        ref = ((raw - m["bias"].data) - np.float32(T_LIGHT / T_DARK) * m["dark"].data) / m["flat"].data
        np.testing.assert_allclose(frame.data, ref, rtol=1e-6, atol=1e-4)
    # the seed flat is median/max, the default flat median-normalised: results differ by a scale
    assert not np.allclose(night["seed"]["flat"].data, night["default"]["flat"].data)


def test_uncertainty_plane_formula():
    raw = np.array([[1100.0, 1000.0, 5000.0]], np.float32)
    bias = np.full((1, 3), 1000.0, np.float32)
    dark = np.full((1, 3), 20.0, np.float32)
    flat = np.array([[1.0, 0.8, 1.25]], np.float32)
    fr = reduce_frame(raw, bias=bias, dark=dark, dark_exptime=100.0, flat=flat, exptime=50.0,
                      mode="default", gain=2.0, read_noise=10.0, bias_noise=1.5, dark_noise=2.0,
                      flat_noise=0.01)
    sig = raw - bias
    data = (sig - 0.5 * dark) / flat
    var = ((10.0 / 2.0) ** 2 + np.maximum(sig, 0) / 2.0 + 1.5 ** 2 + (0.5 * 2.0) ** 2) / flat ** 2 \
        + (data * 0.01) ** 2
    np.testing.assert_allclose(fr.data, data, rtol=1e-6)
    np.testing.assert_allclose(fr.uncertainty, np.sqrt(var), rtol=1e-6)


# ----------------------------------------------------------------------------- subframes

def test_subframe_is_cropped_from_the_masters(night, tmp_path):
    raw = fits.getdata(night["light"])
    sub = raw[10:58, 20:84]
    p = write_raw(tmp_path / "sub.fit", sub, "Light Frame", T_LIGHT, filt="V", XORGSUBF=20, YORGSUBF=10)
    paths = night["default"]["paths"]
    full = reduce_light(night["light"], info_of(night["light"]), paths, camera=CAMERA)
    part = reduce_light(p, info_of(p), paths, camera=CAMERA)
    assert part.data.shape == (48, 64)
    np.testing.assert_array_equal(part.data, full.data[10:58, 20:84])
    np.testing.assert_array_equal(part.uncertainty, full.uncertainty[10:58, 20:84])
    np.testing.assert_array_equal(part.mask, full.mask[10:58, 20:84])
    # an explicit origin of (0, 0) is a corner subframe, not a missing origin
    corner = write_raw(tmp_path / "corner.fit", raw[:40, :50], "Light Frame", T_LIGHT, filt="V",
                       XORGSUBF=0, YORGSUBF=0)
    np.testing.assert_array_equal(reduce_light(corner, info_of(corner), paths, camera=CAMERA).data,
                                  full.data[:40, :50])


def test_compressed_lights_reduce_like_plain(night, tmp_path):
    import gzip

    raw = fits.getdata(night["light"])
    hdr = fits.getheader(night["light"])
    fz = tmp_path / "light_V_001.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(raw, header=hdr)]).writeto(fz)
    gz = tmp_path / "light_V_001.fit.gz"
    gz.write_bytes(gzip.compress(night["light"].read_bytes()))
    paths = night["default"]["paths"]
    ref = reduce_light(night["light"], info_of(night["light"]), paths, camera=CAMERA)
    for p in (fz, gz):
        fr = reduce_light(p, info_of(p), paths, camera=CAMERA)
        np.testing.assert_array_equal(fr.data, ref.data)
        assert "XTENSION" not in fr.header and fr.header["FILTER"] == "V"
        out = tmp_path / "o.fits"
        write_reduced(out, fr, masters_used={"bias": "b", "dark": "d", "flat": "f"})
        np.testing.assert_array_equal(read_reduced(out).data, ref.data)


def test_subframe_without_origin_and_outside(night, tmp_path):
    raw = fits.getdata(night["light"])
    paths = night["default"]["paths"]
    lost = write_raw(tmp_path / "lost.fit", raw[10:58, 20:84], "Light Frame", T_LIGHT, filt="V")
    with pytest.raises(BadInput) as err:
        reduce_light(lost, info_of(lost), paths, camera=CAMERA)
    assert err.value.reason == "subframe without origin" and "lost.fit" in err.value.message
    off = write_raw(tmp_path / "off.fit", raw[10:58, 20:84], "Light Frame", T_LIGHT, filt="V",
                    XORGSUBF=100, YORGSUBF=10)
    with pytest.raises(BadInput) as err:
        reduce_light(off, info_of(off), paths, camera=CAMERA)
    assert err.value.reason == "subframe outside the master"
    m = np.zeros((10, 10), np.float32)
    assert crop_master(m, 0, 0, (10, 10)) is m
    with pytest.raises(BadInput, match="subframe without origin"):
        crop_master(m, 0, 0, (5, 5), has_origin=False)
    assert crop_master(m, 3, 4, (5, 6)).shape == (5, 6)


# ----------------------------------------------------------------------------- refusals

def test_ccd_too_warm(night, tmp_path):
    raw = fits.getdata(night["light"])
    warm = write_raw(tmp_path / "warm.fit", raw, "Light Frame", T_LIGHT, filt="V", temp=-1.2)
    with pytest.raises(BadInput) as err:
        reduce_light(warm, info_of(warm), night["default"]["paths"], camera=CAMERA)
    assert err.value.reason == "CCD too warm: -1.2 °C > -3.0 °C"
    assert err.value.message.startswith("warm.fit: ") and err.value.message.endswith(".")


def test_missing_master_messages(night, tmp_path):
    raw = fits.getdata(night["light"])
    light2 = write_raw(tmp_path / "l2.fit", raw, "Light Frame", T_LIGHT, filt="R", binning=2)
    info = info_of(light2)
    paths = dict(night["default"]["paths"])
    for missing, text in (("flat", "no R-band flat"), ("bias", "no bias"), ("dark", "no dark")):
        given = {k: v for k, v in paths.items() if k != missing}
        with pytest.raises(MissingCalibration) as err:
            reduce_light(light2, info, given, camera=CAMERA)
        assert err.value.reason == f"waiting for calibration: {text} for binning 2"
        assert "l2.fit" in err.value.message
    with pytest.raises(MissingCalibration) as err:
        reduce_light(light2, info, {**paths, "flat": tmp_path / "nowhere.fits"}, camera=CAMERA)
    assert err.value.reason == "waiting for calibration: no R-band flat for binning 2"


# ----------------------------------------------------------------------------- masks

def test_mask_bits(night):
    m = night["default"]
    raw = fits.getdata(night["light"]).astype(np.float32)
    raw[5, 7] = 65535
    flat = m["flat"].data.copy()
    flat[40, 40] = 0.3
    flat[41, 41] = 2.5
    flat[42, 42] = np.nan
    fr = reduce_frame(raw, bias=m["bias"].data, dark=m["dark"].data, dark_exptime=T_DARK, flat=flat,
                      exptime=T_LIGHT, mode="default", gain=GAIN, read_noise=RN)
    assert fr.mask[5, 7] & MASK_SATURATED
    assert fr.mask[40, 40] & MASK_BAD_FLAT and fr.mask[41, 41] & MASK_BAD_FLAT
    assert fr.mask[42, 42] & MASK_BAD_FLAT and fr.mask[42, 42] & MASK_NONFINITE
    assert np.isnan(fr.data[42, 42])
    hot = np.zeros((NY, NX), bool)
    hot[night["truth"]["hot"]] = True
    np.testing.assert_array_equal((fr.mask & MASK_HOT) != 0, hot)  # exactly the hot pixels
    assert int(np.count_nonzero(fr.mask & MASK_SATURATED)) == 1


def test_cosmic_rays_default_mode_only(night):
    m = night["default"]
    t = night["truth"]
    rng = np.random.default_rng(8)
    image = night["image"]
    clean_raw = expose(rng, t["bias"], image * t["flat"] + t["rate"] * T_LIGHT).astype(np.float32)
    faint = image < 260  # away from stars
    ys, xs = np.nonzero(faint[3:-3, 3:-3])
    pick = rng.choice(len(ys), 30, replace=False)
    hits = (ys[pick] + 3, xs[pick] + 3)
    raw = clean_raw.copy()
    raw[hits] += rng.uniform(2000, 6000, 30)
    kw = dict(bias=m["bias"].data, dark=m["dark"].data, dark_exptime=T_DARK, flat=m["flat"].data,
              exptime=T_LIGHT, gain=GAIN, read_noise=RN, bias_noise=m["bias"].noise,
              dark_noise=m["dark"].noise, flat_noise=m["flat"].noise)
    fr = reduce_frame(raw, mode="default", cosmic_rays=True, **kw)
    flagged = (fr.mask & MASK_COSMIC_RAY) != 0
    assert flagged[hits].mean() >= 0.9
    assert flagged.sum() - flagged[hits].sum() < 0.005 * flagged.size
    z = (fr.data[hits] - image[hits]) / fr.uncertainty[hits]
    assert float(np.median(np.abs(z))) < 3.0
    assert fr.header["CLPNCR"] == int(flagged.sum())
    seed = reduce_frame(raw, mode="seed", cosmic_rays=True, **kw)
    assert not np.any(seed.mask & MASK_COSMIC_RAY) and "CLPNCR" not in seed.header
    plain = reduce_frame(raw, mode="default", cosmic_rays=False, **kw)
    np.testing.assert_array_equal(seed.data, plain.data)


# ----------------------------------------------------------------------------- overscan

def test_overscan_subtracted_and_trimmed_in_default_mode(tmp_path):
    assert parse_section("[129:144, 1:96]") == (slice(0, 96), slice(128, 144))
    width = NX + 16
    t = truth(nx=width)
    t["flat"][:, NX:] = 1.0
    rng = np.random.default_rng(4)
    osc = slice(NX, width)
    biases, darks, flats = make_calibration(tmp_path, t, rng, n=(5, 5, 5), overscan=osc)
    bias = build_bias(biases)
    dark = build_dark(darks, bias.data)
    flat = build_flat(flats, bias.data, dark.data, dark.exptime)
    image = sky_and_stars(nx=width)
    image[:, NX:] = 0.0
    drift = 40.0  # the light's bias level is 40 ADU above the biases'
    raw = expose(rng, t["bias"] + drift, image * t["flat"] + t["rate"] * T_LIGHT).astype(np.float64)
    raw[:, osc] = np.rint(t["bias"][:, osc] + drift + rng.normal(0, RN_ADU, (NY, 16)))
    hdr = fits.Header(overscan_cards())
    hdr["CRPIX1"] = 50.0
    kw = dict(bias=bias.data, dark=dark.data, dark_exptime=T_DARK, flat=flat.data, exptime=T_LIGHT,
              gain=GAIN, read_noise=RN, bias_noise=bias.noise, dark_noise=dark.noise,
              flat_noise=flat.noise, header=hdr)
    fr = reduce_frame(raw, mode="default", overscan=True, **kw)
    assert fr.data.shape == (NY, NX)
    z = (fr.data - image[:, :NX]) / fr.uncertainty
    assert abs(float(np.mean(z))) < 0.15 and 0.8 < float(np.std(z)) < 1.3
    assert "BIASSEC" not in fr.header and "TRIMSEC" not in fr.header
    assert fr.header["CLPOSCAN"] - fr.header["CLPOSCB"] == pytest.approx(drift, abs=2)
    # without overscan the drift stays in the data; seed mode never does overscan
    off = reduce_frame(raw, mode="default", overscan=False, **kw)
    assert float(np.mean((off.data[:, :NX] - image[:, :NX]) / off.uncertainty[:, :NX])) > 0.8
    seed = reduce_frame(raw, mode="seed", overscan=True, **kw)
    assert seed.data.shape == (NY, width) and "BIASSEC" in seed.header


# ----------------------------------------------------------------------------- files

def test_write_and_read_reduced(night, tmp_path):
    frame = reduce_light(night["light"], info_of(night["light"]), night["default"]["paths"],
                         camera=CAMERA)
    out = tmp_path / "o" / "light_V_001_calibrated.fits"
    write_reduced(out, frame, masters_used={"bias": Path("/x/bias_master.fits"),
                                            "dark": "dark_master.fits", "flat": "flat_master_V.fits"})
    back = read_reduced(out)
    np.testing.assert_array_equal(back.data, frame.data)
    np.testing.assert_array_equal(back.uncertainty, frame.uncertainty)
    np.testing.assert_array_equal(back.mask, frame.mask)
    assert back.mask.dtype == np.uint8 and back.uncertainty.dtype == np.float32
    h = back.header
    assert h["CALSTAT"] == "BDF" and h["BIASFILE"] == "bias_master.fits"
    assert h["DARKFILE"] == "dark_master.fits" and h["FLATFILE"] == "flat_master_V.fits"
    assert h["CLPMODE"] == "default" and "CLPVER" in h and h["BITPIX"] == -32
    assert "BZERO" not in h and h["IMAGETYP"] == "Light Frame" and h["FILTER"] == "V"
    with fits.open(out) as hdul:
        assert [hdu.name for hdu in hdul] == ["PRIMARY", "UNCERT", "MASK"]
    write_reduced(out, frame, masters_used={"bias": "b.fits", "dark": "d.fits"})
    assert read_reduced(out).header["CALSTAT"] == "BD"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_reduced_file_is_what_astropy_would_write(night, tmp_path):
    """The hand-serialised file (reduce.reduced_fits_chunks) is standard FITS and holds the same
    cards and planes as astropy's own HDUList.writeto of the same frame."""
    frame = reduce_light(night["light"], info_of(night["light"]), night["default"]["paths"],
                         camera=CAMERA)
    frame.header["HISTORY"] = "a history card"
    frame.header["LONGSTR"] = "x" * 150  # a long string: CONTINUE cards
    frame.header["NAXIS3"] = 7  # a stray structure card in the raw header is not copied
    out = tmp_path / "ours.fits"
    write_reduced(out, frame, masters_used={"bias": "b.fits", "dark": "d.fits", "flat": "f.fits"})
    assert out.stat().st_size % 2880 == 0
    hdr = frame.header.copy()
    del hdr["NAXIS3"]
    hdr["CALSTAT"], hdr["BIASFILE"], hdr["DARKFILE"], hdr["FLATFILE"] = "BDF", "b.fits", "d.fits", "f.fits"
    ref = tmp_path / "astropy.fits"
    fits.HDUList([fits.PrimaryHDU(frame.data, header=hdr),
                  fits.ImageHDU(frame.uncertainty, name="UNCERT"),
                  fits.ImageHDU(frame.mask, name="MASK")]).writeto(ref)
    with fits.open(out) as ours, fits.open(ref) as theirs:
        ours.verify("exception")
        assert [h.name for h in ours] == ["PRIMARY", "UNCERT", "MASK"]
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a.data, b.data)
            assert a.data.dtype == b.data.dtype
        a, b = ours[0].header, theirs[0].header
        assert [k for k in a if k not in ("HISTORY",)] == [k for k in b if k not in ("HISTORY",)]
        for key in b:
            if key not in ("HISTORY", "COMMENT", ""):
                assert a[key] == b[key], key
        assert a["LONGSTR"] == "x" * 150 and list(a["HISTORY"]) == list(b["HISTORY"])
        assert ours["UNCERT"].header["BUNIT"] == "ADU"
        assert ours["MASK"].header["MASKB1"] == "saturated"


def test_reduce_files_standalone(night, tmp_path):
    masters_dir = tmp_path / "masters"
    report = make_masters([night["root"] / "cal"], masters_dir, mode="default", camera=CAMERA)
    assert len(report["written"]) == 3
    raw = fits.getdata(night["light"])
    lights = [night["light"],
              write_raw(tmp_path / "in" / "warm.fits", raw, "Light Frame", T_LIGHT, filt="V", temp=0.0),
              write_raw(tmp_path / "in" / "r.fits", raw, "Light Frame", T_LIGHT, filt="R"),
              night["bias_frames"][0]]
    junk = tmp_path / "in" / "junk.fits"
    junk.write_text("nothing")
    lights.append(junk)
    before = [sha256_file(p) for p in lights]
    out = tmp_path / "out"
    results = reduce_files(lights, masters_dir, out, mode="default", camera=CAMERA)
    assert [sha256_file(p) for p in lights] == before
    got = dict(results)
    assert got[night["light"]] == out / "light_V_001_calibrated.fits"
    assert got[lights[1]] == "CCD too warm: 0.0 °C > -3.0 °C"
    assert got[lights[2]] == "waiting for calibration: no R-band flat for binning 1"
    assert got[lights[3]] == "not a light frame (bias)"
    assert got[junk] == "not FITS"
    h = fits.getheader(out / "light_V_001_calibrated.fits")
    assert h["CALSTAT"] == "BDF" and h["FLATFILE"] == "flat_master_V.fits"
    assert h["BIASFILE"] == "bias_master.fits" and h["DARKFILE"] == "dark_master.fits"
    assert sorted(p.name for p in out.iterdir()) == ["light_V_001_calibrated.fits"]
