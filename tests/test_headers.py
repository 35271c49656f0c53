"""clinepipe.headers: every header style of issue #22, from real headers (tests/data/headers),
against times computed independently with astropy's Time, and every bad or odd header's reason."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import EarthLocation
from astropy.time import Time, TimeDelta
from header_fixtures import header_from_cards, header_text, load_header

from clinepipe.errors import ConfigError
from clinepipe.headers import (
    HeaderRules,
    adc_saturation,
    detect_profile,
    parse_angle,
    parse_position,
    read_header_facts,
)
from clinepipe.headers.values import FastHeader

MS = 1.0 / 86400e3  # one millisecond in days


def facts_of(name, path="", **rules):
    return read_header_facts(load_header(name), path or name.replace(".txt", ".fits"),
                             HeaderRules(**rules))


def assert_start(f, iso_utc, shift_s=0.0):
    """The frame's start equals ``iso_utc`` (+ ``shift_s``), computed by astropy, to 1 ms."""
    t = Time(iso_utc, format="isot", scale="utc") + TimeDelta(shift_s, format="sec")
    assert abs(f.jd_start - t.jd) < MS
    assert f.date_obs == t.isot[:23]
    assert abs(f.jd_mid - (t + TimeDelta(f.exptime / 2, format="sec")).jd) < MS


def reasons(f):
    return [p.reason for p in f.problems]


# ------------------------------------------------------------------------- one test per style

def test_theskyx_dark_site_west_positive():
    f = facts_of("TheSkyX_dark_1.txt")
    assert (f.profile, f.kind, f.binning, f.exptime, f.filter) == ("thesky", "dark", 2, 120.0, None)
    assert_start(f, "2023-08-15T02:40:00.466")
    # SITELONG '+122 30 31' is west in TheSkyX: the same place as its own OBSGEO-L (east +)
    assert f.site_lon == pytest.approx(-(122 + 30 / 60 + 31 / 3600), abs=1e-6)
    assert f.site_lat == pytest.approx(38 + 26 / 60 + 18 / 3600, abs=1e-6)
    assert f.temperature == pytest.approx(-20.02, abs=0.01) and f.ok


def test_maxim_iso_date_obs_and_sexagesimal_pointing():
    f = facts_of("MaxImDL_light_1.txt")
    assert (f.profile, f.kind, f.filter, f.binning, f.exptime) == ("maxim", "light", "SII", 1, 300.0)
    assert_start(f, "2018-07-04T14:03:03")
    assert f.ra == pytest.approx(15 * (18 + 20 / 60 + 48.12 / 3600), abs=1e-6)
    assert f.dec == pytest.approx(-(16 + 10 / 60 + 58.8 / 3600), abs=1e-6)
    assert f.time_note == "" and f.ok


def test_maxim_old_form_date_obs_with_time_obs():
    header = load_header("MaxImDL_light_1.txt")
    header["DATE-OBS"] = "2018-07-04"  # the old form: the date alone, the clock in TIME-OBS
    header["TIME-OBS"] = "14:03:03.25"
    f = read_header_facts(header, "a.fits")
    assert f.time_source == "DATE-OBS+TIME-OBS"
    assert_start(f, "2018-07-04T14:03:03.250")


def test_acp_old_format_cards_agree_and_cd_scale():
    f = facts_of("ACP_MaxImDL_light_1.txt")
    assert (f.profile, f.kind, f.filter, f.exptime) == ("acp", "light", "r", 90.0)
    assert_start(f, "2018-08-23T08:49:30")
    assert f.time_note == ""  # TIME-OBS, UT, JD-OBS and MJD-OBS all agree within 2 s
    det = 1.52533622018e-4 * 1.52533691003e-4 + 3.45467829608e-5 * 3.45467673364e-5
    assert f.pixel_scale == pytest.approx(math.sqrt(det) * 3600, rel=1e-9)
    assert f.site_lat == pytest.approx(46 + 52 / 60, abs=1e-9)


def test_nina_light_gain_setting_ignored_top_down():
    f = facts_of("NINA_light_6.txt")
    assert (f.profile, f.kind, f.filter, f.binning, f.exptime) == ("nina", "light", "HaOiii", 1, 120.0)
    assert_start(f, "2025-09-17T03:34:02.6477108")
    assert f.gain == pytest.approx(0.242862924933434) and f.gain_source == "EGAIN"
    assert f.top_down and f.temperature == -10.0


def test_nina_19_unquoted_date_obs():
    f = facts_of("NINA_light_2.txt")
    assert (f.kind, f.filter, f.exptime, f.exptime_source) == ("light", "L", 60.0, "EXPOSURE")
    assert_start(f, "2020-01-21T20:29:08.357")


def test_sgp_exposure_only_and_gain_setting():
    f = facts_of("SGP_light_1.txt")
    assert (f.profile, f.kind, f.filter, f.exptime) == ("sgp", "light", "HaOIII", 30.0)
    assert_start(f, "2020-05-30T00:22:49.0968820")
    assert f.gain == pytest.approx(3.99000000953674)  # EGAIN, not GAIN = 120


def test_sharpcap_no_frame_type_then_default_kind():
    f = facts_of("SharpCap_light_2.txt")
    assert f.kind == "" and not f.ok
    problem = next(p for p in f.problems if p.reason == "no frame type")
    assert "[headers] default_kind" in problem.message and problem.fatal
    f = facts_of("SharpCap_light_2.txt", default_kind="light")
    assert (f.kind, f.kind_source, f.exptime) == ("light", "[headers] default_kind", 280.0)
    assert_start(f, "2025-03-19T22:51:59.3846323")
    # its DATE-AVG is 210 s off a mid-exposure 140 s after DATE-OBS: said, DATE-OBS kept
    assert f.time_note.startswith("DATE-OBS and DATE-AVG differ by 210.5 s; used DATE-OBS")


def test_sharpcap_frame_grabbed_is_the_end_of_the_exposure():
    f = facts_of("SharpCap_light_1.txt", default_kind="light")
    assert f.exptime == 2.0
    assert_start(f, "2019-04-29T20:25:29.8219583", shift_s=-2.0)
    assert "end of the exposure" in f.time_note


def test_kstars_indi_frame_keyword():
    f = facts_of("KStarsINDI_light_1.txt")
    assert (f.profile, f.kind, f.kind_source, f.filter, f.exptime) == ("indi", "light", "FRAME", "LPR", 30.0)
    assert_start(f, "2020-02-05T07:43:19.609")
    assert f.pixel_scale == pytest.approx(1.191956) and f.saturation is None  # DATAMAX = data range


def test_ccdops_no_frame_type_kind_by_path():
    f = facts_of("SBIG_CCDOps_light_1.txt", path="night/Lights/x.fits",
                 kind_by_path=(("*/Lights/*", "light"),))
    assert (f.profile, f.kind, f.exptime, f.binning) == ("ccdops", "light", 10.0, 1)
    assert_start(f, "2013-01-28T03:08:12.000")


def test_ccdsoft_padded_time_obs_and_colon_site():
    f = facts_of("CCDSoft_SBIG_light_1.txt")
    assert (f.kind, f.binning, f.filter, f.exptime) == ("light", 3, "R", 300.0)
    assert_start(f, "2020-04-18T00:56:58.604")
    assert f.site_lat == pytest.approx(53 + 14 / 60 + 24.9 / 3600)
    assert f.site_lon == pytest.approx(-(6 + 32 / 60 + 11.02 / 3600))


def test_pixinsight_resaved_indi():
    f = facts_of("KStarsINDI_light_2_PixInsight_resaved_PARTIAL.txt")
    assert (f.profile, f.kind, f.kind_source, f.binning, f.filter) == ("pixinsight", "light", "IMAGETYP", 4, "UV-IR")
    assert_start(f, "2021-10-24T17:11:55.260")
    assert f.top_down and f.pixel_scale == pytest.approx(6.895004427)


def test_pixinsight_quoted_numbers_master_light():
    f = facts_of("PixInsight_masterlight_1.txt")
    assert (f.kind, f.exptime, f.binning, f.stacked) == ("light", 120.0, 1, True)
    assert "a stack, not a raw frame" in reasons(f)


def test_lco_raw_obstype_ccdsum():
    f = facts_of("LCO_raw_light_1.txt")
    assert (f.profile, f.kind, f.kind_source, f.binning, f.filter) == ("lco", "light", "OBSTYPE", 2, "w")
    assert f.exptime == 94.975 and f.saturation == 40000.0 and f.gain is None  # GAIN = 0.0
    assert_start(f, "2021-10-08T01:55:17.144")
    assert "MJD-OBS differ by 4.4 s" in f.time_note
    assert (f.site_lat, f.site_lon) == (30.679833, -104.015173)
    ext = facts_of("LCO_raw_light_1_ext1_SCI.txt")
    assert ext.gain == 6.42 and ext.binning == 2


@pytest.mark.parametrize("imagetyp, kind", [("object", "light"), ("zero", "bias"), ("flat", "flat")])
def test_iraf_style_object_zero_flat_with_ut(imagetyp, kind):
    header = header_from_cards("SIMPLE  =                    T", "NAXIS   =                    2",
                               "NAXIS1  =                 2048", "NAXIS2  =                 2048",
                               f"IMAGETYP= '{imagetyp}'", "DATE-OBS= '2017-12-20'",
                               "UT      = '08:36:12.5'", "EXPTIME =                 30.0",
                               "FILTERS = 'V'", "ORIGIN  = 'NOAO-IRAF FITS Image Kernel'")
    f = read_header_facts(header, "n1/a.fits")
    assert (f.profile, f.kind, f.filter, f.exptime) == ("iraf", kind, "V", 30.0)
    assert f.time_source == "DATE-OBS+UT"
    assert_start(f, "2017-12-20T08:36:12.500")


def test_robotic_telescope_local_time_no_frame_type():
    f = facts_of("issue22_robotic_localtime.txt")
    assert "no frame type" in reasons(f) and not f.ok
    f = facts_of("issue22_robotic_localtime.txt", default_kind="light")
    assert (f.kind, f.filter, f.exptime, f.time_offset) == ("light", "V", 60.0, "-07:00")
    assert_start(f, "2017-12-20T08:36:12.023")  # 01:36:12.023 at UTC-7
    assert f.ok and "missing DATE-OBS" not in reasons(f)


def test_offset_date_obs_disagreeing_with_ut_obs_uses_ut_obs():
    header = load_header("issue22_robotic_localtime.txt")
    header["UT-OBS"] = "09:36:12.023"  # the offset was an hour off (summer time left on)
    f = read_header_facts(header, "a.fits", HeaderRules(default_kind="light"))
    assert f.time_source == "UT-OBS"
    assert f.time_note.startswith("DATE-OBS had a -07:00 offset; used UT-OBS")
    assert_start(f, "2017-12-20T09:36:12.023")


def test_seestar_sub_gain_setting_and_microseconds():
    f = facts_of("Seestar_light_sub_2.txt", path="M 94_sub/Light_M 94_10.0s_IRCUT_20250326-212046.fit")
    assert (f.profile, f.kind, f.filter, f.exptime, f.gain) == ("seestar", "light", "IRCUT", 10.0, None)
    assert_start(f, "2025-03-27T01:20:32.955368")


def test_seestar_stack_is_said():
    f = facts_of("Seestar_light_stacked_1.txt")
    assert f.stacked and "TOTALEXP = 1870 s" in next(p.message for p in f.problems
                                                      if p.reason == "a stack, not a raw frame")


def test_dwarf3_light_from_path_date_obs_at_end():
    path = "DWARF_RAW_TELE_IC 434_EXP_60_GAIN_60/IC 434_60s60_Astro_20251018-045926401_16C.fits"
    f = facts_of("DWARF3_light_1.txt", path=path)
    assert (f.profile, f.kind, f.filter, f.exptime, f.temperature) == ("dwarf", "light", "Astro", 60.0, 16.0)
    assert_start(f, "2025-10-18T04:59:26.401", shift_s=-60.0)
    assert "end of the exposure" in f.time_note


def test_dwarf3_dark_failed_and_factory_masters():
    f = facts_of("DWARF3_dark_1.txt", path="DWARF_DARK/tele_exp_60_gain_60_bin_1/raw_60s_60_0002_20C.fits")
    assert (f.kind, f.filter) == ("dark", None)
    f = facts_of("DWARF3_light_2_failed.txt", path="x/failed_IC 434_60s60_Astro_20251018-051725998_15C.fits")
    assert f.kind == "skipped" and "rejected by the telescope" in reasons(f) and f.ok
    f = facts_of("DWARF3_masterdark_CALI_1.txt", profile="dwarf",
                 path="CALI_FRAME/dark/cam_0/dark_exp_60.000000_gain_60_bin_1_20C_stack_8.fits")
    assert (f.kind, f.exptime, f.exptime_source, f.binning) == ("dark", 60.0, "file name", 1)
    assert "missing DATE-OBS" in reasons(f)  # the factory master has no time at all


def test_dwarf2_exp_and_binning_string():
    f = facts_of("DWARFII_light_1.txt", path="DWARF_RAW/x.fits")
    assert (f.kind, f.exptime, f.exptime_source, f.binning, f.binning_source) == ("light", 15.0, "EXP", 2, "BINNING")
    assert f.ra is None  # RA = DEC = 0 is DWARF's "no target"
    assert_start(f, "2023-06-10T21:38:19.442", shift_s=-15.0)


def test_asiair_light_filter_none_and_master_bias():
    f = facts_of("ASIAIR_light_1.txt", path="Autorun/Light/M 31/Light_M 31_30.0s_Bin1_2600MC_None.fit")
    assert (f.profile, f.kind, f.filter, f.exptime) == ("asiair", "light", "C", 30.0)
    assert "no filter" in reasons(f)
    assert_start(f, "2025-08-25T05:52:13.488569")
    f = facts_of("ASIAIR_masterbias_1.txt")
    assert (f.kind, f.stacked) == ("bias", True)


def test_itelescope_centiseconds_and_photon_ranch_gain():
    f = facts_of("iTelescope_MaxImDL_light_2.txt")
    assert_start(f, "2021-12-29T15:42:46.53")
    f = facts_of("PhotonRanch_MaxImDL_light_1.txt")
    assert (f.gain, f.gain_source) == (1.18, "GAIN")  # fractional, no OFFSET: e-/ADU


PROFILES = {"TheSkyX_dark_1.txt": "thesky", "MaxImDL_light_4.txt": "maxim", "NINA_bias_1.txt": "nina",
            "SGP_light_1.txt": "sgp", "SharpCap_light_1.txt": "sharpcap", "ACP_MaxImDL_light_1.txt": "acp",
            "KStarsINDI_light_1.txt": "indi", "SBIG_CCDOps_light_1.txt": "ccdops",
            "LCO_raw_light_1.txt": "lco", "Seestar_light_sub_5.txt": "seestar",
            "DWARF3_light_1.txt": "dwarf", "ASIAIR_light_2_live.txt": "asiair",
            "KStarsINDI_light_2_PixInsight_resaved_PARTIAL.txt": "pixinsight", "APT_light_1.txt": "apt"}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_detected(name):
    assert detect_profile(load_header(name))[0] == PROFILES[name]


def test_fast_header_reads_every_fixture_as_astropy_does():
    import dataclasses
    from pathlib import Path

    from header_fixtures import HEADERS

    for path in sorted(HEADERS.glob("*.txt")):
        cards = [line.ljust(80)[:80] for line in header_text(path.name).splitlines()]
        a = read_header_facts(load_header(path.name), path.name)
        b = read_header_facts(FastHeader(cards), path.name)
        assert dataclasses.asdict(a) == dataclasses.asdict(b), Path(path).name


# ------------------------------------------------------------------------- bad and odd headers

BASE = ("SIMPLE  =                    T", "NAXIS   =                    2",
        "NAXIS1  =                  100", "NAXIS2  =                   80")


def facts(*cards, path="n/a.fits", **rules):
    return read_header_facts(header_from_cards(*BASE, *cards), path, HeaderRules(**rules))


LIGHT = ("IMAGETYP= 'Light Frame'", "EXPTIME =                 10.0", "FILTER  = 'V'")


@pytest.mark.parametrize("value, kind", [
    ("Light Frame", "light"), ("Light", "light"), ("LIGHT", "light"), ("object", "light"),
    ("science", "light"), ("EXPOSE", "light"), ("Light Frame (Object)", "light"),
    ("Bias Frame", "bias"), ("bias", "bias"), ("zero", "bias"), ("Offset", "bias"),
    ("Dark Frame", "dark"), ("dark", "dark"), ("Dark Current", "dark"),
    ("Flat Field", "flat"), ("Flat Frame", "flat"), ("flat", "flat"), ("FLAT", "flat"),
    ("domeflat", "flat"), ("skyflat", "flat"), ("twilight flat", "flat"), ("LAMPFLAT", "flat"),
])
@pytest.mark.parametrize("key", ["IMAGETYP", "FRAME", "OBSTYPE", "FRAMETYP", "IMAGETYPE"])
def test_frame_type_synonyms(key, value, kind):
    card = f"{key:8s}= '{value}'" if len(key) <= 8 else f"HIERARCH {key} = '{value}'"
    f = facts(card, "DATE-OBS= '2024-01-01T00:00:00'", "EXPTIME =  1.0")
    assert (f.kind, f.kind_source) == (kind, key)


def test_frame_type_keyword_order_and_darkflat():
    f = facts("FRAME   = 'Flat'", "IMAGETYP= 'Light Frame'", *LIGHT[1:], "DATE-OBS= '2024-01-01T00:00:00'")
    assert (f.kind, f.kind_source) == ("light", "IMAGETYP")  # IMAGETYP is read first
    f = facts("IMAGETYP= 'DARKFLAT'", "EXPTIME = 2.0", "DATE-OBS= '2024-01-01T00:00:00'")
    assert (f.kind, f.dark_for_flats) == ("dark", True)


@pytest.mark.parametrize("value", ["Temp", "focus", "TEST"])
def test_unknown_frame_type_is_skipped_with_its_value(value):
    f = facts(f"IMAGETYP= '{value}'")
    assert f.kind == "skipped" and f.kind_value == value and f.ok
    assert f"frame type '{value}' skipped" in reasons(f)


def test_kind_by_path_overrides_the_header_first_match_wins():
    rules = {"kind_by_path": (("*/Bias/*", "bias"), ("*", "flat"))}
    assert facts(*LIGHT, path="n1/Bias/b.fits", **rules).kind == "bias"
    assert facts(*LIGHT, path="Bias/b.fits", **rules).kind == "bias"  # top of incoming
    assert facts(*LIGHT, path="n1/x.fits", **rules).kind == "flat"


def test_no_frame_type_fix_names_a_path_pattern_when_the_path_says():
    f = facts("EXPTIME = 1.0", "DATE-OBS= '2024-01-01T00:00:00'", path="n1/Darks/d1.fits")
    problem = next(p for p in f.problems if p.reason == "no frame type")
    assert problem.fix == '[headers.kind_by_path] "*Darks*" = "dark"'
    assert "[headers] default_kind" in problem.message


@pytest.mark.parametrize("value, utc", [
    ("2024-03-02T03:04:05.678", "2024-03-02T03:04:05.678"),
    ("2024-03-02T03:04:05.678Z", "2024-03-02T03:04:05.678"),
    ("2024-03-02T03:04:05.678+02:00", "2024-03-02T01:04:05.678"),
    ("2017-12-20T01:36:12.023-0700", "2017-12-20T08:36:12.023"),
    ("2024-03-02T23:30:00+05", "2024-03-02T18:30:00"),
    ("2024-03-02T20:00:00.5-05:30", "2024-03-03T01:30:00.5"),
    ("2024-03-02T03:04:05.1234567", "2024-03-02T03:04:05.1234567"),
])
def test_iso_date_obs_forms(value, utc):
    f = facts(*LIGHT, f"DATE-OBS= '{value}'")
    assert_start(f, utc)


@pytest.mark.parametrize("key", ["TIME-OBS", "UT", "UTC", "UT-START", "TIME-BEG"])
def test_date_only_date_obs_with_clock_keyword(key):
    f = facts(*LIGHT, "DATE-OBS= '2024-03-02'", f"{key:8s}= '21:05:07.25'")
    assert f.time_source == f"DATE-OBS+{key}"
    assert_start(f, "2024-03-02T21:05:07.25")


@pytest.mark.parametrize("card, utc", [
    ("UT-OBS  = '2024-03-02T21:05:07.250'", "2024-03-02T21:05:07.25"),
    ("UTC-OBS = '2024-03-02T21:05:07.250'", "2024-03-02T21:05:07.25"),
    ("DATE-BEG= '2024-03-02T21:05:07.250'", "2024-03-02T21:05:07.25"),
])
def test_other_start_keywords(card, utc):
    f = facts(*LIGHT, card)
    assert f.time_source == card[:8].strip()
    assert_start(f, utc)


@pytest.mark.parametrize("card", ["DATE-AVG= '2024-03-02T21:05:12.250'",
                                  "MJD-MID =   60371.8786140046", "MJD-AVG =   60371.8786140046"])
def test_mid_exposure_keywords(card):
    f = facts(*LIGHT, card)  # 10 s exposure: the start is 5 s before the mid-exposure
    mid = Time("2024-03-02T21:05:12.250") if "DATE" in card else Time(60371.8786140046, format="mjd")
    assert abs(f.jd_mid - mid.jd) < MS
    assert abs(f.jd_start - (mid - TimeDelta(5, format="sec")).jd) < MS


def test_mjd_and_jd_with_precision_warning():
    f = facts(*LIGHT, "MJD-OBS =           60371.879")
    assert abs(f.jd_start - Time(60371.879, format="mjd").jd) < MS
    assert "MJD-OBS precision ±43 s" in reasons(f) and f.ok
    for key in ("JD", "JD-OBS"):
        f = facts(*LIGHT, f"{key:8s}=   2460372.37861400")
        assert f.time_source == key and abs(f.jd_start - 2460372.378614) < MS
        assert not any("precision" in r for r in reasons(f))


def test_disagreeing_time_keywords_are_said():
    f = facts(*LIGHT, "DATE-OBS= '2024-03-02T21:05:07.250'", "MJD-OBS =   60371.8800000000")
    assert f.time_source == "DATE-OBS"
    assert f.time_note.startswith("DATE-OBS and MJD-OBS differ by")


@pytest.mark.parametrize("value", ["yesterday", "2024-13-45T00:00:00", "02/03/2024 21:05"])
def test_unreadable_date_obs_is_named_never_missing(value):
    f = facts(*LIGHT, f"DATE-OBS= '{value}'")
    assert f"DATE-OBS '{value}' is not a date clinepipe reads" in reasons(f)
    assert "missing DATE-OBS" not in reasons(f) and not f.ok


def test_unreadable_date_obs_with_a_good_mjd_is_not_fatal():
    f = facts(*LIGHT, "DATE-OBS= 'garbage'", "MJD-OBS =   60371.8786140046")
    assert f.ok and f.time_source == "MJD-OBS"
    assert "DATE-OBS 'garbage' is not a date clinepipe reads" in reasons(f)


def test_date_only_without_clock_and_no_time_at_all():
    assert "DATE-OBS '2024-03-02' has no time of day" in reasons(facts(*LIGHT, "DATE-OBS= '2024-03-02'"))
    assert "missing DATE-OBS" in reasons(facts(*LIGHT))


@pytest.mark.parametrize("key", ["EXPTIME", "EXPOSURE", "EXP_TIME", "ITIME", "TELAPSE"])
def test_exposure_keywords(key):
    f = facts("IMAGETYP= 'Light'", f"{key:8s}=               12.5", "DATE-OBS= '2024-01-01T00:00:00'")
    assert (f.exptime, f.exptime_source) == (12.5, key)


def test_missing_and_negative_exposure():
    assert "missing EXPTIME" in reasons(facts("IMAGETYP= 'Light'", "DATE-OBS= '2024-01-01T00:00:00'"))
    assert "negative EXPTIME" in reasons(facts("IMAGETYP= 'Light'", "EXPTIME = -1.0"))
    f = facts("IMAGETYP= 'Bias'", "DATE-OBS= '2024-01-01T00:00:00'")
    assert f.exptime == 0.0 and f.ok  # a bias needs no exposure keyword


@pytest.mark.parametrize("cards, binning", [
    (("XBINNING=                    2", "YBINNING=                    2"), 2),
    (("BINX    =                    3", "BINY    =                    3"), 3),
    (("CCDSUM  = '2 2     '",), 2), (("XBIN    =                    4", "YBIN    =  4"), 4), ((), 1)])
def test_binning_keywords(cards, binning):
    assert facts(*LIGHT, *cards).binning == binning


def test_unequal_binning_is_named():
    f = facts(*LIGHT, "XBINNING=                    2", "YBINNING=                    1")
    assert "unknown binning 2x1" in reasons(f) and not f.ok


@pytest.mark.parametrize("cards, expected", [
    (("FILTER  = 'V'",), "V"), (("FILTNAME= 'B'",), "B"),
    (("FILTER1 = 'Clear'", "FILTER2 = 'R'"), "R"), (("FILTER1 = 'I'", "FILTER2 = 'open'"), "I"),
    (("FILTERS = 'Ha'",), "Ha"), ((), "C")])
def test_filter_keywords(cards, expected):
    f = facts("IMAGETYP= 'Light'", "EXPTIME = 1.0", "DATE-OBS= '2024-01-01T00:00:00'", *cards)
    assert f.filter == expected


def test_filter_default_and_aliases():
    f = facts("IMAGETYP= 'Light'", "EXPTIME = 1.0", "DATE-OBS= '2024-01-01T00:00:00'", default_filter="CV")
    assert f.filter == "CV" and "no filter" in reasons(f)
    f = facts("IMAGETYP= 'Light'", "FILTER  = 'Clear'", filter_aliases={"clear": "CV", "Lum": "L"})
    assert f.filter == "CV"


@pytest.mark.parametrize("key", ["CCD-TEMP", "CCD_TEMP", "CCDTEMP", "CCDATEMP", "TEMPERAT", "DET-TEMP", "CAMTEMP"])
def test_temperature_keywords_and_kelvin(key):
    assert facts(*LIGHT, f"{key:8s}=              -15.5").temperature == -15.5
    assert facts(*LIGHT, f"{key:8s}=              253.15").temperature == pytest.approx(-20.0)


@pytest.mark.parametrize("cards, gain", [
    (("EGAIN   =                 1.27",), 1.27),
    (("GAIN    =                  120", "OFFSET  =                   30"), None),
    (("GAIN    =                  1.5 / [e-/ADU] gain",), 1.5),
    (("GAIN    =                  2.2",), 2.2), (("GAIN    =                  200",), None)])
def test_gain_only_in_electrons_per_adu(cards, gain):
    assert facts(*LIGHT, *cards).gain == gain


def test_gain_setting_of_nina_is_not_a_gain():
    f = facts(*LIGHT, "GAIN    =                  1.5", "SWCREATE= 'N.I.N.A. 3.0'")
    assert f.profile == "nina" and f.gain is None


@pytest.mark.parametrize("cards, value", [
    (("SATURATE=              60000.0",), 60000.0), (("DATAMAX =                65535",), 65535.0),
    (("MAXLIN  =                40000",), 40000.0),
    (("DATAMIN =                  812", "DATAMAX =                52000"), None)])
def test_saturation_keywords(cards, value):
    assert facts(*LIGHT, *cards).saturation == value


@pytest.mark.parametrize("cards", [
    ("RA      =              31.0428", "DEC     =              46.6879"),
    ("RA      = '02 04 10.272'", "DEC     = '+46 41 16.44'"),
    ("OBJCTRA = '02 04 10.272'", "OBJCTDEC= '+46 41 16.44'"),
    ("RA_OBJ  =              31.0428", "DEC_OBJ =              46.6879"),
    ("CTYPE1  = 'RA---TAN'", "CRVAL1  =              31.0428", "CRVAL2  =              46.6879")])
def test_pointing_keywords(cards):
    f = facts(*LIGHT, *cards)
    assert f.ra == pytest.approx(31.0428, abs=1e-6) and f.dec == pytest.approx(46.6879, abs=1e-6)


@pytest.mark.parametrize("cards, scale", [
    (("PIXSCALE=                 1.25",), 1.25), (("SECPIX  =                 1.25",), 1.25),
    (("SCALE   =                 1.25",), 1.25), (("IM_SCALE=                 1.25",), 1.25),
    (("PLTSCALE=                 1.25",), 1.25), (("CDELT1  =  -3.4722222222222E-4",), 1.25),
    (("CD1_1   =  -3.4722222222222E-4", "CD2_2   =   3.4722222222222E-4"), 1.25),
    (("FOCALLEN=                 1000", "XPIXSZ  =                  9.0"), 9.0e-3 / 1000 * 206264.80625)])
def test_pixel_scale_keywords(cards, scale):
    assert facts(*LIGHT, *cards).pixel_scale == pytest.approx(scale, rel=1e-9)


def test_sites_every_form():
    lat, lon = 36.076, -79.8089
    for cards in (("SITELAT = '36 04 33.6'", "SITELONG= '-79 48 32.04'"),
                  ("LAT-OBS =               36.076", "LONG-OBS=             -79.8089"),
                  ("OBSGEO-B=               36.076", "OBSGEO-L=             -79.8089"),
                  ("LATITUDE=               36.076", "LONGITUD=             -79.8089")):
        f = facts(*LIGHT, *cards)
        assert (f.site_lat, f.site_lon) == (pytest.approx(lat, abs=1e-6), pytest.approx(lon, abs=1e-6))
    x, y, z = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, 250 * u.m).to_value(u.m)
    f = facts(*LIGHT, f"OBSGEO-X= {x:20.6f}", f"OBSGEO-Y= {y:20.6f}", f"OBSGEO-Z= {z:20.6f}")
    assert (f.site_lat, f.site_lon, f.site_elevation) == (
        pytest.approx(lat, abs=1e-7), pytest.approx(lon, abs=1e-7), pytest.approx(250.0, abs=1e-3))


def test_site_warning_distance_and_sign():
    f = facts(*LIGHT, "SITELAT =               36.076", "SITELONG=              79.8089")
    assert f.site_warning(36.076, -79.8089).reason == "site longitude sign"
    near = facts(*LIGHT, "SITELAT =               36.5", "SITELONG=             -79.5")
    assert near.site_warning(36.076, -79.8089) is None
    far = facts(*LIGHT, "SITELAT =               37.5", "SITELONG=             -79.8")
    assert far.site_warning(36.076, -79.8089).reason == "site differs from [site]"
    redacted = facts(*LIGHT, "SITELAT =              48.XXXX", "SITELONG=              11.XXXX")
    assert redacted.site_lat is None and "SITELAT '48.XXXX' is not an angle" in reasons(redacted)


def test_row_order_subframe_origin_object():
    f = facts(*LIGHT, "ROWORDER= 'TOP-DOWN'", "XORGSUBF=                  100", "YORGSUBF=  50",
              "OBJECT  = 'XX Cyg  '", "DATE-OBS= '2024-01-01T00:00:00'")
    assert (f.top_down, f.xorg, f.yorg, f.object, f.shape) == (True, 100, 50, "XX Cyg", (80, 100))
    assert "bad subframe origin" in reasons(facts(*LIGHT, "XORGSUBF=                 -3"))


def test_colour_cube_is_not_a_frame():
    f = facts_of("Seestar_light_sub_1.txt")
    assert "not a 2-D image (NAXIS = 3)" in reasons(f) and not f.ok


def test_rules_are_validated():
    with pytest.raises(ConfigError, match="profile"):
        HeaderRules(profile="photoshop")
    with pytest.raises(ConfigError, match="default_kind"):
        HeaderRules(default_kind="science")
    with pytest.raises(ConfigError, match="kind_by_path"):
        HeaderRules(kind_by_path=(("*", "lights"),))
    assert facts(*LIGHT, profile="lco").profile_source == "[headers] profile"


# ------------------------------------------------------------------------- positions and pixels

@pytest.mark.parametrize("text", ["31.0428 46.6879", "02 04 10.272 +46 41 16.44",
                                  "02:04:10.272 +46:41:16.44", "02h04m10.272s +46d41m16.44s"])
def test_parse_position_forms(text):
    ra, dec = parse_position(text)
    assert ra == pytest.approx(31.0428, abs=1e-9) and dec == pytest.approx(46.6879, abs=1e-9)


def test_parse_position_south_and_errors():
    assert parse_position("12 00 00 -00 30 00") == (180.0, -0.5)
    for bad in ("31.0", "400 10", "02 04 10 +95 00 00", "abc def"):
        with pytest.raises(ValueError):
            parse_position(bad)
    assert parse_angle("-006:32:11.02") == pytest.approx(-(6 + 32 / 60 + 11.02 / 3600))


def test_adc_saturation_of_12_and_14_bit_cameras():
    rng = np.random.default_rng(3)
    frame = rng.integers(100, 3000, size=(50, 60)).astype(np.uint16)
    assert adc_saturation(frame) is None
    frame[10, 10:14] = 4095  # a saturated star on a 12-bit camera
    assert adc_saturation(frame) == (12, 4095.0)
    assert adc_saturation(frame.astype(np.float32) * 3 + 3) is None  # 16383 is not reached
    frame[10, 10:14] = 16383
    assert adc_saturation(frame) == (14, 16383.0)
    frame[0, 0] = 65535
    assert adc_saturation(frame) is None
