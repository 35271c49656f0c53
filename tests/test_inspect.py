"""clinepipe inspect's core: real headers written as files, read back, grouped, CSV, config."""

from __future__ import annotations

import csv
import gzip
import io
import tomllib
from pathlib import Path

import numpy as np
import pytest
from header_fixtures import header_text, write_fits, write_fixture

from clinepipe.errors import UsageError
from clinepipe.headers import HeaderRules
from clinepipe.headers.inspect import CSV_COLUMNS, inspect_paths, run_inspect


def robotic_night(root: Path, n_lights: int = 3) -> Path:
    """The issue's night: lights with no frame type and a local DATE-OBS, no calibration."""
    lines = header_text("issue22_robotic_localtime.txt").splitlines()
    for i in range(n_lights):
        cards = [line if not line.startswith("DATE-OBS") else
                 f"DATE-OBS= '2017-12-20T01:{36 + i:02d}:12.023-0700' / local time" for line in lines]
        write_fits(root / "incoming" / "20171219" / f"xxcyg_{i:03d}.fits", cards)
    return root / "incoming"


def test_robotic_night_fails_with_the_fix_then_passes(tmp_path):
    incoming = robotic_night(tmp_path)
    out = io.StringIO()
    assert run_inspect([incoming], out=out, pixels=False) == 1
    text = out.getvalue()
    assert "3 FITS files, 1 groups" in text
    assert "3 x no frame type" in text and 'fix: [headers] default_kind = "light"' in text
    assert "offset -07:00 converted to UTC" in text
    assert "3 of 3 files cannot be classified" in text
    out = io.StringIO()
    assert run_inspect([incoming], out=out, rules=HeaderRules(default_kind="light"), pixels=False) == 0
    assert "light    bin 1  filter V" in out.getvalue() and "Every file can be classified." in out.getvalue()


def test_csv_rows(tmp_path):
    incoming = robotic_night(tmp_path, 2)
    write_fixture(incoming / "20250909" / "BIAS" / "b1.fits", "NINA_bias_1.txt")
    out = io.StringIO()
    run_inspect([incoming], csv=True, out=out, rules=HeaderRules(default_kind="light"), pixels=False)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 3
    by_name = {Path(r["file"]).name: r for r in rows}
    light = by_name["xxcyg_001.fits"]
    assert (light["kind"], light["binning"], light["filter"], light["exptime"]) == ("light", "1", "V", "60")
    assert (light["time_utc"], light["time_source"], light["profile"]) == ("2017-12-20T08:37:12.023", "DATE-OBS", "generic")
    bias = by_name["b1.fits"]
    assert (bias["kind"], bias["time_utc"], bias["temperature_c"], bias["profile"]) == (
        "bias", "2025-09-10T03:32:01.736", "-9.80", "nina")


def test_write_config_for_a_night_without_calibration(tmp_path):
    incoming = robotic_night(tmp_path)
    write_fixture(incoming / "20250704" / "Light_M 101_10.0s_IRCUT_20250704-232412.fit", "Seestar_light_sub_5.txt")
    target = tmp_path / "clinepipe.toml"
    assert run_inspect([incoming], write_config=target, out=io.StringIO(), pixels=False) == 1
    text = target.read_text()
    cfg = tomllib.loads(text)
    assert (tmp_path / cfg["paths"]["incoming"]).resolve() == incoming.resolve()
    assert cfg["headers"]["default_kind"] == "light"
    assert cfg["reduction"]["without_masters"] == "measure"
    # the Seestar's site (SITELAT/SITELONG), marked for checking
    assert cfg["site"]["latitude"] == pytest.approx(37.5208, abs=1e-6)  # SITELAT = 37.5208
    assert cfg["site"]["longitude"] == pytest.approx(-122.308, abs=1e-6)  # SITELONG = -122.308
    assert "[site]  # check" in text


def test_multi_extension_primary_takes_the_image_extension(tmp_path):
    from astropy.io import fits

    path = tmp_path / "in" / "lco.fits"
    path.parent.mkdir()
    primary = fits.Header.fromstring(header_text("LCO_raw_light_1.txt"), sep="\n")
    ext = fits.Header.fromstring(header_text("LCO_raw_light_1_ext1_SCI.txt"), sep="\n")
    sci = fits.ImageHDU(np.zeros((6, 8), np.int16))
    for key in ("GAIN", "CCDSUM", "EXTNAME"):
        sci.header[key] = ext[key]
    fits.HDUList([fits.PrimaryHDU(header=primary), sci]).writeto(path, output_verify="silentfix")
    (report,) = inspect_paths([tmp_path / "in"])
    f = report.facts
    assert (f.kind, f.binning, f.gain, f.shape, f.exptime) == ("light", 2, 6.42, (6, 8), 94.975)
    assert f.date_obs == "2021-10-08T01:55:17.144" and f.ok


def test_twelve_bit_camera_is_detected_from_pixels(tmp_path):
    rng = np.random.default_rng(7)
    for i in range(4):
        data = rng.integers(200, 3000, size=(6, 8)) - 32768  # BZERO 32768: stored values
        if i == 2:
            data[3, 4] = 4095 - 32768  # one saturated star pixel in the night
        write_fixture(tmp_path / "in" / f"l{i}.fits", "NINA_light_6.txt", data=data)
    out = io.StringIO()
    run_inspect([tmp_path / "in"], out=out, write_config=tmp_path / "c.toml")
    assert "a 12-bit camera" in out.getvalue()
    assert tomllib.loads((tmp_path / "c.toml").read_text())["camera"]["saturation"] == 4095


def test_gzip_file_and_bad_files(tmp_path):
    folder = tmp_path / "in"
    plain = write_fixture(folder / "a.fits", "MaxImDL_light_4.txt")
    (folder / "a.fits.gz").write_bytes(gzip.compress(plain.read_bytes()))
    (folder / "notes.fits").write_text("not a FITS file at all")
    (folder / "empty.fit").write_bytes(b"")
    (folder / "cut.fits").write_bytes(plain.read_bytes()[:1000])
    reports = {r.path.name: r.facts for r in inspect_paths([folder])}
    assert reports["a.fits.gz"].date_obs == reports["a.fits"].date_obs == "2013-10-16T06:46:34.000"
    assert [p.reason for p in reports["notes.fits"].problems] == ["not FITS"]
    assert [p.reason for p in reports["empty.fit"].problems] == ["empty file"]
    assert [p.reason for p in reports["cut.fits"].problems] == ["truncated FITS"]
    assert run_inspect([folder], out=io.StringIO(), pixels=False) == 1


def test_bad_usage(tmp_path):
    with pytest.raises(UsageError):
        run_inspect([tmp_path / "nowhere"], out=io.StringIO())
    out = io.StringIO()
    assert run_inspect([tmp_path], out=out) == 1 and "no FITS file" in out.getvalue()


def test_groups_count_every_style(tmp_path):
    names = ["NINA_light_6.txt", "NINA_light_6.txt", "NINA_dark_1.txt", "NINA_flat_1.txt", "NINA_bias_1.txt"]
    for i, name in enumerate(names):
        write_fixture(tmp_path / "in" / f"f{i}.fits", name)
    out = io.StringIO()
    assert run_inspect([tmp_path / "in"], out=out, pixels=False) == 0
    text = out.getvalue()
    assert "5 FITS files, 4 groups" in text
    assert "light    bin 1  filter HaOiii        120 s           8x6  2 files" in text
