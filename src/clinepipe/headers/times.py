"""When an exposure started, in UTC, from whichever time keywords a header has.

Keywords are read in the order of the issue "Any camera's files"; the first readable one wins,
and every other readable one is checked against it (a disagreement of more than 2 s, beyond
the keywords' written precision, is said). Values are parsed here rather than by astropy's
``Time``: it is ~50x slower per call, and clinepipe must take forms it refuses (``+hh`` and
``-hhmm`` offsets, seven decimals, unquoted cards).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from clinepipe.headers.problem import Problem
from clinepipe.headers.values import comment, decimal_step, number, raw

__all__ = ["TIME_KEYS", "TimeReading", "iso_ms", "jd_of", "parse_iso", "read_time"]

_EPOCH = datetime(1970, 1, 1)
_JD_EPOCH = 2440587.5
_MJD_JD = 2400000.5
#: time keywords a date-only DATE-OBS is completed with, in order
_CLOCK_KEYS = ("TIME-OBS", "UT", "UTC", "UT-START", "TIME-BEG", "UTSTART")
#: every keyword read for the time, in order (for messages)
TIME_KEYS = ("DATE-OBS", *_CLOCK_KEYS, "UT-OBS", "UTC-OBS", "DATE-BEG", "DATE-AVG", "MJD-MID",
             "MJD-AVG", "MJD-OBS", "JD", "JD-OBS")
_AGREE_S = 2.0
# DATE-OBS comments that say it was taken when the frame arrived, not when the shutter opened
_END_WORDS = re.compile(r"end of exposure|exposure end|frame received|frame grabbed", re.IGNORECASE)

_ISO = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d*))?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$", re.IGNORECASE)
_CLOCK = re.compile(r"^(\d{1,2})[: ](\d{1,2})[: ](\d{1,2})(?:\.(\d*))?\s*(Z|UTC|GMT)?$", re.IGNORECASE)


@dataclass(frozen=True)
class _Reading:
    source: str
    start: datetime | None  # UTC, naive
    mid: datetime | None
    precision: float  # seconds, half the last written digit
    offset: str = ""  # "-07:00" when the value carried a non-UTC offset
    utc_by_name: bool = False  # a keyword whose name says UTC (UT-OBS, UTC-OBS, TIME-OBS…)


@dataclass(frozen=True)
class TimeReading:
    """The time of one exposure.

    ``start`` is the UTC start (naive datetime, microseconds as written); ``jd_start`` and
    ``jd_mid`` UTC Julian dates; ``source`` the keyword(s) used; ``offset`` the UTC offset the
    value carried (``"-07:00"``), converted; ``precision`` in seconds; ``note`` says when
    keywords disagreed or DATE-OBS was the end of the exposure. All None/"" when no time.
    """

    start: datetime | None
    jd_start: float | None
    jd_mid: float | None
    source: str
    offset: str
    precision: float | None
    note: str
    problems: tuple[Problem, ...]


def _fraction(digits: str | None) -> tuple[int, float]:
    digits = digits or ""
    micro = int((digits + "000000")[:6]) if digits else 0
    return micro, 0.5 * 10.0 ** -len(digits)


def parse_iso(text: str) -> tuple[datetime, str, float, bool] | None:
    """An ISO 8601 date-time in UTC: ``(utc, offset, precision_s, has_clock)``.

    No zone = UTC; ``Z``, ``+hh:mm``, ``-hhmm`` and ``+hh`` offsets are subtracted (the offset
    returned as ``"+hh:mm"``, ``""`` for UTC); ``has_clock`` is False for a date alone.
    None when ``text`` is not such a date.
    """
    m = _ISO.match(str(text).strip())
    if not m:
        return None
    y, mo, d, hh, mm, ss, frac, zone = m.groups()
    micro, precision = _fraction(frac)
    if ss is None:
        precision = 30.0 if mm is not None else 43200.0
    try:
        t = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0), micro)
    except ValueError:
        return None
    offset = ""
    if zone and zone.upper() not in ("Z", "UTC", "GMT"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
        if minutes:
            t -= timedelta(minutes=sign * minutes)
            offset = f"{zone[0]}{minutes // 60:02d}:{minutes % 60:02d}"
    return t, offset, precision, hh is not None


def _parse_clock(text: str) -> tuple[timedelta, float] | None:
    m = _CLOCK.match(str(text).strip())
    if not m:
        return None
    hh, mm, ss, frac, _ = m.groups()
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 60:
        return None
    micro, precision = _fraction(frac)
    return timedelta(hours=int(hh), minutes=int(mm), seconds=int(ss), microseconds=micro), precision


def jd_of(t: datetime) -> float:
    """UTC Julian date of a naive UTC datetime (days)."""
    d = t - _EPOCH
    return _JD_EPOCH + d.days + (d.seconds + d.microseconds * 1e-6) / 86400.0


def iso_ms(t: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.sss`` of a naive UTC datetime, rounded to the millisecond."""
    rounded = t.replace(microsecond=0) + timedelta(milliseconds=round(t.microsecond / 1000))
    return rounded.isoformat(timespec="milliseconds")


def _unreadable(key: str, value) -> Problem:
    reason = f"{key} '{value}' is not a date clinepipe reads"
    return Problem(reason, f"{key} = '{value}' is not a date and time clinepipe reads "
                           "(ISO 8601 'YYYY-MM-DDThh:mm:ss[.sss][Z|±hh:mm]' expected).",
                   "", True)


def _nearest_day(day: datetime, clock: timedelta, near: datetime | None) -> datetime:
    t = day + clock
    if near is not None:  # a bare clock next to a DATE-OBS of the other side of midnight
        while t - near > timedelta(hours=12):
            t -= timedelta(days=1)
        while near - t > timedelta(hours=12):
            t += timedelta(days=1)
    return t


def _date_obs(header, errors: list) -> tuple[list[_Reading], datetime | None]:
    """Readings from DATE-OBS (completed by a clock keyword when it holds a date only), and the
    UTC calendar day DATE-OBS names (for the clock-only keywords)."""
    key = "DATE-OBS" if "DATE-OBS" in header else "DATE_OBS"
    value = raw(header, key)
    if value is None:
        return [], None
    parsed = parse_iso(str(value))
    if parsed is None:
        errors.append(_unreadable("DATE-OBS", value))
        return [], None
    t, offset, precision, has_clock = parsed
    day = datetime(t.year, t.month, t.day)
    out = []
    if has_clock:
        out.append(_Reading("DATE-OBS", t, None, precision, offset))
    for clock_key in _CLOCK_KEYS:
        clock_value = raw(header, clock_key)
        clock = _parse_clock(str(clock_value)) if clock_value is not None else None
        if clock is None:
            continue
        near = t if has_clock else None
        out.append(_Reading(f"DATE-OBS+{clock_key}", _nearest_day(day, clock[0], near), None,
                            clock[1], "", utc_by_name=True))
        if not has_clock:
            break
    if not has_clock and not out:
        errors.append(Problem(
            f"DATE-OBS '{value}' has no time of day",
            f"DATE-OBS = '{value}' holds a date only and none of {', '.join(_CLOCK_KEYS)} gives "
            "the time of day.", "", True))
    return out, day


def _other_keys(header, day: datetime | None, near: datetime | None, errors: list) -> list:
    out = []
    for key in ("UT-OBS", "UTC-OBS", "DATE-BEG", "DATE-AVG"):
        value = raw(header, key)
        if value is None:
            continue
        mid = key == "DATE-AVG"
        parsed = parse_iso(str(value))
        if parsed is not None and parsed[3]:
            t, offset, precision, _ = parsed
            out.append(_Reading(key, None if mid else t, t if mid else None, precision, offset,
                                utc_by_name=key in ("UT-OBS", "UTC-OBS") and not offset))
            continue
        clock = _parse_clock(str(value)) if not mid else None
        if clock is not None and day is not None:
            out.append(_Reading(key, _nearest_day(day, clock[0], near), None, clock[1], "",
                                utc_by_name=True))
        else:
            errors.append(_unreadable(key, value))
    for key, mid, base in (("MJD-MID", True, _MJD_JD), ("MJD-AVG", True, _MJD_JD),
                           ("MJD-OBS", False, _MJD_JD), ("JD", False, 0.0), ("JD-OBS", False, 0.0)):
        value = number(header, key)
        if value is None:
            if raw(header, key) is not None:
                errors.append(_unreadable(key, raw(header, key)))
            continue
        jd = value + base
        if not 2.4e6 < jd < 2.6e6:  # JD 0-ish placeholders, or an MJD in a JD keyword
            errors.append(_unreadable(key, raw(header, key)))
            continue
        t = _EPOCH + timedelta(days=jd - _JD_EPOCH)
        step = decimal_step(header, key) or 1e-5
        precision = 0.5 * step * 86400.0
        out.append(_Reading(key, None if mid else t, t if mid else None, precision))
    return out


def _ends_exposure(header, profile: str) -> str:
    """Why DATE-OBS is taken as the END of the exposure ('' when it is the start)."""
    if profile == "dwarf":
        return "DWARF telescopes write DATE-OBS at the end of the exposure"
    words = comment(header, "DATE-OBS")
    if _END_WORDS.search(words):
        return f"its comment says '{words.strip()}'"
    return ""


def read_time(header, exptime: float | None, profile: str = "generic") -> TimeReading:
    """The UTC start and mid-exposure of one frame from its header.

    Parameters
    ----------
    header : astropy.io.fits.Header
    exptime : float or None
        Exposure time (s): turns a mid-exposure keyword into the start, an end-of-exposure
        DATE-OBS into the start, and the start into the mid-exposure.
    profile : str
        The writing program (``"dwarf"``: DATE-OBS is the end of the exposure).

    Returns
    -------
    TimeReading
        ``problems`` holds unreadable values (fatal only when no keyword gave a time), a
        coarse MJD/JD (> 1 s), and "no time keyword" when there was none at all.
    """
    errors: list[Problem] = []
    dated, day = _date_obs(header, errors)
    near = dated[0].start if dated else None
    readings = dated + _other_keys(header, day, near, errors)
    note_parts = []
    end_why = _ends_exposure(header, profile) if dated and dated[0].source == "DATE-OBS" else ""
    half = timedelta(seconds=(exptime or 0.0) / 2.0)
    resolved = []
    for r in readings:
        start = r.start
        if r.source == "DATE-OBS" and end_why:
            start = r.start - 2 * half if exptime is not None else None
        elif start is None and r.mid is not None and exptime is not None:
            start = r.mid - half
        resolved.append((r, start))
    usable = [(r, s) for r, s in resolved if s is not None or r.mid is not None]
    if not usable:
        if not errors:
            errors.append(Problem("missing DATE-OBS", "has no time keyword (" + ", ".join(TIME_KEYS)
                                  + ").", "", True))
        return TimeReading(None, None, None, "", "", None, "", tuple(errors))
    problems = [p._replace(fatal=False) for p in errors]
    chosen, start = usable[0]
    if chosen.source == "DATE-OBS" and end_why:
        note_parts.append(f"DATE-OBS is the end of the exposure ({end_why}): start = DATE-OBS - EXPTIME")
    for other, other_start in usable[1:]:
        if start is None or other_start is None:
            continue
        gap = abs((other_start - start).total_seconds())
        if gap <= _AGREE_S + chosen.precision + other.precision:
            continue
        if chosen.offset and other.utc_by_name:
            note_parts.append(f"{chosen.source} had a {chosen.offset} offset; used {other.source} "
                              f"(they differ by {gap:.1f} s)")
            chosen, start = other, other_start
        else:
            note_parts.append(f"{chosen.source} and {other.source} differ by {gap:.1f} s; used "
                              f"{chosen.source}, the first in clinepipe's order")
        break
    if chosen.precision > 1.0:
        problems.append(Problem(
            f"{chosen.source} precision ±{chosen.precision:.0f} s",
            f"the time comes from {chosen.source}, written to ±{chosen.precision:.0f} s only.", ""))
    if start is not None:
        jd_start = jd_of(start)
        jd_mid = jd_of(chosen.mid) if chosen.mid is not None else jd_start + (exptime or 0.0) / 172800.0
    else:  # a mid-exposure time without an exposure time: the mid is known, the start is not
        jd_start, jd_mid = None, jd_of(chosen.mid)
    return TimeReading(start, jd_start, jd_mid, chosen.source, chosen.offset, chosen.precision,
                       "; ".join(note_parts), tuple(problems))
