"""The simulator is the source of truth for every other test: these check that truth."""

from __future__ import annotations

import ast
import csv
import json
import math
import re
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from scintillation_truth import young_rms

from clinepipe.simulate import (
    SRC_COLUMNS,
    Simulator,
    read_csv_table,
    render_light,
    simulate_night,
    true_light_curve,
    write_raw_frame,
)
from clinepipe.simulate.camera import core_sigma

SMALL = dict(width=256, height=256, n_stars=100, lights_per_filter=4)


def _wcs(header) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header)


def _read_src(path: Path):
    """Minimal .SRC reader for the tests: (header dict, rows array (n, 11))."""
    raw = path.read_bytes()
    text = raw.decode("ascii")
    head, rows = {}, []
    for line in text.split("\r\n"):
        if not line:
            continue
        if line.startswith("#"):
            if "=" in line:
                key, value = line[1:].split("=", 1)
                head[key.strip()] = value.strip()
            continue
        rows.append([float(v) for v in line.split()])
    return head, np.array(rows).reshape(-1, 11)


# --- layout, determinism -------------------------------------------------------------------

def test_layout(small_night):
    r = small_night
    night = r.nights[0]
    assert night == "20260314"
    assert (r.incoming / night / "calibration").is_dir()
    lights = r.lights()
    assert len(lights) == 8
    for p in lights:
        assert p.parent == r.incoming / night / "lights"
        assert p.with_suffix(".SRC").is_file()
        assert (r.truth_dir / "lights" / f"{p.stem}.csv").is_file()
    kinds = list(r.frames["kind"])
    assert kinds.count("bias") == 7 and kinds.count("dark") == 7 and kinds.count("flat") == 14
    for name in ("stars.csv", "variables.csv", "frames.csv", "camera.json", "bias_bin3.fits",
                 "dark_bin3.fits", "flat_bin3_V.fits", "flat_bin3_R.fits"):
        assert (r.truth_dir / name).is_file(), name
    for p in r.frame_paths():
        assert p.is_file()


def test_determinism(small_night, tmp_path):
    r = small_night
    again = simulate_night(tmp_path / "again", seed=r.seed, spec=r.spec)
    for rel in (r.frames["file"][0], r.lights()[0].relative_to(r.incoming).as_posix()):
        assert (r.incoming / rel).read_bytes() == (again.incoming / rel).read_bytes()
    light = r.lights()[1]
    src = light.with_suffix(".SRC")
    assert src.read_bytes() == (again.incoming / src.relative_to(r.incoming)).read_bytes()
    for name in ("catalog.csv", "vsx.csv", "clinepipe.toml", "truth/frames.csv",
                 "truth/camera.json"):
        assert (r.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name
    other = simulate_night(tmp_path / "other", seed=r.seed + 1, spec=r.spec)
    rel = light.relative_to(r.incoming)
    assert (other.incoming / rel).read_bytes() != light.read_bytes()


def test_render_light_matches_written_file(small_night):
    r = small_night
    data, header, truth = render_light(r.spec, r.seed, index=2)
    path = r.lights()[2]
    assert np.array_equal(data, fits.getdata(path))
    assert header["DATE-OBS"] == fits.getheader(path)["DATE-OBS"]
    written = r.light_truth(path)
    assert np.allclose(np.asarray(truth["x"]), np.asarray(written["x"]), atol=1e-9)


# --- headers -------------------------------------------------------------------------------

COMMON = ["IMAGETYP", "XBINNING", "YBINNING", "EXPTIME", "EXPOSURE", "CCD-TEMP", "SET-TEMP",
          "EGAIN", "DATE-OBS", "INSTRUME", "PEDESTAL", "XORGSUBF", "YORGSUBF", "XPIXSZ",
          "YPIXSZ", "SITELAT", "SITELONG"]


def test_headers(small_night):
    r = small_night
    types = {"bias": "Bias Frame", "dark": "Dark Frame", "flat": "Flat Field",
             "light": "Light Frame"}
    for row in r.frames:
        path = r.path(row["file"])
        with fits.open(path) as hdul:
            raw = hdul[0].header
            h = hdul[0].header
            assert raw["BITPIX"] == 16 and raw["BZERO"] == 32768
            data = hdul[0].data
        assert data.dtype == np.uint16 and data.shape == (256, 256)
        for key in COMMON:
            assert key in h, (key, row["file"])
        assert h["IMAGETYP"] == types[row["kind"]]
        assert h["XBINNING"] == h["YBINNING"] == 3
        assert h["XPIXSZ"] == pytest.approx(16.2)
        assert h["EGAIN"] == 0.4 and h["PEDESTAL"] == -100
        assert h["INSTRUME"] == "SBIG STF-8300 3 CCD Camera"
        assert -11.0 <= h["CCD-TEMP"] <= -9.0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", h["DATE-OBS"])
        assert h["EXPTIME"] == pytest.approx(row["exptime"])
        if row["kind"] in ("flat", "light"):
            assert h["FILTER"] == row["filter"]
        else:
            assert "FILTER" not in h
        if row["kind"] == "dark":
            assert h["EXPTIME"] == 120.0
        if row["kind"] == "flat":
            assert 2.0 <= h["EXPTIME"] <= 10.0
            assert 19000 < data.mean() < 31000
        if row["kind"] == "light":
            assert h["OBJECT"] and h["OBJCTRA"] and h["OBJCTDEC"]
            assert h["CTYPE1"] == "RA---TAN" and h["CTYPE2"] == "DEC--TAN"
            assert h["CD1_1"] < 0 and h["CD2_2"] > 0 and h["CD1_2"] != 0
            assert h["RADECSYS"] == "FK5" and h["EQUINOX"] == 2000.0
            assert "DATE" not in h


def test_times_and_airmass(small_night):
    r = small_night
    lights = r.frames[r.frames["kind"] == "light"]
    # the dark part of the night of 2026-03-14 (UTC next morning), field above 30 deg
    assert all(d.startswith("2026-03-15T0") for d in lights["date_obs"])
    assert np.all(lights["airmass"] >= 1.0) and np.all(lights["airmass"] <= 2.0 + 1e-9)
    assert list(lights["filter"]) == ["V", "R"] * 4
    jd = np.asarray(lights["jd_mid"])
    assert np.all(np.diff(jd) > 0)
    for row in lights:  # jd_mid = DATE-OBS + EXPTIME / 2
        h = fits.getheader(r.path(row["file"]))
        from astropy.time import Time
        start = Time(h["DATE-OBS"], format="isot", scale="utc").jd
        assert row["jd_mid"] == pytest.approx(start + h["EXPTIME"] / 172800.0, abs=2e-8)
    zp = (21.95 - 0.20 * lights["airmass"] + 2.5 * np.log10(lights["transparency"]))
    v = lights["filter"] == "V"
    assert np.allclose(lights["zero_point"][v], zp[v], atol=1e-9)


# --- .SRC and WCS ----------------------------------------------------------------------------

def test_src_files(small_night):
    r = small_night
    for light in r.lights():
        src = light.with_suffix(".SRC")
        raw = src.read_bytes()
        assert raw.count(b"\n") == raw.count(b"\r\n") > 4
        head, rows = _read_src(src)
        assert head["HEIGHT"] == "256" and head["WIDTH"] == "256"
        assert head["TIME"] == fits.getheader(light)["DATE-OBS"]
        assert SRC_COLUMNS[0] in raw.decode().splitlines()[3]
        truth = r.light_truth(light)
        want = truth[truth["in_src"] == 1]
        assert len(rows) == len(want) > 5
        # 1-based, each within 0.1 px of a true star centre
        d = np.hypot(rows[:, 0, None] - np.asarray(want["x"])[None, :],
                     rows[:, 1, None] - np.asarray(want["y"])[None, :])
        assert np.all(d.min(axis=1) < 0.1)
        assert len(set(d.argmin(axis=1))) == len(rows)
        assert np.all((rows[:, 0] >= 1) & (rows[:, 0] <= 256))
        assert set(rows[:, 4].astype(int)) <= {0, 4}


def test_src_flags_saturated_stars(small_night):
    sim = Simulator(small_night.spec, small_night.seed)
    plan = sim.light_plans(0)[0]
    import dataclasses
    long = dataclasses.replace(plan, exptime=3000.0)
    out = sim.render_light(long, cosmic_rays=False)
    sat = out.truth[(out.truth["saturated"] == 1) & (out.truth["in_src"] == 1)]
    assert len(sat) > 0
    flagged = out.src[out.src["FLAGS"] == 4]
    assert set(flagged["id"]) == set(sat["id"])
    star = sat[0]
    x, y = int(round(star["x"] - 1)), int(round(star["y"] - 1))
    assert out.data[y, x] == 65535


def test_header_wcs_places_stars(two_nights):
    r = two_nights
    stars = r.stars
    for light in r.lights():
        w = _wcs(fits.getheader(light))
        truth = r.light_truth(light)
        assert np.array_equal(np.asarray(truth["id"]), np.asarray(stars["id"]))
        x, y = w.all_world2pix(np.asarray(stars["ra"]), np.asarray(stars["dec"]), 1)
        assert np.max(np.abs(x - truth["x"])) < 0.01
        assert np.max(np.abs(y - truth["y"])) < 0.01
    # the pointing jitters from frame to frame
    lights = r.frames[r.frames["kind"] == "light"]
    assert np.std(lights["dx"]) > 0.3 and np.std(lights["dy"]) > 0.3


# --- calibration frames ----------------------------------------------------------------------

def test_bias_frames_match_truth(small_night):
    r = small_night
    truth = fits.getdata(r.truth_dir / "bias_bin3.fits").astype(float)
    stack = np.array([fits.getdata(p).astype(float) for p in r.frame_paths("bias")])
    n = len(stack)
    diff = stack.mean(axis=0) - truth
    noise = 9.3 / 0.4 / math.sqrt(n)
    assert abs(np.median(diff)) < 0.2 * noise
    assert 0.9 * noise < np.std(diff[np.abs(diff) < 5 * noise]) < 1.1 * noise
    assert 980 < truth.mean() < 1020
    columns = truth.mean(axis=0)
    assert 0.5 < np.std(columns) < 8  # fixed per-column structure of a few ADU
    assert np.corrcoef(stack.mean(axis=(0, 1)), columns)[0, 1] > 0.9


def test_dark_and_flat_truth(small_night):
    r = small_night
    bias = fits.getdata(r.truth_dir / "bias_bin3.fits").astype(float)
    dark = fits.getdata(r.truth_dir / "dark_bin3.fits").astype(float)
    assert np.median(dark) == pytest.approx(0.05)
    hot = dark > 0.5
    assert 0 < hot.sum() < 0.005 * dark.size and dark.max() <= 50.0
    darks = np.median([fits.getdata(p).astype(float) for p in r.frame_paths("dark")], axis=0)
    rate = (darks - bias) / 120.0
    assert np.corrcoef(rate[hot], dark[hot])[0, 1] > 0.99
    for filt in ("V", "R"):
        flat = fits.getdata(r.truth_dir / f"flat_bin3_{filt}.fits")
        assert flat.dtype.kind == "f" and flat.dtype.itemsize == 4
        assert np.median(flat) == pytest.approx(1.0, abs=1e-6)
        assert 0.8 < flat.min() and flat.max() < 1.2
        frames = []
        for p in r.frame_paths("flat", filter=filt):
            h = fits.getheader(p)
            f = fits.getdata(p).astype(float) - bias - dark * h["EXPTIME"]
            frames.append(f / np.median(f))
        ratio = np.median(frames, axis=0) / flat
        assert np.median(np.abs(ratio - 1)) < 0.01
    v = fits.getdata(r.truth_dir / "flat_bin3_V.fits")
    rr = fits.getdata(r.truth_dir / "flat_bin3_R.fits")
    assert not np.allclose(v, rr)  # different dust per filter


# --- stars and fluxes ------------------------------------------------------------------------

def _isolated_bright(truth, spec, half, unsaturated=True):
    """Indices of stars whose (2 half + 1)^2 box holds no other star's light, brightest first."""
    x, y = np.asarray(truth["x"]) - 1, np.asarray(truth["y"]) - 1
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    ok = ((x > half + 1) & (x < spec.nx - half - 2) & (y > half + 1) & (y < spec.ny - half - 2)
          & (d.min(axis=1) > 2.5 * half))
    if unsaturated:
        ok &= np.asarray(truth["saturated"]) == 0
    idx = np.flatnonzero(ok)
    return idx[np.argsort(-np.asarray(truth["flux_adu"])[idx])]


def _sparse(result):
    """A Simulator like ``result``'s with 4 bright stars far apart (hand-placed)."""
    sim = Simulator(result.spec, result.seed)
    sim.place_stars(x=[70.3, 180.6, 75.1, 185.9], y=[72.8, 70.2, 181.4, 188.5],
                    v=[12.5, 13.0, 13.5, 14.0])
    return sim


def test_star_flux_in_box_is_true_flux_times_flat(small_night):
    sim = _sparse(small_night)
    spec = sim.spec
    plan = sim.light_plans(0)[1]
    half = int(math.ceil(6 * 2.0 * core_sigma(plan.fwhm_px, spec))) + 2
    background = sim.camera.bias + sim.camera.dark * plan.exptime
    sky = sim.sky_image(plan)
    for use_flat in (False, True):
        out = sim.render_light(plan, noise=False, flat=use_flat)
        flat = sim.camera.flats[plan.filter] if use_flat else np.ones_like(sky)
        stars_only = out.data - background - sky * flat
        idx = _isolated_bright(out.truth, spec, half, unsaturated=False)
        assert len(idx) >= 2
        for i in idx[:5]:
            t = out.truth[i]
            xc, yc = int(round(t["x"] - 1)), int(round(t["y"] - 1))
            box = np.s_[yc - half:yc + half + 1, xc - half:xc + half + 1]
            total = stars_only[box].sum()
            if use_flat:
                assert total == pytest.approx(t["flux_adu"] * flat[box].mean(), rel=0.01)
                assert (stars_only[box] / flat[box]).sum() == pytest.approx(t["flux_adu"],
                                                                             rel=1e-6)
            else:
                assert total == pytest.approx(t["flux_adu"], rel=1e-6)


def test_noise_follows_ccd_equation(small_night):
    r = small_night
    sim = Simulator(r.spec, r.seed)
    plan = sim.light_plans(0)[0]
    half = 6
    out = sim.render_light(plan, cosmic_rays=False)
    flat = sim.camera.flats[plan.filter]
    dark = sim.camera.dark * plan.exptime
    cal = (out.data.astype(float) - sim.camera.bias - dark) / flat - sim.sky_image(plan)
    idx = _isolated_bright(out.truth, r.spec, half)
    z = []
    g, rn = r.spec.gain, r.spec.read_noise
    sky = sim.sky_image(plan)
    stars = sim.render_light(plan, noise=False, flat=False).data - sim.camera.bias - dark - sky
    for i in idx[:25]:
        t = out.truth[i]
        xc, yc = int(round(t["x"] - 1)), int(round(t["y"] - 1))
        box = np.s_[yc - half:yc + half + 1, xc - half:xc + half + 1]
        star_model = stars[box]
        # variance (ADU^2) of the raw pixel, propagated through the division by the flat
        raw_var = (flat[box] * (star_model + sky[box]) + dark[box]) / g + (rn / g) ** 2
        var = raw_var / flat[box] ** 2
        z.append((cal[box].sum() - star_model.sum()) / math.sqrt(var.sum()))
    z = np.array(z)
    assert len(z) >= 10
    assert 0.5 < np.sqrt(np.mean(z**2)) < 1.6


def test_psf_fwhm_and_trail_moments(small_night):
    sim = _sparse(small_night)
    spec = sim.spec
    plan = sim.light_plans(0)[0]
    import dataclasses
    for trail in (0.0, 9.0):
        p = dataclasses.replace(plan, trail_px=trail, fwhm_px=3.0)
        out = sim.render_light(p, noise=False, flat=False)
        stars = out.data - sim.camera.bias - sim.camera.dark * p.exptime - sim.sky_image(p)
        half = 16
        i = _isolated_bright(out.truth, spec, half, unsaturated=False)[0]
        t = out.truth[i]
        xc, yc = int(round(t["x"] - 1)), int(round(t["y"] - 1))
        box = stars[yc - half:yc + half + 1, xc - half:xc + half + 1]
        yy, xx = np.mgrid[yc - half:yc + half + 1, xc - half:xc + half + 1]
        w = box / box.sum()
        mx, my = (w * xx).sum(), (w * yy).sum()
        assert mx == pytest.approx(t["x"] - 1, abs=1e-3)
        assert my == pytest.approx(t["y"] - 1, abs=1e-3)
        s1 = core_sigma(3.0, spec)
        a, ratio = spec.halo_fraction, spec.halo_sigma_ratio
        var = (1 - a) * s1**2 + a * (ratio * s1) ** 2
        vx, vy = (w * (xx - mx) ** 2).sum(), (w * (yy - my) ** 2).sum()
        assert vy == pytest.approx(var + 1 / 12, rel=0.02)
        assert vx == pytest.approx(var + 1 / 12 + trail**2 / 12, rel=0.02)


# --- catalog, variables, config ------------------------------------------------------------

def test_catalog(small_night):
    r = small_night
    with open(r.catalog_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0].keys()) == ["id", "ra", "dec", "B", "V", "R", "e_B", "e_V", "e_R"]
    stars = r.stars
    in_cat = stars[stars["catalog_id"] != ""]
    assert len(rows) == len(in_cat) > 10
    assert np.all(in_cat["V"] < 16.5)
    assert np.any(stars["V"] > 16.5)  # not every star is in the catalog
    by_id = {row["catalog_id"]: row for row in in_cat}
    pulls = []
    for row in rows:
        assert re.fullmatch(r"SIM-\d{6}", row["id"])
        truth = by_id[row["id"]]
        assert float(row["ra"]) == pytest.approx(truth["ra"], abs=1e-9)
        for band in "BVR":
            e = float(row["e_" + band])
            assert 0.01 <= e <= 0.2
            pulls.append((float(row[band]) - truth[band]) / e)
        assert float(row["e_V"]) <= 0.05 + 1e-9
    assert 0.6 < np.std(pulls) < 1.5
    e_v = np.array([float(row["e_V"]) for row in rows])
    v = np.array([float(row["V"]) for row in rows])
    assert np.corrcoef(v, e_v)[0, 1] > 0.5  # errors grow with magnitude


def test_variables_and_vsx(two_nights):
    r = two_nights
    var = r.variables
    assert sorted(var["type"]) == ["DSCT", "EA"]
    eb = var[var["type"] == "EA"][0]
    pu = var[var["type"] == "DSCT"][0]
    assert true_light_curve(eb, eb["epoch_jd"]) == pytest.approx(0.6)
    assert true_light_curve(eb, eb["epoch_jd"] + 0.5 * eb["period_days"]) == pytest.approx(0.25)
    assert true_light_curve(eb, eb["epoch_jd"] + 0.25 * eb["period_days"]) == 0.0
    assert true_light_curve(eb, eb["epoch_jd"] + 7 * eb["period_days"]) == pytest.approx(0.6)
    assert true_light_curve(pu, pu["epoch_jd"]) == pytest.approx(-0.15)
    assert true_light_curve(pu, pu["epoch_jd"] + 0.5 * pu["period_days"]) == pytest.approx(0.15)
    # read back from CSV: the same model
    csv_rows = read_csv_table(r.truth_dir / "variables.csv")
    jd = np.linspace(eb["epoch_jd"], eb["epoch_jd"] + 2, 500)
    for row, back in zip(var, csv_rows):
        assert np.allclose(true_light_curve(row, jd), true_light_curve(back, jd))
    # every light's truth follows the model on both nights (same epoch)
    for light in r.lights():
        frame = r.frame_row(light)
        band = frame["filter"]
        truth = r.light_truth(light)
        for row in var:
            i = int(row["star_id"])
            assert truth["mag"][i] == pytest.approx(
                r.stars[band][i] + true_light_curve(row, frame["jd_mid"]), abs=1e-9)
    # variables sit well inside the image, unsaturated
    for row in var:
        s = r.stars[int(row["star_id"])]
        assert 0.15 * 256 < s["x_nominal"] < 0.85 * 256
        for light in r.lights():
            assert r.light_truth(light)["saturated"][int(row["star_id"])] == 0
    with open(r.vsx_path, newline="") as fh:
        vsx = list(csv.DictReader(fh))
    assert len(vsx) == 1 and vsx[0]["type"] == "EA" and vsx[0]["name"] == "V0001 Sim"
    assert float(vsx[0]["period"]) == pytest.approx(0.37)


def test_two_nights(two_nights):
    r = two_nights
    assert r.nights == ("20260314", "20260315")
    assert not (r.incoming / "20260315" / "calibration").exists()
    assert len(r.lights("20260315")) == 8 and len(r.lights("20260314")) == 8
    assert len(r.frame_paths("bias")) == 7
    first, second = (r.frames[(r.frames["kind"] == "light") & (r.frames["night"] == n)]
                     for n in r.nights)
    assert second["jd_mid"][0] - first["jd_mid"][0] == pytest.approx(1.0, abs=0.02)


def test_config(small_night):
    r = small_night
    text = r.config_path.read_text()
    cfg = tomllib.loads(text)
    assert cfg["paths"]["incoming"] == "incoming" and cfg["paths"]["archive"] == "archive"
    assert cfg["database"]["url"] == "sqlite:///clinepipe.db"
    assert cfg["site"]["latitude"] == 36.0760 and cfg["site"]["longitude"] == -79.8089
    assert cfg["camera"]["gain"] == 0.4 and cfg["camera"]["max_ccd_temp"] == -3.0
    assert cfg["reduction"]["mode"] == "default"
    assert 3.0 <= cfg["photometry"]["aperture"] <= 7.0
    assert cfg["catalog"] == {"source": "file", "path": "catalog.csv", "match_radius": 2.0,
                              "filters": {"V": "V", "R": "R"}}
    assert cfg["known_variables"] == {"source": "file", "path": "vsx.csv"}
    try:
        from clinepipe.config import load_config
    except ImportError:  # pragma: no cover - config module being rewritten
        pytest.skip("clinepipe.config not importable")
    loaded = load_config(r.config_path)
    assert loaded.catalog.path == r.out_dir.resolve() / "catalog.csv"


def test_truth_files(small_night):
    r = small_night
    cam = json.loads((r.truth_dir / "camera.json").read_text())
    for key in ("gain", "read_noise_e", "saturation", "bias_level", "dark_current_adu_s", "ZP0",
                "extinction", "psf"):
        assert key in cam
    assert cam["ZP0"]["V"] == pytest.approx(21.95)
    assert cam["extinction"] == {"V": 0.2, "R": 0.13}
    frames = read_csv_table(r.truth_dir / "frames.csv")
    for col in ("file", "kind", "night", "filter", "exptime", "jd_mid", "airmass", "fwhm_px",
                "sky_adu_per_pixel", "transparency", "zero_point", "qc", "dx", "dy"):
        assert col in frames.colnames
    assert list(frames["file"]) == list(r.frames["file"])
    stars = read_csv_table(r.truth_dir / "stars.csv")
    assert list(stars.colnames[:8]) == ["id", "catalog_id", "ra", "dec", "B", "V", "R",
                                        "var_type"]
    assert len(stars) == 100
    lights = r.frames[r.frames["kind"] == "light"]
    # seeing 2.0-3.3" at 0.99"/px
    assert np.all((lights["fwhm_px"] > 1.9) & (lights["fwhm_px"] < 3.4))
    # flux_ADU = exptime * 10**(-0.4 (mag - zero_point)); V=15 gives ~600 ADU/s at airmass 0
    t = r.light_truth(r.lights()[0])
    row = r.frame_row(r.lights()[0])
    assert row["filter"] == "V"
    expected = row["exptime"] * 10 ** (-0.4 * (np.asarray(t["mag"]) - row["zero_point"]))
    assert np.allclose(t["flux_adu"], expected * np.asarray(t["scintillation"]), rtol=1e-9)
    assert 10 ** (-0.4 * (15.0 - cam["ZP0"]["V"])) == pytest.approx(600, rel=0.02)


def test_bad_lights(tmp_path):
    r = simulate_night(tmp_path, seed=5, width=192, height=160, n_stars=60, lights_per_filter=3,
                       filters=("V",), n_bias=3, n_dark=3, n_flat=3, cloudy_frames=(0,),
                       trailed_frames=(1,), defocused_frames=(2,))
    lights = r.frames[r.frames["kind"] == "light"]
    assert list(lights["qc"]) == ["clouds", "trailed", "focus"]
    assert 0.3 <= lights["transparency"][0] <= 0.5
    assert lights["zero_point"][0] == pytest.approx(
        21.95 - 0.2 * lights["airmass"][0] + 2.5 * math.log10(lights["transparency"][0]))
    assert lights["trail_px"][1] == pytest.approx(3 * lights["fwhm_px"][1])
    assert lights["fwhm_px"][2] > 2.5 * 1.9
    _, src = _read_src(r.lights()[1].with_suffix(".SRC"))
    assert np.median(src[:, 6]) > 2.0  # ELONGATION of trailed stars
    _, src0 = _read_src(r.lights()[0].with_suffix(".SRC"))
    assert len(src0) > 0


def test_write_raw_frame(tmp_path):
    data = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    path = write_raw_frame(tmp_path / "x" / "odd.fit", data,
                           {"IMAGETYP": "Temp", "EXPTIME": (1.5, "s"), "XBINNING": 2})
    with fits.open(path) as hdul:
        h = hdul[0].header
        assert h["BITPIX"] == 16 and h["BZERO"] == 32768 and h["IMAGETYP"] == "Temp"
        assert h.comments["EXPTIME"] == "s"
        assert np.array_equal(hdul[0].data, data)


def test_sizes_and_speed(tmp_path):
    t0 = time.perf_counter()
    r = simulate_night(tmp_path, seed=2, **SMALL)
    assert time.perf_counter() - t0 < 10.0
    assert fits.getdata(r.lights()[0]).shape == (256, 256)
    spec = Simulator(seed=0).spec  # defaults: camera size // binning
    assert (spec.nx, spec.ny) == (1117, 844)


def test_simulate_imports_no_pipeline_module():
    import clinepipe.simulate as sim

    for path in Path(sim.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("clinepipe") for a in node.names), path
            if isinstance(node, ast.ImportFrom):
                if node.level >= 2 or (node.module or "").startswith("clinepipe"):
                    assert node.level == 2 and node.module is None, (path, node.module)
                    assert [a.name for a in node.names] == ["__version__"], path
            assert not (isinstance(node, ast.Name) and node.id in ("exec", "eval")), path


def test_scintillation_is_young_times_osborn_per_star_and_frame():
    """Each star's flux on a light is multiplied by its own 1 + N(0, sigma), sigma Young's
    formula for the spec's aperture and elevation times Osborn et al.'s 1.5; noise=False
    and scintillation_factor=0 have none."""
    from clinepipe.simulate.night import make_spec

    spec = dict(width=96, height=96, n_stars=4000, lights_per_filter=2, filters=("V",))
    sim = Simulator(make_spec(None, **spec), seed=4)
    assert (sim.spec.telescope_diameter_cm, sim.spec.elevation) == (50.8, 250.0)
    for plan in sim.light_plans(0):
        truth = sim.render_light(plan, cosmic_rays=False).truth
        factor = np.asarray(truth["scintillation"])
        want = 1.5 * young_rms(50.8, plan.airmass, 250.0, plan.exptime)
        assert sim.frame_truth_row(plan)["scintillation_rms"] == pytest.approx(want, rel=1e-12)
        # 4000 stars measure the rms to 1.1 % (1 sigma); the mean is 1 within 3 sigma
        assert np.std(factor) == pytest.approx(want, rel=0.045)
        assert abs(np.mean(factor) - 1) < 3 * want / math.sqrt(factor.size)
        assert 0.0008 < want < 0.005  # 60 s at airmass 1-2 on a half-metre telescope
    plan = sim.light_plans(0)[0]
    assert np.all(sim.render_light(plan, noise=False).truth["scintillation"] == 1.0)
    off = Simulator(make_spec(None, scintillation_factor=0.0, **spec), seed=4)
    truth = off.render_light(off.light_plans(0)[0], cosmic_rays=False).truth
    assert np.all(truth["scintillation"] == 1.0)
