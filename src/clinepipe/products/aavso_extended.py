"""The AAVSO Extended File Format v1.2 (https://www.aavso.org/aavso-extended-file-format): the
validator, run on any such file whoever wrote it, and the writer, whose output passes it.

The format is not case sensitive. Parameters (``#KEY=value``) come first: ``#TYPE=EXTENDED``,
``#OBSCODE`` (never empty nor a placeholder such as ``N/A``), ``#SOFTWARE`` (<= 255 characters),
``#DELIM``, ``#DATE`` (JD, HJD or EXCEL: BJD is not allowed here), ``#OBSTYPE`` (CCD, DSLR or
PEP; absent means CCD, as the format says; a CMOS camera reports CCD). ``#OBSCODE`` and
``#DATE`` may appear again further down and hold for the lines after them. Then one observation
per line, 15 fields (see :data:`FIELDS`), ``na`` for a missing optional value. Any other line
starting with ``#`` is a comment; a blank line that is not commented out is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from clinepipe.products.aavso_rules import (
    AAVSO_FILTER_CODES,
    JD_MAX,
    JD_MIN,
    Problem,
    aavso_filter_code,
    check_obscode,
    content_lines,
    missing_parameters,
    number,
    obscode_problem,
    parameter,
    parse_delimiter,
)

__all__ = ["FIELDS", "ExtendedHeader", "ExtendedRow", "validate_extended", "format_extended"]

#: the 15 data fields, in order (the file's commented column line spells AIRMASS as AMASS)
FIELDS = ("STARID", "DATE", "MAGNITUDE", "MAGERR", "FILTER", "TRANS", "MTYPE", "CNAME", "CMAG",
          "KNAME", "KMAG", "AIRMASS", "GROUP", "CHART", "NOTES")
#: the commented column line, as AAVSO's own examples spell it
COLUMN_LINE = ("NAME", "DATE", "MAG", "MERR", "FILT", "TRANS", "MTYPE", "CNAME", "CMAG", "KNAME",
               "KMAG", "AMASS", "GROUP", "CHART", "NOTES")
#: widest value of a field (characters)
WIDTH = {"STARID": 30, "DATE": 16, "MAGNITUDE": 8, "MAGERR": 6, "CNAME": 20, "CMAG": 8,
         "KNAME": 20, "KMAG": 8, "AIRMASS": 7, "GROUP": 5, "CHART": 20}
#: fields that may not be ``na``
REQUIRED = ("STARID", "DATE", "MAGNITUDE", "FILTER", "TRANS", "MTYPE")
DATE_TYPES = ("JD", "HJD", "EXCEL")
OBSTYPES = ("CCD", "DSLR", "PEP")
#: parameters that must precede the first observation (#OBSTYPE may be absent: CCD)
HEADER_KEYS = ("TYPE", "OBSCODE", "SOFTWARE", "DELIM", "DATE")
_MAGNITUDE = re.compile(r"<?[+-]?(\d+\.\d*|\.\d+)\Z")
# Excel's NOW() text as AAVSO shows it ("12/31/2007 12:59:59 a.m"), seconds optional
_EXCEL = re.compile(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}(:\d{2})?( ?[ap]\.?m\.?)?\Z", re.I)


# ----------------------------------------------------------------------------- validator

def _header_problem(key: str, value: str) -> str | None:
    """Why the value of parameter ``key`` (upper case) is refused, or None."""
    text = value.strip()
    if key == "TYPE" and text.upper() != "EXTENDED":
        return f"#TYPE is {text!r}, not EXTENDED"
    if key == "OBSCODE":
        why = obscode_problem(text)
        return None if why is None else f"the observer code is {why}"
    if key == "SOFTWARE":
        if not text:
            return "empty: name the software and its version"
        if len(text) > 255:
            return f"{len(text)} characters, more than 255"
    if key == "DELIM":
        why = parse_delimiter(value)[1]
        return None if why is None else f"the delimiter is {why}"
    if key == "DATE" and text.upper() not in DATE_TYPES:
        extra = (" (BJD belongs in an AAVSO Exoplanet report, not here)"
                 if text.upper().startswith("BJD") else "")
        return f"{text!r} is not JD, HJD or EXCEL{extra}"
    if key == "OBSTYPE" and text.upper() not in OBSTYPES:
        extra = " (a CMOS camera reports CCD)" if text.upper() == "CMOS" else ""
        return f"{text!r} is not CCD, DSLR or PEP{extra}"
    return None


def _date_problem(text: str, date_type: str) -> str | None:
    if date_type == "EXCEL":
        return None if _EXCEL.match(text) else f"{text!r} is not an Excel NOW() date"
    value = number(text)
    if value is None or "." not in text:
        return f"{text!r} is not a Julian date with decimals"
    if not JD_MIN < value < JD_MAX:
        return f"{text} is not a full Julian date (a reduced or modified JD?)"
    return None


def _field_problems(fields: dict[str, str], date_type: str) -> list[tuple[str, str]]:
    """(rule, message) for each field of one observation that breaks the format."""
    out = []
    for name, value in fields.items():
        if value == "":
            out.append((name, "empty: write na for a missing value"))
        elif value.lower() == "na" and name in REQUIRED:
            out.append((name, f"{name} is required, na is not allowed"))
        elif name in WIDTH and len(value) > WIDTH[name]:
            out.append((name, f"{value!r} is {len(value)} characters, more than {WIDTH[name]}"))
    bad = {rule for rule, _ in out}
    present = {k: v for k, v in fields.items()
               if k not in bad and v.lower() != "na"}

    def check(name, why):
        if name in present and why:
            out.append((name, why))

    check("DATE", present.get("DATE") and _date_problem(present["DATE"], date_type))
    mag = present.get("MAGNITUDE")
    check("MAGNITUDE", mag and (None if _MAGNITUDE.match(mag) else
                                f"{mag!r} is not a magnitude with a decimal point"))
    err = present.get("MAGERR")
    if err is not None:
        value = number(err)
        check("MAGERR", f"{err!r} is not a number" if value is None else
              f"{err} is not between 0 and 1 mag" if not 0 <= value < 1 else None)
    filt = present.get("FILTER")
    check("FILTER", filt and (None if filt.upper() in AAVSO_FILTER_CODES else
                              f"{filt!r} is not an AAVSO filter code"))
    trans = present.get("TRANS")
    check("TRANS", trans and (None if trans.upper() in ("YES", "NO") else
                              f"{trans!r} is not YES or NO"))
    mtype = present.get("MTYPE")
    check("MTYPE", mtype and (None if mtype.upper() in ("STD", "DIF") else
                              f"{mtype!r} is not STD or DIF"))
    if mtype and mtype.upper() == "DIF" and fields["CNAME"].lower() in ("na", ""):
        out.append(("MTYPE", "DIF (differential) needs the comparison star in CNAME"))
    for name in ("CMAG", "KMAG"):
        check(name, name in present and number(present[name]) is None
              and f"{present[name]!r} is not a magnitude")
    air = present.get("AIRMASS")
    if air is not None:
        value = number(air)
        check("AIRMASS", f"{air!r} is not an airmass" if value is None or value < 1.0 else None)
    group = present.get("GROUP")
    check("GROUP", group and (None if group.isdigit() else f"{group!r} is not an integer or na"))
    return out


def validate_extended(text: str) -> list[Problem]:
    """Every way ``text`` (the whole file) breaks the AAVSO Extended File Format v1.2.

    Parameters
    ----------
    text : str
        the file's content.

    Returns
    -------
    list of Problem
        in line order; empty when the file is valid.
    """
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    delim: str | None = None
    date_type = "JD"
    n_obs = 0
    header_checked = False
    for lineno, line in content_lines(text, problems):
        if line.startswith("#"):
            param = parameter(line)
            if param is None:
                continue
            key, value = param[0].upper(), param[1]
            if key not in HEADER_KEYS + ("OBSTYPE",):
                continue  # a comment that happens to contain '='
            why = _header_problem(key, value)
            if why is not None:
                problems.append(Problem(lineno, f"#{key}", why))
            seen[key] = value
            if key == "DELIM":
                delim = parse_delimiter(value)[0] or delim
            elif key == "DATE" and why is None:
                date_type = value.strip().upper()
            continue
        n_obs += 1
        if not header_checked:
            header_checked = True
            problems += missing_parameters(lineno, HEADER_KEYS, seen,
                                           " before the first observation")
        if delim is None:
            continue  # without a delimiter the fields cannot be told apart (reported above)
        values = line.split(delim)
        if len(values) != len(FIELDS):
            problems.append(Problem(lineno, "field-count",
                                    f"{len(values)} fields separated by {delim!r}, not "
                                    f"{len(FIELDS)} (a column missing, merged or shifted)"))
            continue
        fields = dict(zip(FIELDS, (v.strip() for v in values), strict=True))
        problems += [Problem(lineno, rule, message)
                     for rule, message in _field_problems(fields, date_type)]
    if n_obs == 0:
        problems.append(Problem(0, "no-data", "the file has no observation lines"))
        problems += missing_parameters(0, HEADER_KEYS, seen)
    return problems


# ----------------------------------------------------------------------------- writer

@dataclass(frozen=True)
class ExtendedHeader:
    """The parameters of an Extended-format file. ``obscode`` the AAVSO observer code;
    ``software`` name and version; ``date_type`` ``JD`` or ``HJD`` (UTC, mid-exposure);
    ``obstype`` CCD, DSLR or PEP (``CMOS`` is written CCD); ``delim`` one character or the word
    ``comma``/``tab``."""

    obscode: str
    software: str
    date_type: str = "JD"
    obstype: str = "CCD"
    delim: str = ","


@dataclass(frozen=True)
class ExtendedRow:
    """One observation. ``date`` the JD (or HJD, as the header says) at mid-exposure, days;
    magnitudes in mag; ``filter`` one of our filter names (mapped to its AAVSO code);
    ``mtype`` ``STD`` or ``DIF``; None for anything missing. ``vmagins``/``cmagins``/
    ``kmagins`` are the instrumental magnitudes of target, comparison (ensemble) and check
    star, ``crefmag``/``krefmag`` the catalog magnitudes of comparison and check star: they go
    into NOTES so that AAVSO's Transform Applier can transform the observation later."""

    starid: str
    date: float
    magnitude: float
    magerr: float | None
    filter: str
    trans: bool = False
    mtype: str = "STD"
    cname: str | None = None
    cmag: float | None = None
    kname: str | None = None
    kmag: float | None = None
    airmass: float | None = None
    group: int | None = None
    chart: str | None = None
    notes: str | None = None
    fainter_than: bool = False
    vmagins: float | None = None
    cmagins: float | None = None
    kmagins: float | None = None
    crefmag: float | None = None
    krefmag: float | None = None


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _decimal(name: str, value, decimals: int = 3, prefix: str = "") -> str:
    """``value`` with ``decimals`` decimals, or ValueError when it does not fit the field."""
    if _missing(value):
        return "na"
    text = prefix + f"{float(value):.{decimals}f}"
    if len(text) > WIDTH[name]:
        raise ValueError(f"{name} {text} does not fit the {WIDTH[name]} characters AAVSO allows.")
    return text


def _name(name: str, value: str | None, delim: str, required: bool = False) -> str:
    """A name field (STARID, CNAME, KNAME, CHART): never silently shortened, because a
    truncated name is another star."""
    text = " ".join(str(value or "").split())
    if not text or text.lower() == "na":
        if required:
            raise ValueError(f"{name} is required: an observation needs its star's name.")
        return "na"
    if delim in text or text.startswith("#"):
        raise ValueError(f"{name} {text!r} contains the delimiter {delim!r} or starts with #.")
    if name in WIDTH and len(text) > WIDTH[name]:
        raise ValueError(f"{name} {text!r} is longer than the {WIDTH[name]} characters AAVSO "
                         f"allows.")
    return text


def _notes(row: ExtendedRow, delim: str) -> str:
    parts = [f"{key}={float(value):.3f}" for key, value in
             (("VMAGINS", row.vmagins), ("CMAGINS", row.cmagins), ("KMAGINS", row.kmagins),
              ("CREFMAG", row.crefmag), ("KREFMAG", row.krefmag)) if not _missing(value)]
    if row.notes and row.notes.strip() and row.notes.strip().lower() != "na":
        # free text: a delimiter or line break in it must not split the line
        parts.append(" ".join(row.notes.replace(delim, " ").split()))
    return "|".join(parts) or "na"


def _row_fields(row: ExtendedRow, delim: str) -> list[str]:
    mtype = str(row.mtype).strip().upper()
    if mtype not in ("STD", "DIF"):
        raise ValueError(f"MTYPE {row.mtype!r} is not STD or DIF.")
    cname = _name("CNAME", row.cname, delim)
    if mtype == "DIF" and cname == "na":
        raise ValueError("MTYPE DIF (differential) needs the comparison star's name in CNAME.")
    if _missing(row.date) or not JD_MIN < float(row.date) < JD_MAX:
        raise ValueError(f"DATE {row.date!r} is not a full Julian date.")
    if _missing(row.magnitude):
        raise ValueError(f"MAGNITUDE of {row.starid} at JD {row.date} is missing.")
    magerr = _decimal("MAGERR", row.magerr)
    if magerr != "na" and not 0 <= float(magerr) < 1:
        raise ValueError(f"MAGERR {magerr} of {row.starid} at JD {row.date} is not below 1 mag "
                         f"(leave such a point out).")
    if not _missing(row.airmass) and round(float(row.airmass), 3) < 1.0:
        raise ValueError(f"AIRMASS {row.airmass} is below 1.")
    if row.group is not None and not 0 <= int(row.group) <= 99999:
        raise ValueError(f"GROUP {row.group} is not an integer of at most 5 digits.")
    return [_name("STARID", row.starid, delim, required=True),
            f"{float(row.date):.5f}",
            _decimal("MAGNITUDE", row.magnitude, prefix="<" if row.fainter_than else ""),
            magerr,
            aavso_filter_code(row.filter),
            "YES" if row.trans else "NO",
            mtype,
            cname,
            _decimal("CMAG", row.cmag),
            _name("KNAME", row.kname, delim),
            _decimal("KMAG", row.kmag),
            _decimal("AIRMASS", row.airmass),
            "na" if row.group is None else str(int(row.group)),
            _name("CHART", row.chart, delim),
            _notes(row, delim)]


def format_extended(header: ExtendedHeader, rows: Iterable[ExtendedRow]) -> str:
    """The text of an AAVSO Extended Format file: the six parameters, the commented column
    line, one line per row (JD with 5 decimals, magnitudes with 3, ``na`` for missing values,
    NOTES carrying VMAGINS/CMAGINS/KMAGINS/CREFMAG/KREFMAG).

    Raises
    ------
    BadInput
        without an observer code ("no AAVSO observer code: set [aavso] obscode") or with a
        filter that has no AAVSO code.
    ValueError
        when a value cannot be written (one sentence naming the field), and when the result
        fails :func:`validate_extended` (a bug here, never a bad file).
    """
    obscode = check_obscode(header.obscode)
    delim, why = parse_delimiter(header.delim)
    if delim is None:
        raise ValueError(f"#DELIM {header.delim!r}: the delimiter is {why}.")
    software = " ".join(str(header.software or "").split())
    if not software or len(software) > 255:
        raise ValueError("#SOFTWARE must name the software in 1 to 255 characters.")
    date_type = str(header.date_type).strip().upper()
    if date_type not in ("JD", "HJD"):
        raise ValueError(f"#DATE {header.date_type!r}: the writer takes JD or HJD (BJD is not "
                         f"allowed in the Extended format).")
    obstype = str(header.obstype).strip().upper()
    obstype = "CCD" if obstype == "CMOS" else obstype
    if obstype not in OBSTYPES:
        raise ValueError(f"#OBSTYPE {header.obstype!r} is not CCD, DSLR or PEP.")
    written_delim = {",": ",", "\t": "tab"}.get(delim, delim)
    lines = ["#TYPE=EXTENDED", f"#OBSCODE={obscode}", f"#SOFTWARE={software}",
             f"#DELIM={written_delim}", f"#DATE={date_type}", f"#OBSTYPE={obstype}",
             "#" + delim.join(COLUMN_LINE)]
    lines += [delim.join(_row_fields(row, delim)) for row in rows]
    if len(lines) == 7:
        raise ValueError("no observations: an AAVSO file needs at least one.")
    text = "\n".join(lines) + "\n"
    problems = validate_extended(text)
    if problems:
        raise ValueError("format_extended wrote an invalid AAVSO Extended file (a clinepipe "
                         "bug): " + "; ".join(str(p) for p in problems[:5]))
    return text
