"""Ingest of any acquisition program's files: ``[headers]`` config, ``read_frame_info`` built on
:func:`clinepipe.headers.read_header_facts`, skipped frames, TOP-DOWN rows flipped where the
pixels are read, and ``clinepipe inspect``'s exit codes."""

from __future__ import annotations

import gzip
import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from clinepipe.cli import main
from clinepipe.config import CameraConfig, SiteConfig, config_from_dict
from clinepipe.errors import BadInput, ConfigError
from clinepipe.headers import HeaderRules
from clinepipe.ingest.classify import SkippedFrame, read_frame_info
from clinepipe.ingest.files import sha256_file
from clinepipe.ingest.fits_reader import read_image

CAMERA, SITE = CameraConfig(), SiteConfig()


def write(path: Path, cards: dict, data=None) -> Path:
    """A 16-bit frame with exactly ``cards`` (in order)."""
    rng = np.random.default_rng(1)
    data = rng.normal(1000, 20, (30, 20)).astype(np.uint16) if data is None else data
    hdu = fits.PrimaryHDU(data)
    for key, value in cards.items():
        hdu.header[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path, overwrite=True)
    return path


NINA = {"IMAGETYP": "LIGHT", "EXPOSURE": 30.0, "XBINNING": 2, "YBINNING": 2, "GAIN": 139,
        "OFFSET": 21, "EGAIN": 1.0, "FILTER": "Lum", "CCD-TEMP": -10.0,
        "DATE-OBS": "2024-03-02T03:12:44.1234567", "SWCREATE": "N.I.N.A. 3.0.0.2017 (x64)",
        "ROWORDER": "TOP-DOWN"}


# ----------------------------------------------------------------------------- [headers] config

def test_headers_section_keeps_file_order_and_becomes_rules():
    import tomllib

    raw = tomllib.loads('[headers]\nprofile = "nina"\ndefault_kind = "light"\n'
                        'default_filter = "CV"\n[headers.kind_by_path]\n"*flat*" = "flat"\n'
                        '"*" = "light"\n"*/Bias/*" = "bias"\n[headers.filter_aliases]\n'
                        '"Clear" = "CV"\n')
    rules = config_from_dict(raw).headers.rules()
    assert rules == HeaderRules(profile="nina", default_kind="light", default_filter="CV",
                                kind_by_path=(("*flat*", "flat"), ("*", "light"),
                                              ("*/Bias/*", "bias")),
                                filter_aliases={"Clear": "CV"})


@pytest.mark.parametrize("section,key", [
    ({"profile": "photoshop"}, "profile"),
    ({"default_kind": "science"}, "default_kind"),
    ({"default_filter": " "}, "default_filter"),
    ({"kind_by_path": {"*/Focus/*": "focus"}}, "kind_by_path"),
    ({"kind_by_path": {"*": 3}}, "kind_by_path"),
    ({"filter_aliases": {"Clear": ""}}, "filter_aliases"),
    ({"rows": "top-down"}, "rows"),
])
def test_bad_headers_values_are_one_sentence_naming_the_key(section, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"headers": section}, Path("/obs/clinepipe.toml"))
    message = err.value.message
    assert message.startswith("/obs/clinepipe.toml: ") and key in message
    assert message.endswith(".") and message.count(". ") == 0


# ----------------------------------------------------------------------------- read_frame_info

def test_nina_light_time_gain_and_filter_alias(tmp_path):
    p = write(tmp_path / "LIGHT" / "a.fits", NINA)
    info = read_frame_info(p, CAMERA, SITE, rules=HeaderRules(filter_aliases={"Lum": "L"}))
    assert (info.kind, info.binning, info.exptime, info.filter) == ("light", 2, 30.0, "L")
    assert info.gain == 1.0  # EGAIN; GAIN 139 next to OFFSET is the camera's setting
    assert info.date_obs == "2024-03-02T03:12:44.123"
    start = Time("2024-03-02T03:12:44.1234567", scale="utc").jd
    assert abs(info.jd_mid - (start + 15.0 / 86400)) * 86400 < 1e-4
    assert info.top_down and info.time_source == "DATE-OBS"
    assert info.night == "20240301"


def test_local_time_with_offset_and_ut_obs_says_which_it_used(tmp_path):
    cards = {"IMAGETYP": "Light Frame", "EXPTIME": 60.0, "FILTER": "V",
             "DATE-OBS": "2017-12-20T01:36:12.023-0700", "UT-OBS": "08:36:12.023"}
    info = read_frame_info(write(tmp_path / "a.fits", cards), CAMERA, SITE)
    assert (info.date_obs, info.time_source, info.time_note) == (
        "2017-12-20T08:36:12.023", "DATE-OBS (-07:00)", "")
    cards["UT-OBS"] = "09:36:12.023"  # the zone of DATE-OBS is wrong: UT-OBS is believed
    info = read_frame_info(write(tmp_path / "b.fits", cards), CAMERA, SITE)
    assert (info.date_obs, info.time_source) == ("2017-12-20T09:36:12.023", "UT-OBS")
    assert info.time_note == "DATE-OBS had a -07:00 offset; used UT-OBS (they differ by 3600.0 s)"
    assert ("no CCD temperature", "has no CCD temperature keyword: the temperature is not "
            "checked.") in info.notes


def test_darkflat_is_a_dark_and_kind_by_path_overrides_the_header(tmp_path):
    p = write(tmp_path / "n" / "FLAT" / "df.fits", {**NINA, "IMAGETYP": "DARKFLAT", "EXPOSURE": 2.0})
    assert read_frame_info(p, CAMERA, SITE).kind == "dark"
    rules = HeaderRules(kind_by_path=(("*/FLAT/*", "flat"),))
    info = read_frame_info(p, CAMERA, SITE, rules=rules, relpath="n/FLAT/df.fits")
    assert info.kind == "flat"


def test_no_frame_type_default_kind_and_kind_by_path(tmp_path):
    cards = {"EXPTIME": 10.0, "DATE-OBS": "2024-03-02T03:12:44", "FILTER": "R"}
    p = write(tmp_path / "night" / "Bias" / "b1.fits", cards)
    with pytest.raises(BadInput) as err:
        read_frame_info(p, CAMERA, SITE, relpath="night/Bias/b1.fits")
    assert err.value.reason == "no frame type"
    assert 'kind_by_path] "*Bias*" = "bias"' in err.value.message and "b1.fits" in err.value.message
    rules = HeaderRules(kind_by_path=(("*/Bias/*", "bias"),), default_kind="light")
    assert read_frame_info(p, CAMERA, SITE, rules=rules, relpath="night/Bias/b1.fits").kind == "bias"
    assert read_frame_info(p, CAMERA, SITE, rules=rules, relpath="night/x.fits").kind == "light"


@pytest.mark.parametrize("cards,reason", [
    ({"IMAGETYP": "focus"}, "frame type 'focus' skipped"),
    ({"IMAGETYP": "TEST"}, "frame type 'TEST' skipped"),
])
def test_unused_frame_types_are_skipped_without_reading_pixels(tmp_path, cards, reason):
    p = write(tmp_path / "f.fits", {**NINA, **cards}, data=np.zeros((30, 20), np.uint16))
    with pytest.raises(SkippedFrame) as err:  # constant data, yet skipped, not failed
        read_frame_info(p, CAMERA, SITE)
    assert err.value.reason == reason


def test_kind_by_path_can_skip(tmp_path):
    p = write(tmp_path / "Focus" / "f.fits", NINA)
    rules = HeaderRules(kind_by_path=(("Focus/*", "skipped"),))
    with pytest.raises(SkippedFrame) as err:
        read_frame_info(p, CAMERA, SITE, rules=rules, relpath="Focus/f.fits")
    assert err.value.reason == 'skipped by [headers.kind_by_path] "Focus/*"'


def test_saturation_and_lco_gain_from_the_header(tmp_path):
    cards = {"OBSTYPE": "EXPOSE", "EXPTIME": 30.0, "FILTER": "rp", "GAIN": 2.3,
             "SATURATE": 47500.0, "DATE-OBS": "2024-03-02T03:12:44.123", "ORIGIN": "LCOGT",
             "CCDSUM": "2 2"}
    info = read_frame_info(write(tmp_path / "a.fits", cards), CAMERA, SITE)
    assert (info.kind, info.binning, info.gain, info.saturation) == ("light", 2, 2.3, 47500.0)


def test_unreadable_date_is_not_called_missing(tmp_path):
    p = write(tmp_path / "a.fits", {**NINA, "DATE-OBS": "20.12.2017 01:36"})
    with pytest.raises(BadInput) as err:
        read_frame_info(p, CAMERA, SITE)
    assert err.value.reason == "DATE-OBS '20.12.2017 01:36' is not a date clinepipe reads"


# ----------------------------------------------------------------------------- TOP-DOWN rows

def test_read_image_flips_top_down_rows_once(tmp_path):
    data = np.arange(30 * 20, dtype=np.uint16).reshape(30, 20)
    p = write(tmp_path / "td.fits", NINA, data=data)
    before = sha256_file(p)
    image, header = read_image(p)
    assert np.array_equal(image, data[::-1]) and header["ROWORDER"] == "BOTTOM-UP"
    assert sha256_file(p) == before  # the raw file is never changed
    out = tmp_path / "written.fits"  # a file written from the flipped image is not flipped again
    fits.PrimaryHDU(image, header=header).writeto(out)
    assert np.array_equal(read_image(out)[0], data[::-1])
    gz = tmp_path / "td.fits.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert np.array_equal(read_image(gz)[0], data[::-1])


def test_stacker_reads_top_down_frames_bottom_up_in_every_chunk(tmp_path):
    from clinepipe.ccd.stack import median_stack

    rng = np.random.default_rng(3)
    frames = [rng.integers(900, 1100, (31, 20)).astype(np.uint16) for _ in range(3)]
    paths = [write(tmp_path / f"td{i}.fits", NINA, data=f) for i, f in enumerate(frames)]
    bottom_up = write(tmp_path / "bu.fits", {**NINA, "ROWORDER": "BOTTOM-UP"},
                      data=frames[0][::-1].copy())
    want = np.median(np.stack(frames), axis=0)[::-1]
    for chunk in (4, 7, 256):  # chunks that do not divide the 31 rows
        assert np.array_equal(median_stack(paths, chunk_rows=chunk), want)
    # a TOP-DOWN frame and the same image stored bottom-up are the same image to the stacker
    assert np.array_equal(median_stack([paths[0]] * 3, chunk_rows=7),
                          median_stack([bottom_up] * 3, chunk_rows=7))


# ----------------------------------------------------------------------------- clinepipe inspect

def _inspect(*args) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as done:
        main(["inspect", *map(str, args)])
    return done.value.code or 0, out.getvalue()


def test_inspect_exit_codes_and_csv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no clinepipe.toml here: the default [headers]
    monkeypatch.delenv("CLINEPIPE_CONFIG", raising=False)
    write(tmp_path / "in" / "LIGHT" / "a.fits", NINA)
    write(tmp_path / "in" / "LIGHT" / "focus.fits", {**NINA, "IMAGETYP": "focus"})
    code, out = _inspect(tmp_path / "in", "--csv")
    assert code == 0
    rows = {r.split(",")[0].rsplit("/", 1)[-1]: r.split(",") for r in out.splitlines()[1:]}
    assert rows["a.fits"][1:5] == ["light", "2", "Lum", "30"] and rows["focus.fits"][1] == "skipped"
    write(tmp_path / "in" / "x.fits", {"EXPTIME": 1.0, "DATE-OBS": "2024-03-02T03:12:44"})
    target = tmp_path / "suggested.toml"
    code, out = _inspect(tmp_path / "in", "--write-config", target)
    assert code == 1 and 'default_kind = "light"' in out
    written = __import__("tomllib").loads(target.read_text(encoding="utf-8"))
    assert written["headers"]["default_kind"] == "light"  # the fix, in the config it wrote
    config = tmp_path / "clinepipe.toml"
    config.write_text('[headers]\ndefault_kind = "light"\n', encoding="utf-8")
    assert _inspect(tmp_path / "in")[0] == 0  # ./clinepipe.toml's [headers] is used


def test_inspect_bad_usage_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLINEPIPE_CONFIG", raising=False)
    with pytest.raises(SystemExit) as done:
        main(["inspect", str(tmp_path / "no-such-folder")])
    assert done.value.code == 2
    with pytest.raises(SystemExit) as done:
        main(["inspect"])
    assert done.value.code == 2


# ----------------------------------------------------------------------------- the ingest step

def test_ingest_records_skipped_frames_and_says_the_time_it_used(tmp_path):
    """A focus frame is ``skipped`` (not failed) with its value named, and becomes a frame when
    ``[headers.kind_by_path]`` says what it is; a light whose time keywords disagree is
    ingested with the one believed, and the log says which and why."""
    from sqlalchemy import select

    from clinepipe.run.pipeline import run_pipeline
    from clinepipe.store.db import open_database, session_scope
    from clinepipe.store.models import Frame

    incoming = tmp_path / "incoming"
    write(incoming / "n1" / "focus.fits", {**NINA, "IMAGETYP": "Focus"})
    write(incoming / "n1" / "light.fits", {"IMAGETYP": "Light Frame", "EXPTIME": 60.0,
                                           "FILTER": "V", "CCD-TEMP": -10.0,
                                           "DATE-OBS": "2017-12-20T01:36:12.023-0700",
                                           "UT-OBS": "09:36:12.023"})
    base = {"paths": {"incoming": str(incoming), "archive": str(tmp_path / "archive"),
                      "settle_seconds": 0.0},
            "database": {"url": f"sqlite:///{tmp_path / 'c.db'}"}}

    def rows(cfg):
        engine = open_database(cfg.database.url)
        with session_scope(engine) as s:
            out = {f.raw_path: (f.state, f.stage, f.reason, f.kind, f.date_obs)
                   for f in s.scalars(select(Frame))}
        engine.dispose()
        return out

    cfg = config_from_dict(base, tmp_path / "clinepipe.toml")
    run_pipeline(cfg)
    first = rows(cfg)
    assert first["n1/focus.fits"][:3] == ("skipped", "ingest", "frame type 'Focus' skipped")
    assert first["n1/light.fits"][3:] == ("light", "2017-12-20T09:36:12.023")
    log = (tmp_path / "archive" / "logs" / "clinepipe.log").read_text(encoding="utf-8")
    assert ("n1/light.fits: time from UT-OBS: DATE-OBS had a -07:00 offset; used UT-OBS"
            in log)

    cfg = config_from_dict({**base, "headers": {"kind_by_path": {"*focus*": "flat"}}},
                           tmp_path / "clinepipe.toml")
    run_pipeline(cfg)
    assert rows(cfg)["n1/focus.fits"][3] == "flat"  # tried again: the config says what it is
    log = (tmp_path / "archive" / "logs" / "clinepipe.log").read_text(encoding="utf-8")
    assert "n1/focus.fits: tried again after it was skipped at ingest" in log
