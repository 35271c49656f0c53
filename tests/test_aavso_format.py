"""AAVSO Extended (v1.2) and Exoplanet (v0.62) files: the validators accept the formats' own
published examples, refuse every rule's violation with the rule named, refuse what EXOTIC wrote
wrongly (a misaligned column, BJD in an Extended file, an ``N/A`` observer code), and whatever
the writers produce passes them and reads back to the values written.

Golden files: tests/data/aavso/ (sources in tests/data/aavso/SOURCES.md): examples 1-3 of
https://www.aavso.org/aavso-extended-file-format, its earlier example with ``#DELIM=comma``, a
Phoranso report with HJD dates and Transform-Applier NOTES, and an EXOTIC-written exoplanet
report (github.com/rzellem/EXOTIC).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest

from clinepipe.errors import BadInput
from clinepipe.products import aavso_extended
from clinepipe.products.aavso_format import (
    ExoplanetHeader,
    ExoplanetRow,
    ExtendedHeader,
    ExtendedRow,
    aavso_filter_code,
    detect_type,
    format_exoplanet,
    format_extended,
    run_validate,
    validate_exoplanet,
    validate_extended,
    validate_file,
)

DATA = Path(__file__).parent / "data" / "aavso"
EXTENDED_GOLDEN = sorted(DATA.glob("extended_*.txt"))
EXOPLANET_GOLDEN = sorted(DATA.glob("exoplanet_*.txt"))
EXAMPLE2 = (DATA / "extended_example2.txt").read_text()
EXOTIC = (DATA / "exoplanet_exotic_hatp23b.txt").read_text()
ROW2 = "SS CYG,2450702.1234,11.235,0.003,B,NO,STD,105,10.593,110,11.090,1.561,1,X16382L,na"


def rules(problems) -> set[str]:
    return {p.rule for p in problems}


def with_fields(changes: dict[int, str]) -> str:
    """Example 2 with fields of its first observation replaced ({index: new value})."""
    fields = ROW2.split(",")
    for index, value in changes.items():
        fields[index] = value
    text = EXAMPLE2.replace(ROW2, ",".join(fields))
    assert text != EXAMPLE2 or all(ROW2.split(",")[i] == v for i, v in changes.items())
    return text


# ----------------------------------------------------------------------------- golden files

@pytest.mark.parametrize("path", EXTENDED_GOLDEN + EXOPLANET_GOLDEN, ids=lambda p: p.name)
def test_published_examples_validate_cleanly(path):
    assert validate_file(path) == []
    assert detect_type(path.read_text()) in ("EXTENDED", "EXOPLANET")


def test_golden_set_is_complete():
    assert len(EXTENDED_GOLDEN) == 5 and len(EXOPLANET_GOLDEN) == 1


# ----------------------------------------------------------------------------- Extended rules

EXTENDED_VIOLATIONS = {
    "type": ("#TYPE=EXTENDED", "#TYPE=EXTENDEDX", "#TYPE"),
    "obscode N/A": ("#OBSCODE=TST01", "#OBSCODE=N/A", "#OBSCODE"),
    "obscode empty": ("#OBSCODE=TST01", "#OBSCODE=", "#OBSCODE"),
    "obscode missing": ("#OBSCODE=TST01\n", "", "#OBSCODE"),
    "software too long": ("#SOFTWARE=GCX 2.0", "#SOFTWARE=" + "x" * 256, "#SOFTWARE"),
    "software empty": ("#SOFTWARE=GCX 2.0", "#SOFTWARE=", "#SOFTWARE"),
    "delim pipe": ("#DELIM=,", "#DELIM=|", "#DELIM"),
    "delim hash": ("#DELIM=,", "#DELIM=#", "#DELIM"),
    "delim space": ("#DELIM=,", "#DELIM= ", "#DELIM"),
    "delim literal tab": ("#DELIM=,", "#DELIM=\t", "#DELIM"),
    "delim missing": ("#DELIM=,\n", "", "#DELIM"),
    "date BJD": ("#DATE=JD", "#DATE=BJD", "#DATE"),
    "date BJD_TDB": ("#DATE=JD", "#DATE=BJD_TDB", "#DATE"),
    "date missing": ("#DATE=JD\n", "", "#DATE"),
    "obstype CMOS": ("#OBSTYPE=CCD", "#OBSTYPE=CMOS", "#OBSTYPE"),
    "obstype other": ("#OBSTYPE=CCD", "#OBSTYPE=VISUAL", "#OBSTYPE"),
    "blank line": ("#OBSTYPE=CCD\n", "#OBSTYPE=CCD\n\n", "blank-line"),
    "non-ASCII": ("SS CYG,2450702.1234", "SS CYG\u00e9,2450702.1234", "ASCII"),
}


@pytest.mark.parametrize("old,new,rule", list(EXTENDED_VIOLATIONS.values()),
                         ids=list(EXTENDED_VIOLATIONS))
def test_extended_parameter_violation_is_refused(old, new, rule):
    assert old in EXAMPLE2
    problems = validate_extended(EXAMPLE2.replace(old, new, 1))
    assert rule in rules(problems), problems


def test_trailing_blank_line_is_refused():
    problems = validate_extended(EXAMPLE2 + "\n")
    assert [(p.line, p.rule) for p in problems] == [(10, "blank-line")]


FIELD_VIOLATIONS = [  # (field index, bad value, rule)
    (0, "X" * 31, "STARID"),
    (0, "na", "STARID"),
    (1, "2450702.123456789", "DATE"),   # 17 characters
    (1, "50702.1234", "DATE"),          # reduced JD
    (1, "2450702", "DATE"),             # no decimals
    (2, "11", "MAGNITUDE"),             # no decimal point
    (2, "11.23456789", "MAGNITUDE"),    # 11 characters
    (2, "na", "MAGNITUDE"),
    (3, "1.003", "MAGERR"),             # not below 1 mag
    (3, "0.00345", "MAGERR"),           # 7 characters
    (3, "-0.01", "MAGERR"),
    (4, "Clear", "FILTER"),
    (4, "RJ", "FILTER"),
    (5, "Y", "TRANS"),
    (6, "ABS", "MTYPE"),
    (7, "C" * 21, "CNAME"),
    (8, "10.593456", "CMAG"),           # 9 characters
    (8, "abc", "CMAG"),
    (9, "K" * 21, "KNAME"),
    (10, "bright", "KMAG"),
    (11, "1.5610000", "AIRMASS"),       # 9 characters
    (11, "0.5", "AIRMASS"),
    (12, "123456", "GROUP"),
    (12, "1.5", "GROUP"),
    (13, "X" * 21, "CHART"),
    (14, "", "NOTES"),                  # missing values are na, never empty
    (9, "", "KNAME"),
]


@pytest.mark.parametrize("index,value,rule", FIELD_VIOLATIONS,
                         ids=[f"{r}={v[:12]!r}" for _, v, r in FIELD_VIOLATIONS])
def test_extended_field_violation_is_refused(index, value, rule):
    problems = validate_extended(with_fields({index: value}))
    assert rule in rules(problems), problems
    assert all(p.line == 8 for p in problems)  # the first observation, nothing else


def test_dif_needs_a_comparison_star():
    problems = validate_extended(with_fields({6: "DIF", 7: "na"}))
    assert [(p.line, p.rule) for p in problems] == [(8, "MTYPE")]
    assert validate_extended(with_fields({6: "DIF"})) == []  # CNAME 105 given


def test_field_widths_at_their_limits_pass():
    text = with_fields({0: "S" * 30, 2: "-12.3456", 3: "0.0034", 7: "C" * 20, 9: "K" * 20,
                        10: "-12.3456", 11: "12.3456", 12: "99999", 13: "X" * 20})
    assert text != EXAMPLE2 and validate_extended(text) == []


def test_header_may_restate_obscode_and_date_further_down():
    text = EXAMPLE2.replace(ROW2, f"{ROW2}\n#OBSCODE=TST02\n#DATE=HJD")
    assert validate_extended(text) == []
    assert "#OBSCODE" in rules(validate_extended(EXAMPLE2.replace(ROW2, f"{ROW2}\n#OBSCODE=NA")))


def test_file_without_observations():
    problems = validate_extended("#TYPE=EXTENDED\n#OBSCODE=TST01\n")
    assert {"no-data", "#SOFTWARE", "#DELIM", "#DATE"} <= rules(problems)


# ----------------------------------------------------------------------------- EXOTIC's failures

def test_exotic_misaligned_column_after_trimming_is_refused():
    trimmed = ROW2.replace(",0.003,", ",", 1)   # MAGERR trimmed away: 14 fields
    problems = validate_extended(EXAMPLE2.replace(ROW2, trimmed))
    assert [(p.line, p.rule) for p in problems] == [(8, "field-count")]
    shifted = ROW2.replace("0.003,B", "B,0.003", 1)  # same count, values one column off
    assert {"MAGERR", "FILTER"} <= rules(validate_extended(EXAMPLE2.replace(ROW2, shifted)))
    one_detrend_column = "\n".join(",".join(line.split(",")[:4]) if line[0].isdigit() else line
                                   for line in EXOTIC.splitlines())
    problems = validate_exoplanet(one_detrend_column)
    assert rules(problems) == {"field-count"} and len(problems) == 16


def test_exotic_bjd_in_extended_file_is_refused():
    problems = validate_extended(EXAMPLE2.replace("#DATE=JD", "#DATE=BJD_TDB"))
    assert [(p.line, p.rule) for p in problems] == [(5, "#DATE")]
    assert "Exoplanet" in problems[0].message


@pytest.mark.parametrize("text,validate", [(EXAMPLE2.replace("TST01", "N/A"), validate_extended),
                                           (EXOTIC.replace("=TESS", "=N/A"), validate_exoplanet)])
def test_exotic_na_obscode_is_refused(text, validate):
    problems = validate(text)
    assert [p.rule for p in problems] == ["#OBSCODE"]
    assert "placeholder" in problems[0].message


# ----------------------------------------------------------------------------- Exoplanet rules

EXOPLANET_VIOLATIONS = {
    "type": ("#TYPE=EXOPLANET", "#TYPE=EXTENDED", "#TYPE"),
    "case-sensitive key": ("#TYPE=EXOPLANET", "#Type=EXOPLANET", "#TYPE"),
    "case-sensitive value": ("#MEASUREMENT_TYPE=Rnflux", "#MEASUREMENT_TYPE=RNFLUX",
                             "#MEASUREMENT_TYPE"),
    "obscode empty": ("#OBSCODE=TESS", "#OBSCODE=", "#OBSCODE"),
    "secondary obscodes": ("#SECONDARY_OBSCODES=", "#SECONDARY_OBSCODES=ABC,N/A",
                           "#SECONDARY_OBSCODES"),
    "secondary missing": ("#SECONDARY_OBSCODES=\n", "", "#SECONDARY_OBSCODES"),
    "software": ("#SOFTWARE=EXOTIC v3.0.1.dev18+gdd90272.d20230707", "#SOFTWARE=" + "s" * 256,
                 "#SOFTWARE"),
    "delim": ("#DELIM=,", "#DELIM=|", "#DELIM"),
    "date type": ("#DATE_TYPE=BJD_TDB", "#DATE_TYPE=BJD", "#DATE_TYPE"),
    "date type missing": ("#DATE_TYPE=BJD_TDB\n", "", "#DATE_TYPE"),
    "obstype": ("#OBSTYPE=CCD", "#OBSTYPE=PEP", "#OBSTYPE"),
    "star name": ("#STAR_NAME=HAT-P-23", "#STAR_NAME=", "#STAR_NAME"),
    "planet name": ("#EXOPLANET_NAME=hatp23b\n", "", "#EXOPLANET_NAME"),
    "binning": ("#BINNING=1x1", "#BINNING=5x5", "#BINNING"),
    "binning word": ("#BINNING=1x1", "#BINNING=none", "#BINNING"),
    "exposure": ("#EXPOSURE_TIME=120.0", "#EXPOSURE_TIME=601", "#EXPOSURE_TIME"),
    "exposure zero": ("#EXPOSURE_TIME=120.0", "#EXPOSURE_TIME=0", "#EXPOSURE_TIME"),
    "filter": ("#FILTER=I\n", "#FILTER=Clear\n", "#FILTER"),
    "detrend five": ("#DETREND_PARAMETERS=AIRMASS, AIRMASS CORRECTION FUNCTION",
                     "#DETREND_PARAMETERS=A,B,C,D,E", "#DETREND_PARAMETERS"),
    "measurement type": ("#MEASUREMENT_TYPE=Rnflux", "#MEASUREMENT_TYPE=Rflux",
                         "#MEASUREMENT_TYPE"),
    "priors missing": ("#PRIORS=Period", "#PRIORSX=Period", "#PRIORS"),
    "results empty": ("#RESULTS=Tc=2459770.51948 +/- 0.0008,Rp/R*=0.114 +/- 0.0023,Am1=0,Am2=0",
                      "#RESULTS=", "#RESULTS"),
    "column line": ("#DATE,DIFF,ERR,DETREND_1,DETREND_2", "#DATE,DIFF,ERR,DETREND_1", "columns"),
    "detrend columns vs names": ("#DETREND_PARAMETERS=AIRMASS, AIRMASS CORRECTION FUNCTION",
                                 "#DETREND_PARAMETERS=AIRMASS", "field-count"),
    "date": ("2459770.33689241,0.998", "59770.33689241,0.998", "DATE"),
    "diff": ("2459770.33689241,0.9981387853622437", "2459770.33689241,nan", "DIFF"),
    "diff not positive": ("2459770.33689241,0.9981387853622437", "2459770.33689241,-0.99",
                          "DIFF"),
    "err": ("0.003295999951660633", "-0.0033", "ERR"),
    "detrend value": ("0.003295999951660633,0.0,1.0", "0.003295999951660633,x,1.0", "DETREND_1"),
    "blank line": ("#OBSTYPE=CCD\n", "#OBSTYPE=CCD\n \n", "blank-line"),
}


@pytest.mark.parametrize("old,new,rule", list(EXOPLANET_VIOLATIONS.values()),
                         ids=list(EXOPLANET_VIOLATIONS))
def test_exoplanet_violation_is_refused(old, new, rule):
    assert old in EXOTIC
    problems = validate_exoplanet(EXOTIC.replace(old, new, 1))
    assert rule in rules(problems), problems


def test_parameters_after_the_measurements_are_refused():
    problems = validate_exoplanet(EXOTIC + "#FILTER=V\n")
    assert [p.rule for p in problems] == ["#FILTER"]


# ----------------------------------------------------------------------------- files and CLI

def test_unreadable_and_foreign_files_give_one_problem(tmp_path):
    fits = tmp_path / "frame.fits"
    fits.write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    visual = tmp_path / "visual.txt"
    visual.write_text("#TYPE=VISUAL\n#OBSCODE=TST01\n")
    csv = tmp_path / "lc.csv"
    csv.write_text("jd,mag\n2460000.5,11.2\n")
    cases = {tmp_path / "missing.txt": "unreadable", tmp_path: "unreadable", fits: "type",
             visual: "type", csv: "type"}
    for path, rule in cases.items():
        problems = validate_file(path)
        assert [p.rule for p in problems] == [rule], path


def test_run_validate_prints_one_line_per_problem(tmp_path):
    good = DATA / "extended_example2.txt"
    bad = tmp_path / "bad.txt"
    bad.write_text(EXAMPLE2.replace("#DATE=JD", "#DATE=BJD").replace("0.003,V", "1.2,V"))
    out = io.StringIO()
    assert run_validate([good], out=out) == 0
    assert out.getvalue() == f"{good}: valid AAVSO Extended file (2 data lines)\n"
    out = io.StringIO()
    assert run_validate([good, bad], out=out) == 1
    lines = out.getvalue().splitlines()
    assert lines[1:] == [(f"{bad}:5: #DATE: 'BJD' is not JD, HJD or EXCEL (BJD belongs in an "
                          f"AAVSO Exoplanet report, not here)"),
                         f"{bad}:9: MAGERR: 1.2 is not between 0 and 1 mag"]


# ----------------------------------------------------------------------------- writers

def _read_back(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.splitlines() if not line.startswith("#")]


ROWS = [ExtendedRow("SS Cyg", 2460000.512345678, 11.23449, 0.01234, "Clear", cname="ENSEMBLE",
                    kname="000-BBP-713", kmag=12.3456, airmass=1.23456, group=1, chart="X16382L",
                    vmagins=-7.12345, cmagins=-8.0, kmagins=-6.5, crefmag=10.1, krefmag=12.345),
        ExtendedRow("SS Cyg", 2460000.52, 11.2, None, "Rc", trans=True, mtype="DIF", cname="105",
                    cmag=10.593, group=None, notes="seeing 3\", clouds, later"),
        ExtendedRow("SS Cyg", 2460000.53, 14.9, 0.2, "sloan r", fainter_than=True, cname="105")]


def test_extended_writer_round_trip():
    text = format_extended(ExtendedHeader("TST01", "clinepipe 0.1.0"), ROWS)
    assert validate_extended(text) == []
    first, second, third = _read_back(text)
    assert abs(float(first[1]) - ROWS[0].date) <= 5e-6          # JD to 5 decimals (0.4 s)
    assert abs(float(first[2]) - ROWS[0].magnitude) <= 5e-4     # mag to 3 decimals
    assert abs(float(first[3]) - ROWS[0].magerr) <= 5e-4
    assert first[4:8] == ["CV", "NO", "STD", "ENSEMBLE"]        # clear -> CV
    assert first[8] == "na" and first[10] == "12.346" and first[11] == "1.235"
    assert first[14] == "VMAGINS=-7.123|CMAGINS=-8.000|KMAGINS=-6.500|CREFMAG=10.100|KREFMAG=12.345"
    assert second[3] == "na" and second[4:9] == ["R", "YES", "DIF", "105", "10.593"]
    assert second[9:14] == ["na", "na", "na", "na", "na"]       # na for every missing value
    assert second[14] == 'seeing 3" clouds later'                # the delimiter never splits it
    assert third[2] == "<14.900" and third[4] == "SR"


def test_extended_writer_with_tab_and_hjd():
    text = format_extended(ExtendedHeader("TST01", "clinepipe", date_type="HJD",
                                          obstype="CMOS", delim="tab"), ROWS[:1])
    assert "#DELIM=tab\n#DATE=HJD\n#OBSTYPE=CCD\n" in text
    assert validate_extended(text) == [] and len(text.splitlines()[-1].split("\t")) == 15


@pytest.mark.parametrize("obscode", ["", "   ", None, "N/A", "na"])
def test_no_obscode_no_file(obscode):
    with pytest.raises(BadInput, match=r"no AAVSO observer code: .*\[aavso\] obscode"):
        format_extended(ExtendedHeader(obscode, "clinepipe"), ROWS)
    with pytest.raises(BadInput, match="no AAVSO observer code"):
        format_exoplanet(ExoplanetHeader(obscode, "clinepipe", "WASP-12", "WASP-12 b", "V", 60),
                         [ExoplanetRow(2460000.5, 1.0, 0.002)])


UNWRITABLE = [  # (change to the first row, rule named in the message)
    ({"magerr": 1.2}, "MAGERR"), ({"magerr": 0.9996}, "MAGERR"),
    ({"starid": "S" * 31}, "STARID"), ({"starid": ""}, "STARID"),
    ({"mtype": "DIF", "cname": None}, "MTYPE"), ({"mtype": "ABS"}, "MTYPE"),
    ({"kname": "K" * 21}, "KNAME"), ({"cname": "a,b"}, "CNAME"), ({"chart": "C" * 21}, "CHART"),
    ({"magnitude": -1234.567}, "MAGNITUDE"), ({"magnitude": math.nan}, "MAGNITUDE"),
    ({"kmag": 12345.6}, "KMAG"), ({"airmass": 0.5}, "AIRMASS"), ({"group": 123456}, "GROUP"),
    ({"date": 60000.5}, "DATE"),
]


@pytest.mark.parametrize("change,rule", UNWRITABLE, ids=[r for _, r in UNWRITABLE])
def test_extended_writer_refuses_what_it_cannot_write(change, rule):
    row = ExtendedRow(**{**ROWS[0].__dict__, **change})
    with pytest.raises(ValueError, match=rule):
        format_extended(ExtendedHeader("TST01", "clinepipe"), [row])


def test_extended_writer_refuses_bad_headers():
    for header, rule in [(ExtendedHeader("TST01", "c", date_type="BJD"), "#DATE"),
                         (ExtendedHeader("TST01", "c", delim="|"), "#DELIM"),
                         (ExtendedHeader("TST01", "x" * 256), "#SOFTWARE"),
                         (ExtendedHeader("TST01", "c", obstype="VISUAL"), "#OBSTYPE")]:
        with pytest.raises(ValueError, match=rule):
            format_extended(header, ROWS)
    with pytest.raises(ValueError, match="no observations"):
        format_extended(ExtendedHeader("TST01", "c"), [])


def test_writer_bug_surfaces_as_an_error(monkeypatch):
    from clinepipe.products.aavso_rules import Problem

    monkeypatch.setattr(aavso_extended, "validate_extended",
                        lambda text: [Problem(8, "MAGERR", "injected")])
    with pytest.raises(ValueError, match="clinepipe bug.*MAGERR: injected"):
        format_extended(ExtendedHeader("TST01", "clinepipe"), ROWS)


@pytest.mark.parametrize("name,code", [("Clear", "CV"), ("V", "V"), ("rc", "R"), ("Ic", "I"),
                                       ("Sloan  r", "SR"), ("g'", "SG"), ("Red", "TR"),
                                       ("Luminance", "CV"), ("H-alpha", "HA"), ("STHBW", "STHBW")])
def test_filter_names_map_to_aavso_codes(name, code):
    assert aavso_filter_code(name) == code


@pytest.mark.parametrize("name", ["OIII", "RJ", "", None, "g"])
def test_filter_without_a_code_is_refused(name):
    with pytest.raises(BadInput, match="no AAVSO band code"):
        aavso_filter_code(name)


EXO_HEADER = ExoplanetHeader("TST01", "clinepipe 0.1.0", "HAT-P-23", "HAT-P-23 b", "Rc", 60,
                             binning=2, detrend_parameters=("AIRMASS", "SKY"),
                             priors={"Period": (1.212884, 2e-6), "ecc": 0.11},
                             results={"Tc": (2459770.51948, 0.0008), "Rp/R*": (0.114, 0.0023)},
                             secondary_obscodes=("ABC",), notes="clinepipe transit fit")
EXO_ROWS = [ExoplanetRow(2459770.336892413, 0.99813878536, 0.0032959, (1.2345678, 512.25)),
            ExoplanetRow(2459770.338281351, 1.0015108586, 0.0032849, (1.2301, None))]


def test_exoplanet_writer_round_trip():
    text = format_exoplanet(EXO_HEADER, EXO_ROWS)
    assert validate_exoplanet(text) == []
    for key in ("#SECONDARY_OBSCODES=ABC", "#BINNING=2x2", "#EXPOSURE_TIME=60", "#FILTER=R",
                "#DETREND_PARAMETERS=AIRMASS, SKY", "#PRIORS=Period=1.212884 +/- 2e-06,ecc=0.11",
                "#RESULTS=Tc=2459770.51948 +/- 0.0008,Rp/R*=0.114 +/- 0.0023",
                "#DATE,DIFF,ERR,DETREND_1,DETREND_2"):
        assert key + "\n" in text
    (first, second) = _read_back(text)
    assert abs(float(first[0]) - EXO_ROWS[0].date) <= 5e-9      # 8 decimals: < 1 ms
    assert abs(float(first[1]) - EXO_ROWS[0].diff) <= 5e-8
    assert abs(float(first[2]) - EXO_ROWS[0].err) <= 5e-8
    assert first[3:] == ["1.23457", "512.25"] and second[4] == "na"


@pytest.mark.parametrize("change,rows,rule", [
    (dict(exposure_time=601), EXO_ROWS, "#EXPOSURE_TIME"),
    (dict(binning=5), EXO_ROWS, "#BINNING"),
    (dict(date_type="BJD"), EXO_ROWS, "#DATE_TYPE"),
    (dict(measurement_type="flux"), EXO_ROWS, "#MEASUREMENT_TYPE"),
    (dict(detrend_parameters=("A", "B", "C", "D", "E")), EXO_ROWS, "#DETREND_PARAMETERS"),
    (dict(star_name=" "), EXO_ROWS, "#STAR_NAME"),
    ({}, [ExoplanetRow(2459770.3, 1.0, 0.003, (1.2,))], "detrend values"),
    ({}, [ExoplanetRow(2459770.3, math.nan, 0.003, (1.2, 3.0))], "DIFF"),
    ({}, [], "no measurements"),
], ids=["exposure", "binning", "date type", "measurement type", "detrend names", "star name",
        "detrend columns", "nan", "empty"])
def test_exoplanet_writer_refuses_what_it_cannot_write(change, rows, rule):
    header = ExoplanetHeader(**{**EXO_HEADER.__dict__, **change})
    with pytest.raises(ValueError, match=rule):
        format_exoplanet(header, rows)
