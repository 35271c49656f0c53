"""`simulate --style`: each acquisition program's header style, checked against what the real
headers in shared/headers/ show, with times, kinds, filters, exposures, binnings and
temperatures read back independently (regex + datetime) and compared with truth/frames.csv.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from clinepipe.cli import app, main
from clinepipe.simulate import read_csv_table, render_light, simulate_night
from clinepipe.simulate.styles import STYLES

TINY = dict(width=48, height=40, n_stars=20, lights_per_filter=2, n_bias=1, n_dark=1, n_flat=1,
            binning=2)
UTC = timezone.utc


def _utc(text: str) -> datetime:
    """ISO 8601 with any number of fraction digits and an optional +hh:mm/-hhmm/Z zone."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?", text)
    assert m, text
    t = datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S")
    if m[2]:
        t += timedelta(microseconds=int(m[2]) / 10 ** (len(m[2]) - 6))
    zone = m[3]
    if zone and zone != "Z":
        z = zone.replace(":", "")
        t -= int(z[0] + "1") * timedelta(hours=int(z[1:3]), minutes=int(z[3:5]))
    return t.replace(tzinfo=UTC)


def _start(style, h) -> tuple[datetime, float, float]:
    """(UTC start as the header says it once its convention is undone, precision s, bias s)."""
    if style in ("maxim_old", "iraf"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", h["DATE-OBS"])
        tkey = "TIME-OBS" if style == "maxim_old" else "UT"
        t = _utc(f"{h['DATE-OBS']}T{h[tkey]}")
        return t, (1.0 if style == "maxim_old" else 0.1), 0.0
    t = _utc(h["DATE-OBS"])
    if style == "dwarf":  # DATE-OBS is the end of the exposure
        t -= timedelta(seconds=float(h["EXPTIME"]))
    return t, {"maxim": 0.01}.get(style, 0.001), 0.0


KIND_WORDS = {"light": {"light frame", "light", "object", "expose"},
              "bias": {"bias frame", "bias", "zero"},
              "dark": {"dark frame", "dark"},
              "flat": {"flat frame", "flat field", "flat", "skyflat"}}
FRAME_KEYS = ("IMAGETYP", "FRAME", "OBSTYPE")


def _kind(h, rel: str, kind_by_path: dict, default: str) -> str:
    for pattern, kind in kind_by_path.items():
        if fnmatch.fnmatch(rel, pattern):
            return kind
    for key in FRAME_KEYS:
        if key in h:
            word = str(h[key]).strip().lower()
            return next(k for k, words in KIND_WORDS.items() if word in words)
    return default


def _raw(h, key) -> str:
    """A card's value as written: the text of a number, the content of a string."""
    value = h[key]
    if isinstance(value, str):
        return value.strip()
    return h.cards[key].image[10:].split("/")[0].strip()


def _binning(h) -> int:
    if "XBINNING" in h:
        return int(h["XBINNING"])
    if "BINX" in h:
        return int(h["BINX"])
    return int(str(h["CCDSUM"]).split()[0])


def _exptime(h) -> float:
    return float(h["EXPTIME"] if "EXPTIME" in h else h["EXPOSURE"])


def _temp_c(h) -> float:
    for key in ("CCD-TEMP", "CCDATEMP", "TEMPERAT", "DET-TEMP", "CCDTEMP"):
        if key in h:
            value = float(h[key])
            return value - 273.15 if value > 150 else value
    raise AssertionError("no temperature keyword")


# keywords each program writes (present) and does not write (absent), and value formats
EXPECT = {
    "thesky": ({"IMAGETYP": r"(Light|Bias|Dark) Frame|Flat Field", "EXPTIME": None,
                "XBINNING": None, "CCD-TEMP": None}, ("FRAME", "OBSTYPE", "ROWORDER")),
    "maxim_old": ({"IMAGETYP": r"(Light|Bias|Dark|Flat) Frame", "TIME-OBS": r"\d\d:\d\d:\d\d",
                   "UT": r"\d\d:\d\d:\d\d", "JD": None, "EGAIN": None},
                  ("ROWORDER", "DATE-LOC")),
    "maxim": ({"IMAGETYP": r"(Light|Bias|Dark|Flat) Frame",
               "DATE-OBS": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d", "SWCREATE": r"MaxIm DL .*",
               "ROWORDER": "TOP-DOWN", "EXPOSURE": None}, ("TIME-OBS",)),
    "nina": ({"IMAGETYP": "LIGHT|BIAS|DARK|FLAT", "DATE-OBS": r".*T.*\.\d{7}",
              "DATE-LOC": r".*T.*\.\d{7}", "GAIN": r"\d+", "OFFSET": r"\d+", "EGAIN": None,
              "ROWORDER": "TOP-DOWN", "FOCALLEN": None, "XPIXSZ": None,
              "OBJCTRA": r"\d\d \d\d \d\d", "OBJCTDEC": r"[+-]\d\d \d\d \d\d",
              "SITELAT": None, "SITELONG": None, "SWCREATE": r"N\.I\.N\.A\. .*"}, ("FRAME",)),
    "sgp": ({"IMAGETYP": "LIGHT|BIAS|DARK|FLAT", "CREATOR": "Sequence Generator Pro.*",
             "EXPOSURE": None, "CCDXBIN": None, "DATE-LOC": r".*\.\d{7}",
             "SITELAT": r"-?\d+ \d+ \d+\.\d{3}"}, ("EXPTIME", "SWCREATE")),
    "sharpcap": ({"SWCREATE": "SharpCap v4.*", "DATE-END": None, "JD_UTC": None,
                  "ROWORDER": "TOP-DOWN", "ADCBITS": r"1[246]", "EGAINSAV": None,
                  "GAIN": r"\d+", "OFFSET": r"\d+"}, ("IMAGETYP", "FRAME", "FILTER")),
    "indi": ({"FRAME": "Light|Bias|Dark|Flat", "EXPTIME": r"\d\.\d{6}E[+-]\d\d",
              "PIXSIZE1": None, "SCALE": None, "DATAMAX": None}, ("IMAGETYP",)),
    "lco": ({"OBSTYPE": "EXPOSE|BIAS|DARK|SKYFLAT", "MJD-OBS": None, "DAY-OBS": r"\d{8}",
             "UTSTART": r"\d\d:\d\d:\d\d\.\d{3}", "CCDSUM": "2 2", "CCDATEMP": None,
             "SATURATE": None}, ("IMAGETYP", "XBINNING", "CCD-TEMP")),
    "iraf": ({"IMAGETYP": "object|zero|flat|dark", "UT": r"\d\d:\d\d:\d\d\.\d",
              "CCDSUM": "2 2", "CCDTEMP": None}, ("XBINNING", "TIME-OBS", "CCD-TEMP")),
    "robotic": ({"DATE-OBS": r".*T\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}", "EXPOSURE": None,
                 "BINX": None, "TEMPERAT": None}, ("IMAGETYP", "FRAME", "OBSTYPE", "EXPTIME")),
    "seestar": ({"CREATOR": "ZWO Seestar S50", "IMAGETYP": "Light", "FILTER": "IRCUT",
                 "DATE-OBS": r".*T.*\.\d{6}", "TOTALEXP": None}, ("SWCREATE", "DATE-LOC")),
    "dwarf": ({"ORIGIN": "DWARFLAB", "DET-TEMP": r"-?\d+", "DATE-OBS": r".*T.*\.\d{3}"},
              ("IMAGETYP", "FRAME", "CCD-TEMP")),
}


@pytest.fixture(scope="module", params=STYLES)
def styled(request, tmp_path_factory):
    style = request.param
    r = simulate_night(tmp_path_factory.mktemp(style), seed=5, style=style, **TINY)
    return style, r


def test_every_frame_reads_back_as_the_truth(styled):
    style, r = styled
    cfg = tomllib.loads(r.config_path.read_text())
    hcfg = cfg.get("headers", {})
    kind_by_path = hcfg.get("kind_by_path", {})
    aliases = hcfg.get("filter_aliases", {})
    truth = read_csv_table(r.truth_dir / "frames.csv")
    assert len(truth) == len(r.frame_paths()) >= 2
    present, absent = EXPECT[style]
    for row in truth:
        path = r.incoming / row["file"]
        h = fits.getheader(path)
        kind = _kind(h, row["file"], kind_by_path, hcfg.get("default_kind", ""))
        assert kind == row["kind"], row["file"]
        start, precision, _ = _start(style, h)
        true = _utc(row["date_obs"])
        # truncated fractions: the header never runs ahead of the truth by a tick
        assert timedelta(0) <= true - start < timedelta(seconds=precision) \
            or abs(true - start) < timedelta(microseconds=1000), (row["file"], start, true)
        assert _exptime(h) == pytest.approx(row["exptime"], abs=1e-6)
        assert _binning(h) == row["binning"] == 2
        assert _temp_c(h) == pytest.approx(row["ccd_temp"], abs=0.51)
        if row["kind"] in ("light", "flat"):
            name = str(h.get("FILTER", hcfg.get("default_filter", ""))).strip()
            assert aliases.get(name, name) == row["filter"]
        for key, pattern in present.items():
            if key in ("FRAME", "OBSTYPE", "IMAGETYP", "DATE-END", "JD_UTC") or row["kind"] == "light":
                assert key in h, (style, key)
                if pattern:
                    assert re.fullmatch(pattern, _raw(h, key)), (key, _raw(h, key))
        for key in absent:
            assert key not in h, (style, key)
        if row["kind"] == "light":
            assert ("CD1_1" in h) and ("CRVAL1" in h)


def test_styles_file_their_frames_as_the_programs_do(styled):
    style, r = styled
    kinds = {k for k in r.frames["kind"]}
    names = [p.name for p in r.frame_paths()]
    if style == "seestar":
        assert kinds == {"light"}
        assert all(re.fullmatch(r"Light_SIM-FIELD_60\.0s_IRCUT_\d{8}-\d{6}\.fit", n) for n in names)
    elif style == "dwarf":
        assert kinds == {"light", "dark"}
    else:
        assert kinds == {"light", "bias", "dark", "flat"}
    assert any(p.suffix == ".SRC" for p in r.incoming.rglob("*")) == (style == "thesky")


def test_seestar_start_of_exposure_and_local_file_name(tmp_path):
    """As the real subs in shared/headers (Seestar_light_sub_2, _3, _5): DATE-OBS is the start,
    the file name the local time the file was written, EXPTIME + ~3 s later."""
    r = simulate_night(tmp_path, seed=5, style="seestar", **TINY)
    assert len(r.frames) == 2
    for row in r.frames:
        h = fits.getheader(r.incoming / row["file"])
        start = _utc(h["DATE-OBS"])
        assert start - _utc(row["date_obs"]) == pytest.approx(timedelta(0), abs=timedelta(
            milliseconds=1))
        stamp = re.search(r"_(\d{8}-\d{6})\.fit$", row["file"])[1]
        local = datetime.strptime(stamp, "%Y%m%d-%H%M%S").replace(tzinfo=timezone(timedelta(
            hours=-5)))
        exposure = timedelta(seconds=float(h["EXPTIME"]))
        assert exposure < local - start < exposure + timedelta(seconds=5)  # after the exposure


@pytest.mark.parametrize("style", ["thesky", "nina", "sharpcap", "maxim", "lco"])
def test_row_order_is_undone_by_roworder(style, tmp_path):
    r = simulate_night(tmp_path, seed=2, style=style, **TINY)
    light = r.lights()[1]
    stored = fits.getdata(light)
    h = fits.getheader(light)
    data, _, truth = render_light(r.spec, 2, index=1)
    top_down = h.get("ROWORDER", "BOTTOM-UP") == "TOP-DOWN"
    assert top_down == (style in ("nina", "sharpcap", "maxim"))
    assert r.frame_row(light)["row_order"] == ("top-down" if top_down else "bottom-up")
    image = stored[::-1] if top_down else stored
    np.testing.assert_array_equal(image, data)
    # the brightest star of the truth sits where the undone image has light
    star = truth[int(np.argmax(np.where(truth["in_frame"] == 1, truth["flux_adu"], -1)))]
    x, y = int(round(star["x"])) - 1, int(round(star["y"])) - 1
    assert image[y, x] > np.median(image) + 5 * np.std(image[:5])


def test_thesky_default_is_byte_identical_to_the_original(tmp_path):
    # scintillation (issue 18) came after styles and changes every light's star fluxes: with it
    # off, every byte is still the original's
    r = simulate_night(tmp_path, seed=3, width=64, height=48, n_stars=25, lights_per_filter=1,
                       n_bias=1, n_dark=1, n_flat=1, scintillation_factor=0.0)
    h = hashlib.sha256()
    for p in sorted(r.incoming.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(tmp_path).as_posix().encode())
            h.update(p.read_bytes())
    # issue 19 added the [aavso] section (the simulated variable as target, no obscode):
    # without it the config is byte for byte the original's
    config = r.config_path.read_text()
    aavso = config.index("\n[aavso]\n")
    assert tomllib.loads(config)["aavso"] == {"obscode": "", "targets": ["V0001 Sim"]}
    h.update(config[:aavso].encode())
    # digest of the same night written by the simulator before styles existed (commit 97d1d34)
    assert h.hexdigest() == "9b7a5fa149278bccc37037722f45ff2bacdf646cc3135271f7da95a557fda807"


@pytest.mark.parametrize("style", ["thesky", "robotic", "nina"])
def test_night_without_calibration_frames(style, tmp_path):
    r = simulate_night(tmp_path, seed=1, style=style, calibration_frames=False, **TINY)
    assert set(r.frames["kind"]) == {"light"}
    files = [p for p in r.incoming.rglob("*") if p.is_file() and p.suffix != ".SRC"]
    assert sorted(files) == sorted(r.lights())
    cfg = tomllib.loads(r.config_path.read_text())
    assert cfg["reduction"]["without_masters"] == "measure"


def test_12_bit_cameras_stored_as_real_programs_store_them(tmp_path):
    see = simulate_night(tmp_path / "s", seed=1, style="seestar", **TINY)
    assert see.spec.bit_depth == 12 and see.spec.saturation == 4095
    data = np.concatenate([fits.getdata(p).ravel() for p in see.lights()])
    assert data.max() <= 4095
    assert abs(np.median(data) - (1000 / 16 + 0.05 / 16 * 60)) < 40  # bias in 12-bit ADU + sky
    cam_gain = tomllib.loads(see.config_path.read_text())["camera"]["gain"]
    assert cam_gain == pytest.approx(0.4 * 16)
    nina = simulate_night(tmp_path / "n", seed=1, style="nina", bit_depth=12, **TINY)
    data = np.concatenate([fits.getdata(p).ravel() for p in nina.frame_paths()])
    assert np.all(data % 16 == 0) and data.max() <= 65520
    lco = simulate_night(tmp_path / "l", seed=1, style="lco", bit_depth=14, **TINY)
    data = np.concatenate([fits.getdata(p).ravel() for p in lco.frame_paths()])
    assert data.max() <= 16383
    assert fits.getheader(lco.lights()[0])["SATURATE"] == 16383


@pytest.mark.parametrize("style", ["thesky", "nina", "maxim", "indi", "robotic", "dwarf", "sgp"])
def test_lights_without_wcs_keep_pointing_and_scale(style, tmp_path):
    r = simulate_night(tmp_path, seed=1, style=style, wcs=False, **TINY)
    for light in r.lights():
        h = fits.getheader(light)
        assert "CD1_1" not in h and "CDELT1" not in h
        row = r.frame_row(light)
        scale_key = next((k for k in ("PIXSCALE", "SCALE", "SECPIX") if k in h), None)
        if scale_key:
            scale = float(h[scale_key])
        else:
            scale = 206.264806 * float(h["XPIXSZ"]) / float(h["FOCALLEN"])
        assert scale == pytest.approx(r.spec.scale, rel=2e-3)
        ra_key = next(k for k in ("RA", "OBJCTRA", "RA_OBJ", "CRVAL1") if k in h)
        assert ra_key in h, row["file"]


def test_pointing_drifts_through_the_night_over_a_full_sky(tmp_path):
    r = simulate_night(tmp_path, seed=4, style="nina", drift_px_per_hour=2.0,
                       pointing_jitter_px=0.0, **{**TINY, "lights_per_filter": 4})
    lights = [row for row in r.frames if row["kind"] == "light"]
    t = np.array([(_utc(row["date_obs"]) - _utc(lights[0]["date_obs"])).total_seconds() / 3600
                  for row in lights])
    shift = np.hypot([row["dx"] for row in lights], [row["dy"] for row in lights])
    np.testing.assert_allclose(shift, 2.0 * t, atol=1e-9)
    assert shift[-1] > 0.2 * TINY["height"]
    first, last = (r.light_truth(row["file"]) for row in (lights[0], lights[-1]))
    # the sky the drift uncovers has stars too: the frame holds as many at the end
    n0, n1 = (int(np.sum(t_["in_frame"])) for t_ in (first, last))
    assert n1 >= 0.5 * n0 > 0
    h0, h1 = (fits.getheader(r.incoming / row["file"]) for row in (lights[0], lights[-1]))
    assert h0["CRVAL2"] != h1["CRVAL2"]


def test_cli_style_option(tmp_path, capsys):
    result = CliRunner().invoke(app, ["simulate", str(tmp_path), "--style", "lco", "--width", "32",
                                      "--height", "32", "--lights", "1", "--no-calibration"])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "incoming").rglob("*.fits"))
    assert files and all(re.fullmatch(r"sim1m099-fa99-\d{8}-\d{4}-e00\.fits", f) for f in files)
    with pytest.raises(SystemExit) as bad:
        main(["simulate", str(tmp_path / "x"), "--style", "nonesuch"])
    assert bad.value.code == 2
    assert "unknown style 'nonesuch'" in capsys.readouterr().err
