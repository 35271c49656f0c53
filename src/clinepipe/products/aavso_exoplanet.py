"""The AAVSO Exoplanet Report File Format v0.62
(https://www.aavso.org/aavso-exoplanet-report-file-format): the validator and the writer.

One file is one observation (a transit), a time series of measurements. The format is case
sensitive. Required parameters (see :data:`REQUIRED_KEYS`): ``#TYPE=EXOPLANET``, ``#OBSCODE``,
``#SECONDARY_OBSCODES`` (may be empty), ``#SOFTWARE`` (<= 255), ``#DELIM``, ``#DATE_TYPE`` (one
of :data:`DATE_TYPES`), ``#OBSTYPE`` (CCD or DSLR), ``#STAR_NAME``, ``#EXOPLANET_NAME``,
``#BINNING`` (1x1 … 4x4), ``#EXPOSURE_TIME`` (s, at most 600), ``#FILTER`` (an AAVSO code),
``#DETREND_PARAMETERS`` (0-4 comma-separated names), ``#MEASUREMENT_TYPE`` (Rnflux or Dmag),
``#PRIORS``, ``#RESULTS``. Then one measurement per line: ``DATE,DIFF,ERR`` and one column per
detrend parameter, raw (not detrended) values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

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

__all__ = ["REQUIRED_KEYS", "DATE_TYPES", "ExoplanetHeader", "ExoplanetRow",
           "validate_exoplanet", "format_exoplanet", "detrend_names"]

REQUIRED_KEYS = ("TYPE", "OBSCODE", "SECONDARY_OBSCODES", "SOFTWARE", "DELIM", "DATE_TYPE",
                 "OBSTYPE", "STAR_NAME", "EXOPLANET_NAME", "BINNING", "EXPOSURE_TIME", "FILTER",
                 "DETREND_PARAMETERS", "MEASUREMENT_TYPE", "PRIORS", "RESULTS")
DATE_TYPES = ("JD_UTC", "HJD_UTC", "BJD_UTC", "BJD_TT", "BJD_TDB")
MEASUREMENT_TYPES = ("Rnflux", "Dmag")
OBSTYPES = ("CCD", "DSLR")
MAX_EXPOSURE = 600.0   # s
MAX_DETREND = 4
_BINNING = re.compile(r"[1-4]x[1-4]\Z")
#: values of #DETREND_PARAMETERS that mean "no detrend parameter"
_NO_DETREND = ("", "na", "NONE")


def detrend_names(value: str) -> list[str]:
    """The names in a ``#DETREND_PARAMETERS`` value (comma-separated; empty, ``na`` or
    ``NONE`` = none)."""
    if value.strip() in _NO_DETREND:
        return []
    return [name.strip() for name in value.split(",")]


def _header_problem(key: str, value: str) -> str | None:
    """Why the value of parameter ``key`` is refused, or None."""
    text = value.strip()
    if key == "TYPE" and text != "EXOPLANET":
        return f"#TYPE is {text!r}, not EXOPLANET"
    if key == "OBSCODE":
        why = obscode_problem(text)
        return None if why is None else f"the observer code is {why}"
    if key == "SECONDARY_OBSCODES" and text:
        for code in text.split(","):
            why = obscode_problem(code)
            if why is not None:
                return f"a secondary observer code is {why}"
    if key == "SOFTWARE" and not 0 < len(text) <= 255:
        return "must name the software in 1 to 255 characters"
    if key == "DELIM":
        why = parse_delimiter(value)[1]
        return None if why is None else f"the delimiter is {why}"
    if key == "DATE_TYPE" and text not in DATE_TYPES:
        return f"{text!r} is not one of {', '.join(DATE_TYPES)}"
    if key == "OBSTYPE" and text not in OBSTYPES:
        extra = " (a CMOS camera reports CCD)" if text.upper() == "CMOS" else ""
        return f"{text!r} is not CCD or DSLR{extra}"
    if key in ("STAR_NAME", "EXOPLANET_NAME") and not text:
        return "empty"
    if key == "BINNING" and not _BINNING.match(text):
        return f"{text!r} is not 1x1 … 4x4"
    if key == "EXPOSURE_TIME":
        seconds = number(text)
        if seconds is None or not 0 < seconds <= MAX_EXPOSURE:
            return f"{text!r} is not an exposure time in seconds, above 0 and at most 600"
    if key == "FILTER" and text not in AAVSO_FILTER_CODES:
        return f"{text!r} is not an AAVSO filter code (clear is CV)"
    if key == "DETREND_PARAMETERS":
        names = detrend_names(value)
        if len(names) > MAX_DETREND:
            return f"{len(names)} names, at most {MAX_DETREND}"
        if any(not name for name in names):
            return "an empty name between commas"
    if key == "MEASUREMENT_TYPE" and text not in MEASUREMENT_TYPES:
        return f"{text!r} is not Rnflux or Dmag"
    if key in ("PRIORS", "RESULTS") and not text:
        return "empty: write na if there is nothing to report"
    return None


def _measurement_problems(values: list[str], names: list[str],
                          mtype: str | None) -> list[tuple[str, str]]:
    out = []
    date, diff, err = (v.strip() for v in values[:3])
    jd = number(date)
    if jd is None or "." not in date or not JD_MIN < jd < JD_MAX:
        out.append(("DATE", f"{date!r} is not a full Julian date with decimals"))
    flux = number(diff)
    if flux is None:
        out.append(("DIFF", f"{diff!r} is not a number"))
    elif mtype == "Rnflux" and flux <= 0:
        out.append(("DIFF", f"{diff} is not a positive relative flux"))
    sigma = number(err)
    if sigma is None or sigma < 0:
        out.append(("ERR", f"{err!r} is not an error (a number >= 0)"))
    for i, value in enumerate(values[3:], start=1):
        value = value.strip()
        if value != "na" and number(value) is None:
            out.append((f"DETREND_{i}", f"{value!r} ({names[i - 1]}) is not a number or na"))
    return out


def validate_exoplanet(text: str) -> list[Problem]:
    """Every way ``text`` (the whole file) breaks the AAVSO Exoplanet Report format v0.62.

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
    names: list[str] = []
    n_data = 0
    for lineno, line in content_lines(text, problems):
        if line.startswith("#"):
            param = parameter(line)
            if param is None:
                columns = line[1:].split(delim) if delim else []
                if len(columns) >= 2 and [c.strip() for c in columns[:2]] == ["DATE", "DIFF"]:
                    want = ["DATE", "DIFF", "ERR"] + [f"DETREND_{i}"
                                                      for i in range(1, len(names) + 1)]
                    if [c.strip() for c in columns] != want:
                        problems.append(Problem(lineno, "columns", f"the column line should "
                                                f"read #{delim.join(want)}"))
                continue
            key, value = param
            if key not in REQUIRED_KEYS:
                if key.upper() in REQUIRED_KEYS:
                    problems.append(Problem(lineno, f"#{key.upper()}", f"written #{key}: the "
                                            f"exoplanet format is case sensitive"))
                continue
            if n_data:
                problems.append(Problem(lineno, f"#{key}",
                                        "parameters must all come before the measurements"))
            why = _header_problem(key, value)
            if why is not None:
                problems.append(Problem(lineno, f"#{key}", why))
            seen[key] = value
            if key == "DELIM":
                delim = parse_delimiter(value)[0] or delim
            elif key == "DETREND_PARAMETERS":
                names = detrend_names(value)[:MAX_DETREND]
            continue
        n_data += 1
        if n_data == 1:
            problems += missing_parameters(lineno, REQUIRED_KEYS, seen,
                                           " before the first measurement")
        if delim is None:
            continue
        values = line.split(delim)
        if len(values) != 3 + len(names):
            problems.append(Problem(lineno, "field-count", f"{len(values)} fields separated "
                                    f"by {delim!r}, not {3 + len(names)} (DATE, DIFF, ERR and "
                                    f"one per detrend parameter: {', '.join(names) or 'none'})"))
            continue
        problems += [Problem(lineno, rule, msg) for rule, msg in
                     _measurement_problems(values, names, seen.get("MEASUREMENT_TYPE", "").strip())]
    if n_data == 0:
        problems.append(Problem(0, "no-data", "the report has no measurement lines"))
        problems += missing_parameters(0, REQUIRED_KEYS, seen)
    return problems


# ----------------------------------------------------------------------------- writer

Fit = Mapping[str, "float | tuple[float, float] | str"]


@dataclass(frozen=True)
class ExoplanetHeader:
    """The parameters of an exoplanet report. ``exposure_time`` in seconds; ``binning`` an int
    (2 -> ``2x2``) or ``"NxM"``; ``filter`` one of our filter names (mapped to its AAVSO code);
    ``priors``/``results`` {name: value or (value, error) or text}, written
    ``Period=1.2128 +/- 2e-06,…`` (``na`` when empty); ``detrend_parameters`` 0-4 names, one
    data column each, in this order."""

    obscode: str
    software: str
    star_name: str
    exoplanet_name: str
    filter: str
    exposure_time: float
    binning: int | str = 1
    date_type: str = "BJD_TDB"
    obstype: str = "CCD"
    measurement_type: str = "Rnflux"
    detrend_parameters: Sequence[str] = ()
    priors: Fit = field(default_factory=dict)
    results: Fit = field(default_factory=dict)
    secondary_obscodes: Sequence[str] = ()
    notes: str = ""
    delim: str = ","


@dataclass(frozen=True)
class ExoplanetRow:
    """One measurement: ``date`` in the header's date type (days), ``diff`` the relative flux
    (Rnflux) or differential magnitude (Dmag), ``err`` its 1-sigma error, ``detrend`` the raw
    values of the detrend parameters (None/NaN -> ``na``)."""

    date: float
    diff: float
    err: float
    detrend: Sequence[float | None] = ()


def _fit_text(name: str, fit: Fit) -> str:
    if isinstance(fit, str):
        text = fit.strip()
    else:
        parts = []
        for key, value in fit.items():
            if isinstance(value, tuple):
                parts.append(f"{key}={float(value[0])!r} +/- {float(value[1]):.2g}")
            elif isinstance(value, (int, float)):
                parts.append(f"{key}={float(value)!r}")
            else:
                parts.append(f"{key}={value}")
        text = ",".join(parts)
    if "\n" in text or "\r" in text:
        raise ValueError(f"#{name} cannot contain a line break.")
    return text or "na"


def _line(name: str, value: str) -> str:
    text = " ".join(str(value).split())
    why = _header_problem(name, text)
    if why is not None:
        raise ValueError(f"#{name}: {why}.")
    return f"#{name}={text}"


def format_exoplanet(header: ExoplanetHeader, rows: Iterable[ExoplanetRow]) -> str:
    """The text of an AAVSO Exoplanet report: the parameters, the commented column line
    ``#DATE,DIFF,ERR,DETREND_1,…`` and one line per row (DATE with 8 decimals, DIFF and ERR
    with 7, detrend values with 6 significant digits).

    Raises
    ------
    BadInput
        without an observer code ("no AAVSO observer code: set [aavso] obscode") or with a
        filter that has no AAVSO code.
    ValueError
        when a value cannot be written (one sentence naming the parameter or column), and when
        the result fails :func:`validate_exoplanet` (a bug here, never a bad file).
    """
    obscode = check_obscode(header.obscode)
    delim, why = parse_delimiter(header.delim)
    if delim is None:
        raise ValueError(f"#DELIM {header.delim!r}: the delimiter is {why}.")
    names = [" ".join(str(n).split()) for n in header.detrend_parameters]
    if len(names) > MAX_DETREND or any(not n or "," in n for n in names):
        raise ValueError(f"#DETREND_PARAMETERS takes at most {MAX_DETREND} names without commas,"
                         f" not {names}.")
    binning = (f"{header.binning}x{header.binning}" if isinstance(header.binning, int)
               else str(header.binning))
    obstype = "CCD" if str(header.obstype).upper() == "CMOS" else str(header.obstype).upper()
    secondary = ",".join(check_obscode(code) for code in header.secondary_obscodes)
    written_delim = {",": ",", "\t": "tab"}.get(delim, delim)
    lines = ["#TYPE=EXOPLANET", f"#OBSCODE={obscode}", f"#SECONDARY_OBSCODES={secondary}",
             _line("SOFTWARE", header.software),
             f"#DELIM={written_delim}",
             _line("DATE_TYPE", header.date_type), _line("OBSTYPE", obstype),
             _line("STAR_NAME", header.star_name), _line("EXOPLANET_NAME", header.exoplanet_name),
             _line("BINNING", binning), _line("EXPOSURE_TIME", f"{float(header.exposure_time):g}"),
             _line("FILTER", aavso_filter_code(header.filter))]
    if header.notes.strip():
        lines.append(f"#NOTES={' '.join(header.notes.split())}")
    lines += [f"#DETREND_PARAMETERS={', '.join(names)}",
              _line("MEASUREMENT_TYPE", header.measurement_type),
              f"#PRIORS={_fit_text('PRIORS', header.priors)}",
              f"#RESULTS={_fit_text('RESULTS', header.results)}",
              "#" + delim.join(["DATE", "DIFF", "ERR"]
                               + [f"DETREND_{i}" for i in range(1, len(names) + 1)])]
    n_header = len(lines)
    for row in rows:
        values = (row.date, row.diff, row.err)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"measurement {values} has a missing DATE, DIFF or ERR (leave such "
                             f"a point out).")
        if len(row.detrend) != len(names):
            raise ValueError(f"measurement at {row.date} has {len(row.detrend)} detrend values "
                             f"for {len(names)} #DETREND_PARAMETERS.")
        fields = [f"{row.date:.8f}", f"{row.diff:.7f}", f"{row.err:.7f}"]
        fields += ["na" if v is None or not math.isfinite(v) else f"{v:.6g}"
                   for v in row.detrend]
        lines.append(delim.join(fields))
    if len(lines) == n_header:
        raise ValueError("no measurements: an exoplanet report needs at least one.")
    text = "\n".join(lines) + "\n"
    problems = validate_exoplanet(text)
    if problems:
        raise ValueError("format_exoplanet wrote an invalid AAVSO Exoplanet report (a "
                         "clinepipe bug): " + "; ".join(str(p) for p in problems[:5]))
    return text
