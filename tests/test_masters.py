"""Masters against known answers: an independent numpy computation of the INTERFACE formulas on
the same files (both modes), and the synthetic camera's truth within the noise."""

from __future__ import annotations

import gzip
import hashlib
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from clinepipe import __version__
from clinepipe.ccd.master_files import read_master, write_master
from clinepipe.ccd.master_groups import (
    CalibrationGroup,
    build_master,
    group_calibration_frames,
    input_key,
    nearest_master,
    stackers,
    temperature_bucket,
)
from clinepipe.ccd.master_result import MasterResult
from clinepipe.ccd.master_stacks import build_bias, build_dark, build_flat
from clinepipe.ccd.masters import make_masters
from clinepipe.ccd.stack import median_stack
from clinepipe.config import CameraConfig, ReductionConfig
from clinepipe.errors import MissingCalibration
from clinepipe.ingest.files import sha256_file
from clinepipe.ingest.frame_info import FrameInfo

# ----------------------------------------------------------------------------- synthetic camera

NY, NX = 96, 128
GAIN = 0.4  # e-/ADU
RN = 9.3  # e-
RN_ADU = RN / GAIN
DARK_RATE = 0.05  # ADU/s


def truth(seed=1):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:NY, :NX].astype(np.float64)
    bias = 1000.0 + 6.0 * np.sin(2 * np.pi * x / 9.0) + 0.02 * y
    rate = np.full((NY, NX), DARK_RATE)
    hot = (rng.integers(0, NY, 25), rng.integers(0, NX, 25))
    rate[hot] = rng.uniform(2.0, 20.0, 25)
    r2 = ((x - NX / 2) ** 2 + (y - NY / 2) ** 2) / ((NX / 2) ** 2 + (NY / 2) ** 2)
    flat = (1.0 - 0.25 * r2) * (1.0 + 0.01 * rng.standard_normal((NY, NX)))
    flat /= np.median(flat)
    return {"bias": bias, "rate": rate, "flat": flat, "hot": hot}


def expose(rng, bias, signal_adu):
    electrons = rng.poisson(np.clip(signal_adu * GAIN, 0, None))
    adu = bias + electrons / GAIN + rng.normal(0.0, RN_ADU, bias.shape)
    return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)


def write_raw(path: Path, data, imagetyp, exptime, *, filt=None, temp=-10.0, binning=1,
              date="2024-03-02T01:00:00", **cards) -> Path:
    hdr = fits.Header()
    hdr["IMAGETYP"] = imagetyp
    hdr["EXPTIME"] = float(exptime)
    hdr["XBINNING"] = binning
    hdr["YBINNING"] = binning
    if filt:
        hdr["FILTER"] = filt
    if temp is not None:
        hdr["CCD-TEMP"] = temp
    hdr["EGAIN"] = GAIN
    hdr["DATE-OBS"] = date
    for k, v in cards.items():
        hdr[k] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header=hdr).writeto(path, overwrite=True)
    return path


def stack_of(paths):
    return np.stack([fits.getdata(p).astype(np.float32) for p in paths])


@pytest.fixture(scope="module")
def cal(tmp_path_factory):
    """9 biases, 7 darks of 120 s, 7 V flats (levels 15000-35000 ADU, 2-6 s) and their truth."""
    root = tmp_path_factory.mktemp("cal")
    t = truth()
    rng = np.random.default_rng(2)
    biases = [write_raw(root / f"bias_{i}.fit", expose(rng, t["bias"], 0.0), "Bias Frame", 0.0)
              for i in range(9)]
    darks = [write_raw(root / f"dark_{i}.fit", expose(rng, t["bias"], t["rate"] * 120.0),
                       "Dark Frame", 120.0) for i in range(7)]
    flats = []
    for i, level in enumerate(np.linspace(15000, 35000, 7)):
        texp = 2.0 + i * 0.6
        sig = level * t["flat"] + t["rate"] * texp
        flats.append(write_raw(root / f"flat_V_{i}.fit", expose(rng, t["bias"], sig), "Flat Field",
                               texp, filt="V"))
    return {"root": root, "truth": t, "bias": biases, "dark": darks, "flat": flats}


# ----------------------------------------------------------------------------- median_stack

@pytest.mark.parametrize("n", [1, 2, 6, 7])
@pytest.mark.parametrize("chunk_rows", [1, 5, 53, 500])
def test_median_stack_arrays_equal_numpy(n, chunk_rows):
    rng = np.random.default_rng(n * 100 + chunk_rows)
    frames = [rng.normal(100, 10, (53, 37)).astype(np.float32) for _ in range(n)]
    got = median_stack(frames, chunk_rows=chunk_rows)
    assert got.dtype == np.float32 and got.shape == (53, 37)
    np.testing.assert_allclose(got, np.median(np.stack(frames), axis=0), rtol=1e-6)


@pytest.mark.parametrize("chunk_rows", [1, 4, 17, 256])
def test_median_stack_with_nans(chunk_rows):
    rng = np.random.default_rng(5)
    stack = rng.normal(0, 1, (5, 31, 23)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.2] = np.nan
    stack[:, 3, 4] = np.nan  # NaN in every frame
    got = median_stack(list(stack), chunk_rows=chunk_rows)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        ref = np.nanmedian(stack, axis=0)
    np.testing.assert_allclose(got, ref, rtol=1e-6, equal_nan=True)
    assert np.isnan(got[3, 4])


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 1000])
def test_median_stack_files_of_every_kind(tmp_path, chunk_rows):
    rng = np.random.default_rng(7)
    shape = (41, 29)
    arrays, paths = [], []
    kinds = ["uint16", "int16", "int32", "float32", "float64", "gz", "fz", "scaled"]
    for i, kind in enumerate(kinds):
        a = rng.normal(30000, 3000, shape)
        p = tmp_path / f"f{i}.fits"
        if kind in ("uint16", "gz", "fz"):
            a = np.rint(a).astype(np.uint16)
        elif kind == "int16":
            a = np.rint(a - 30000).astype(np.int16)
        elif kind == "int32":
            a = np.rint(a).astype(np.int32)
        elif kind == "float32":
            a = a.astype(np.float32)
        if kind == "fz":
            p = tmp_path / f"f{i}.fits.fz"
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(a)]).writeto(p)
        elif kind == "scaled":  # BSCALE != 1
            hdu = fits.PrimaryHDU(a)
            hdu.scale("int16", bscale=2.0, bzero=30000.0)
            hdu.writeto(p)
            a = fits.getdata(p).astype(np.float64)
        else:
            fits.PrimaryHDU(a).writeto(p)
        if kind == "gz":
            gz = tmp_path / f"f{i}.fits.gz"
            gz.write_bytes(gzip.compress(p.read_bytes()))
            p.unlink()
            p = gz
        arrays.append(np.asarray(a, dtype=np.float32))
        paths.append(p)
    before = [sha256_file(p) for p in paths]
    got = median_stack(paths, chunk_rows=chunk_rows)
    np.testing.assert_allclose(got, np.median(np.stack(arrays), axis=0), rtol=1e-6)
    assert [sha256_file(p) for p in paths] == before
    # mixed files and arrays
    got2 = median_stack(paths[:3] + arrays[3:], chunk_rows=chunk_rows)
    np.testing.assert_allclose(got2, got, rtol=1e-6)


def test_median_stack_scale_divisors_and_callable():
    rng = np.random.default_rng(3)
    frames = [rng.normal(1000 * (i + 1), 30, (20, 30)).astype(np.float32) for i in range(5)]
    div = [float(np.median(f)) for f in frames]
    ref = np.median(np.stack([f / np.float32(d) for f, d in zip(frames, div)]), axis=0)
    np.testing.assert_allclose(median_stack(frames, chunk_rows=3, scale=div), ref, rtol=1e-6)
    offset = rng.normal(0, 5, (20, 30)).astype(np.float32)

    def calib(i, r0, r1, chunk):
        chunk -= offset[r0:r1]
        chunk /= np.float32(div[i])

    ref2 = np.median(np.stack([(f - offset) / np.float32(d) for f, d in zip(frames, div)]), axis=0)
    np.testing.assert_allclose(median_stack(frames, chunk_rows=7, scale=calib), ref2, rtol=1e-6)
    np.testing.assert_allclose(
        median_stack(frames, chunk_rows=7, scale=lambda i, r0, r1, c: c * 2.0),
        2 * np.median(np.stack(frames), axis=0), rtol=1e-6)


def test_median_stack_rejects_mixed_shapes():
    with pytest.raises(ValueError, match="shape"):
        median_stack([np.zeros((4, 4)), np.zeros((4, 5))])
    with pytest.raises(ValueError):
        median_stack([])


# ----------------------------------------------------------------------------- masters vs formulas

def test_bias_master_formula_and_truth(cal):
    res = build_bias(cal["bias"], chunk_rows=17)
    assert isinstance(res, MasterResult) and res.data.dtype == np.float32
    assert res.used == cal["bias"] and res.rejected == {} and res.n == 9
    ref = np.median(stack_of(cal["bias"]), axis=0)
    np.testing.assert_allclose(res.data, ref, rtol=1e-6)
    err = res.data - cal["truth"]["bias"]
    expected = RN_ADU * 1.2533 / math.sqrt(9)
    assert abs(float(np.mean(err))) < 3 * expected / math.sqrt(err.size) + 0.3
    assert 0.8 < np.std(err) / expected < 1.2
    assert 0.75 < res.noise / np.std(err) < 1.3


def test_dark_master_formula_and_truth(cal):
    bias = build_bias(cal["bias"])
    res = build_dark(cal["dark"], bias.data, chunk_rows=10)
    assert res.exptime == 120.0 and res.n == 7 and res.rejected == {}
    ref = np.median(stack_of(cal["dark"]) - bias.data, axis=0)
    np.testing.assert_allclose(res.data, ref, rtol=1e-5, atol=1e-3)
    true_dark = cal["truth"]["rate"] * 120.0
    err = res.data - true_dark
    cool = true_dark < 100
    # noise: the darks' median (read + dark shot noise) plus the master bias under it
    dark_sigma = math.sqrt(RN_ADU ** 2 + DARK_RATE * 120.0 / GAIN)
    expected = math.hypot(1.2533 * dark_sigma / math.sqrt(7), 1.2533 * RN_ADU / 3)
    assert abs(float(np.mean(err[cool]))) < 0.5
    assert 0.8 < np.std(err[cool]) / expected < 1.2
    hot = cal["truth"]["hot"]
    np.testing.assert_allclose(res.data[hot], true_dark[hot], rtol=0.05, atol=30)
    # a path works as well as an array for the bias
    bias_path = cal["root"] / "mb.fits"
    write_master(bias_path, bias, kind="bias", mode="default", binning=1)
    np.testing.assert_array_equal(build_dark(cal["dark"], bias_path).data, res.data)


def _default_flat_reference(flats, bias, dark, t_dark):
    fs = []
    for p in flats:
        raw = fits.getdata(p).astype(np.float32)
        k = np.float32(fits.getheader(p)["EXPTIME"] / t_dark)
        f = (raw - bias) - k * dark
        fs.append(f / np.float32(np.median(f)))
    m = np.median(np.stack(fs), axis=0)
    return m / np.float32(np.median(m))


def test_flat_master_default_formula_and_truth(cal):
    bias = build_bias(cal["bias"])
    dark = build_dark(cal["dark"], bias.data)
    res = build_flat(cal["flat"], bias.data, dark.data, dark.exptime, mode="default", chunk_rows=9)
    assert res.n == 7 and res.rejected == {} and res.kind == "flat"
    ref = _default_flat_reference(cal["flat"], bias.data, dark.data, dark.exptime)
    np.testing.assert_allclose(res.data, ref, rtol=2e-6, atol=2e-6)
    assert float(np.median(res.data)) == pytest.approx(1.0, abs=1e-6)
    # truth: the recovered flat is the true flat within the flats' own noise
    true_flat = cal["truth"]["flat"]
    ratio = res.data / true_flat
    assert abs(float(np.median(ratio)) - 1.0) < 2e-3
    levels = np.linspace(15000, 35000, 7)
    per_frame = [np.sqrt(L * true_flat / GAIN + RN_ADU ** 2) / (L * true_flat) for L in levels]
    expected = 1.2533 * np.sqrt(np.mean(np.square(per_frame), axis=0)) / math.sqrt(7)
    z = (ratio - np.median(ratio)) / expected
    assert 0.8 < np.std(z) < 1.2
    assert 0.75 < res.noise / float(np.median(expected)) < 1.3
    # paths for the masters, the dark's exposure read from its header
    bp, dp = cal["root"] / "b.fits", cal["root"] / "d.fits"
    write_master(bp, bias, kind="bias", mode="default", binning=1)
    write_master(dp, dark, kind="dark", mode="default", binning=1)
    np.testing.assert_array_equal(build_flat(cal["flat"], bp, dp, mode="default").data, res.data)


def test_flat_master_seed_is_median_over_max(cal):
    bias = build_bias(cal["bias"])
    dark = build_dark(cal["dark"], bias.data)
    res = build_flat(cal["flat"], bias.data, dark.data, dark.exptime, mode="seed", chunk_rows=7)
    m = np.median(stack_of(cal["flat"]), axis=0)
    np.testing.assert_array_equal(res.data, m / np.float32(m.max()))
    assert float(res.data.max()) == 1.0
    # seed mode does not need the bias and dark at all
    np.testing.assert_array_equal(build_flat(cal["flat"], mode="seed").data, res.data)


# ----------------------------------------------------------------------------- rejections

def test_bias_with_wrong_level_is_rejected(cal, tmp_path):
    t = cal["truth"]
    rng = np.random.default_rng(11)
    odd = write_raw(tmp_path / "bias_odd.fit", expose(rng, t["bias"] + 450.0, 0.0), "Bias Frame", 0)
    paths = cal["bias"][:5] + [odd]
    res = build_bias(paths)
    assert res.used == cal["bias"][:5]
    reason = res.rejected[odd]
    assert reason.startswith("bias level 145") and "far from the group's 100" in reason
    assert reason.endswith("ADU")
    # an expected level moves the reference
    res2 = build_bias(paths, expected_level=1450.0, min_frames=1)
    assert res2.used == [odd]


def test_light_leaked_dark_is_rejected(cal, tmp_path):
    t = cal["truth"]
    bias = build_bias(cal["bias"])
    rng = np.random.default_rng(12)
    leak = write_raw(tmp_path / "dark_leak.fit", expose(rng, t["bias"], t["rate"] * 120 + 300.0),
                     "Dark Frame", 120.0)
    res = build_dark(cal["dark"][:4] + [leak], bias.data)
    assert res.used == cal["dark"][:4]
    assert res.rejected[leak].startswith("light leak: dark signal ")
    assert "above the group's" in res.rejected[leak]


def test_mixed_dark_exposures_and_warm_darks(cal, tmp_path):
    t = cal["truth"]
    bias = build_bias(cal["bias"])
    rng = np.random.default_rng(13)
    short = write_raw(tmp_path / "dark_60.fit", expose(rng, t["bias"], t["rate"] * 60), "Dark Frame", 60.0)
    warm = write_raw(tmp_path / "dark_warm.fit", expose(rng, t["bias"], t["rate"] * 120), "Dark Frame",
                     120.0, temp=-1.2)
    res = build_dark(cal["dark"][:3] + [short, warm], bias.data, max_ccd_temp=-3.0)
    assert res.exptime == 120.0 and res.used == cal["dark"][:3]
    assert res.rejected[short] == "exposure 60 s differs from the group's 120 s"
    assert res.rejected[warm] == "CCD too warm: -1.2 °C > -3.0 °C"


def test_saturated_faint_and_misshapen_flats_are_rejected(cal, tmp_path):
    t = cal["truth"]
    bias = build_bias(cal["bias"])
    dark = build_dark(cal["dark"], bias.data)
    rng = np.random.default_rng(14)
    sat = write_raw(tmp_path / "flat_sat.fit", expose(rng, t["bias"], 64000 * t["flat"]), "Flat Field",
                    3.0, filt="V")
    faint = write_raw(tmp_path / "flat_faint.fit", expose(rng, t["bias"], 500 * t["flat"]),
                      "Flat Field", 3.0, filt="V")
    small = write_raw(tmp_path / "flat_small.fit", expose(rng, t["bias"][:48, :64], 20000.0),
                      "Flat Field", 3.0, filt="V")
    res = build_flat(cal["flat"][:4] + [sat, faint, small], bias.data, dark.data, dark.exptime)
    assert res.used == cal["flat"][:4]
    assert res.rejected[sat].startswith("flat saturated")
    assert res.rejected[faint].startswith("flat too faint")
    assert res.rejected[small] == "shape differs from the master bias: 64x48 vs 128x96"
    assert list(res.rejected) == [sat, faint, small]


def test_shape_differs_from_the_group_and_too_few_frames(cal, tmp_path):
    rng = np.random.default_rng(15)
    small = write_raw(tmp_path / "b_small.fit", expose(rng, np.full((10, 12), 1000.0), 0.0),
                      "Bias Frame", 0)
    res = build_bias(cal["bias"][:3] + [small])
    assert res.rejected == {small: "shape differs from the group: 12x10 vs 128x96"}
    with pytest.raises(MissingCalibration) as err:
        build_bias(cal["bias"][:2], min_frames=3)
    assert err.value.reason == "waiting for calibration: only 2 usable bias frame(s), 3 needed"
    not_fits = tmp_path / "junk.fit"
    not_fits.write_text("junk")
    res = build_bias(cal["bias"][:3] + [not_fits])
    assert res.rejected[not_fits] == "not FITS"


# ----------------------------------------------------------------------------- grouping and choice

def _info(kind, binning=1, filt=None, temp=-10.0, night="20240301", jd=2460371.6, name="x"):
    return FrameInfo(path=Path(name), kind=kind, binning=binning, filter=filt, exptime=1.0,
                     ccd_temp=temp, date_obs="", jd_start=jd, jd_mid=jd, night=night,
                     shape=(10, 10))


def test_group_calibration_frames():
    infos = [_info("bias", 1, name="b1"), _info("bias", 2, name="b2"),
             _info("dark", 1, temp=-10.3, name="d1"), _info("dark", 1, temp=-9.6, name="d2"),
             _info("dark", 1, temp=-5.1, name="d3"), _info("dark", 1, temp=None, name="d4"),
             _info("flat", 1, "V", name="fv"), _info("flat", 1, "R", name="fr"),
             _info("light", 1, "V", name="l")]
    groups = group_calibration_frames(infos, temp_tolerance=2.0)
    assert groups[CalibrationGroup("dark", 1, None, -10.0)] == [infos[2], infos[3]]
    assert groups[CalibrationGroup("dark", 1, None, -6.0)] == [infos[4]]
    assert groups[CalibrationGroup("dark", 1, None, None)] == [infos[5]]
    assert groups[CalibrationGroup("flat", 1, "V")] == [infos[6]]
    assert CalibrationGroup("bias", 2) in groups
    assert all(k.kind != "light" for k in groups)
    assert [k.kind for k in groups][:2] == ["bias", "bias"]
    by_night = group_calibration_frames(infos, 0.0, by_night=True)
    assert CalibrationGroup("dark", 1, None, None, "20240301") in by_night
    assert temperature_bucket(-10.9, 2.0) == -10.0 and temperature_bucket(-11.1, 2.0) == -12.0
    assert temperature_bucket(-10.0, 0.0) is None


def test_input_key():
    shas = ["b" * 64, "a" * 64]
    key = input_key("default", "flat", shas)
    digest = hashlib.sha256(b"default|flat|" + b"a" * 64 + b"b" * 64).hexdigest()
    assert key == digest == input_key("default", "flat", list(reversed(shas)))
    assert key != input_key("seed", "flat", shas) != input_key("default", "dark", shas)


def _cand(id, jd, night="n1", temp=-10.0):
    return SimpleNamespace(id=id, jd=jd, night=night, ccd_temp=temp)


def test_nearest_master_in_time_within_age_latest_build():
    old, near, rebuilt, far = _cand(1, 100.0, "a"), _cand(2, 110.0, "b"), _cand(3, 110.0, "b"), \
        _cand(4, 140.0, "c")
    cands = [old, near, rebuilt, far]
    assert nearest_master(cands, "bias", 111.0, 30.0) is rebuilt  # the group's later build
    assert nearest_master(cands, "flat", 139.0, 30.0) is far
    assert nearest_master(cands, "bias", 200.0, 30.0) is None  # all older than 30 days
    assert nearest_master([], "dark", 1.0, 30.0) is None
    # two nights' builds at the same distance: the later build wins
    assert nearest_master([_cand(5, 99.0, "x"), _cand(6, 101.0, "y")], "bias", 100.0, 30.0).id == 6


def test_nearest_master_prefers_darks_of_the_light_temperature():
    cold, warm = _cand(1, 100.0, "a", -10.1), _cand(2, 100.5, "a", -4.0)
    assert nearest_master([cold, warm], "dark", 100.6, 30.0, ccd_temp=-10.0,
                          temp_tolerance=2.0) is cold  # further in time, but at -10 degC
    assert nearest_master([cold, warm], "dark", 100.6, 30.0, ccd_temp=-20.0,
                          temp_tolerance=2.0) is warm  # none close: the nearest in time
    # a bias is not grouped by temperature: only time counts
    assert nearest_master([cold, warm], "bias", 100.6, 30.0, ccd_temp=-10.0,
                          temp_tolerance=2.0) is warm


def test_stackers_declare_grouping_needs_and_frames(cal):
    table = stackers(5)
    assert list(table) == ["bias", "dark", "flat"]  # the build order
    assert table["dark"].group_by == ("binning", "temperature") and table["dark"].needs == ("bias",)
    assert table["flat"].group_by == ("binning", "filter")
    assert {st.min_frames for st in table.values()} == {5}
    red, camera = ReductionConfig(min_frames=5), CameraConfig()
    with pytest.raises(MissingCalibration) as err:
        build_master("bias", cal["bias"][:4], {}, binning=1, camera=camera, reduction=red,
                     mode="default")
    assert err.value.reason == "waiting for calibration: only 4 usable bias frame(s), 5 needed"
    with pytest.raises(MissingCalibration) as err:
        build_master("dark", cal["dark"], {"bias": None}, binning=2, camera=camera,
                     reduction=red, mode="default")
    assert err.value.reason == "waiting for calibration: no bias for binning 2"
    bias = build_master("bias", cal["bias"], {}, binning=1, camera=camera, reduction=red,
                        mode="default")
    np.testing.assert_array_equal(bias.data, build_bias(cal["bias"]).data)


# ----------------------------------------------------------------------------- files

def test_write_and_read_master(cal, tmp_path):
    bias = build_bias(cal["bias"])
    dark = build_dark(cal["dark"][:3] + [cal["bias"][0]], bias.data, min_frames=3)
    path = tmp_path / "m" / "dark_master.fits"
    inputs = [{"raw_path": f"night/{p.name}", "sha256": sha256_file(p)} for p in dark.used]
    write_master(path, dark, kind="dark", mode="seed", binning=2, filter=None,
                 provenance={"inputs": inputs, "night": "20240301", "bias": "/a/b/bias_master.fits",
                             "software_version": __version__})
    data, hdr = read_master(path)
    np.testing.assert_array_equal(data, dark.data)
    assert data.dtype == np.float32
    assert hdr["IMAGETYP"] == "Master Dark" and hdr["XBINNING"] == 2 and hdr["YBINNING"] == 2
    assert hdr["EXPTIME"] == 120.0 and hdr["NCOMBINE"] == 3 and hdr["CLPMODE"] == "seed"
    assert hdr["CLPVER"] == __version__ and hdr["BIASFILE"] == "bias_master.fits"
    assert hdr["NIGHT"] == "20240301" and hdr["CLPNOISE"] > 0
    table = fits.getdata(path, "INPUTS")
    assert list(table["NAME"][:3]) == [i["raw_path"] for i in inputs]
    assert list(table["SHA256"][:3]) == [i["sha256"] for i in inputs]
    assert list(table["STATUS"]) == ["used"] * 3 + ["rejected"]
    assert table["REASON"][3] == "zero exposure"
    assert table["SHA256"][3] == sha256_file(cal["bias"][0])
    assert [p.name for p in path.parent.iterdir()] == ["dark_master.fits"]  # no temp files
    flat = build_flat(cal["flat"], mode="seed")
    fpath = tmp_path / "flat.fits"
    write_master(fpath, flat, kind="flat", mode="seed", binning=1, filter="V", provenance={})
    _, fh = read_master(fpath)
    assert fh["IMAGETYP"] == "Master Flat" and fh["FILTER"] == "V" and "EXPTIME" not in fh


def test_make_masters_standalone(cal, tmp_path):
    incoming = tmp_path / "in"
    incoming.mkdir()
    for p in cal["bias"][:5] + cal["dark"][:4] + cal["flat"][:4]:
        (incoming / p.name).write_bytes(p.read_bytes())
    (incoming / "broken.fits").write_text("not an image")
    rng = np.random.default_rng(21)
    t = cal["truth"]
    write_raw(incoming / "sub" / "flat_R_1.fit", expose(rng, t["bias"], 20000 * t["flat"]),
              "Flat Field", 2.0, filt="R")  # one R flat only: too few
    write_raw(incoming / "light.fit", expose(rng, t["bias"], 100.0 + 0 * t["flat"]),
              "Light Frame", 60.0, filt="V")
    out = tmp_path / "masters"
    report = make_masters([incoming], out, mode="default", camera=CameraConfig(),
                          reduction_cfg=ReductionConfig())
    written = {Path(w["path"]).relative_to(out).as_posix() for w in report["written"]}
    assert written == {"binning1/bias_master.fits", "binning1/dark_master.fits",
                       "binning1/flat_master_V.fits"}
    assert report["failed"][str(incoming / "broken.fits")] == "not FITS"
    assert report["failed"]["flat binning 1 R"].startswith("waiting for calibration: only 1")
    assert report["skipped"] == [str(incoming / "light.fit")]
    bias = build_bias(sorted(incoming.glob("bias_*.fit")))
    np.testing.assert_array_equal(read_master(out / "binning1" / "bias_master.fits")[0], bias.data)
    _, fh = read_master(out / "binning1" / "flat_master_V.fits")
    assert fh["CLPMODE"] == "default" and fh["NCOMBINE"] == 4


def test_make_masters_rejects_warm_darks_as_the_run_does(cal, tmp_path):
    incoming = tmp_path / "in"
    incoming.mkdir()
    for p in cal["bias"][:5] + cal["dark"][:4]:
        (incoming / p.name).write_bytes(p.read_bytes())
    warm = incoming / cal["dark"][2].name
    with fits.open(warm, mode="update") as hdul:  # same -10 degC bucket, above the limit
        hdul[0].header["CCD-TEMP"] = -9.5
    out = tmp_path / "masters"
    report = make_masters([incoming], out, camera=CameraConfig(max_ccd_temp=-9.8),
                          reduction_cfg=ReductionConfig())
    assert report["rejected"] == {str(warm): "CCD too warm: -9.5 °C > -9.8 °C"}
    _, header = read_master(out / "binning1" / "dark_master.fits")
    assert header["NCOMBINE"] == 3 and header["BIASFILE"] == "bias_master.fits"
