"""What the pages accept and show: the frame states, page sizes and limits, request values
parsed (odd input becomes None, never an error), and numbers, positions and times formatted.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta, timezone

from clinepipe.finite import finite_or_none

#: the ``export --format csv`` columns, in order: the JSON light curve has exactly these keys
LIGHTCURVE_FIELDS = ("star_id", "ra", "dec", "filter", "jd_mid", "bjd_tdb", "mag", "mag_err",
                     "inst_mag", "inst_mag_err", "zero_point", "airmass", "exptime", "frame",
                     "flags")


#: frame states shown as columns on the nights page, in this order (others, if any, follow)
FRAME_STATES = ("calibrated", "measured", "waiting", "failed", "used", "rejected", "duplicate")


ATTENTION_STATES = ("failed", "waiting")  # files not fully processed: listed with their reason


NOTE_STATES = ("rejected", "duplicate")  # left out on purpose: listed, folded away


STAR_SORTS = ("id", "mag", "var")


STARS_PER_PAGE = 50


NIGHTS_PER_PAGE = 31


MAX_LISTED_FILES = 1000


MIN_VAR_POINTS = 5  # fewest good points before an rms / chi2 is shown


MAX_ID_DIGITS = 18  # fits a signed 64-bit integer: larger "ids" are simply not found


NIGHT_RE = re.compile(r"\d{8}")


def plain(value):
    """Database / numpy scalars as plain JSON values."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
        if not isinstance(value, float):
            return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def parse_id(text: str) -> int | None:
    """A star id from a URL segment: plain digits that fit the database's integers."""
    if text and text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        return int(text)
    return None


def parse_int(text: str | None, default: int, lo: int, hi: int) -> int:
    """A query parameter as an int clamped to ``[lo, hi]``; ``default`` when absent or not an
    integer (odd input from a URL is never an error)."""
    try:
        return min(hi, max(lo, int(text)))
    except (TypeError, ValueError):
        return default


def parse_float(text: str | None) -> float | None:
    """A query parameter as a finite float, None when absent, not a number, or inf/NaN."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def finite_number(value, fmt: str = ".3f", missing: str = "—") -> str:
    """``value`` formatted with ``fmt`` (default 3 decimals), or ``missing`` (an em dash) when it
    is None, NaN or infinite; units are the caller's."""
    value = finite_or_none(value)
    return missing if value is None else format(value, fmt)


def ra_hms(ra) -> str:
    """A right ascension in degrees as ``HHh MMm SS.SSs`` (wrapped to 0-360 deg, rounded to
    0.01 s); an em dash when not a finite number."""
    if finite_or_none(ra) is None:
        return "—"
    centi = round((float(ra) % 360.0) / 15.0 * 3600 * 100)
    h, rest = divmod(centi, 3600 * 100)
    m, cs = divmod(rest, 60 * 100)
    return f"{int(h) % 24:02d}h {int(m):02d}m {cs / 100:05.2f}s"


def dec_dms(dec) -> str:
    """A declination in degrees as ``±DD° MM′ SS.S″`` (rounded to 0.1 arcsec); an em dash when
    not a finite number."""
    if finite_or_none(dec) is None:
        return "—"
    sign = "−" if dec < 0 else "+"
    deci = round(abs(float(dec)) * 3600 * 10)
    d, rest = divmod(deci, 3600 * 10)
    m, ds = divmod(rest, 60 * 10)
    return f"{sign}{int(d):02d}° {int(m):02d}′ {ds / 10:04.1f}″"


def night_label(night: str | None) -> str:
    """A night name ``YYYYMMDD`` shown as ``YYYY-MM-DD``; other text unchanged; a frame without
    a night (its file could not be read) says so."""
    if not night:
        return "no night (file not read)"
    if NIGHT_RE.fullmatch(night):
        return f"{night[:4]}-{night[4:6]}-{night[6:]}"
    return night


def jd_to_utc(jd) -> str:
    """A UTC Julian date (days) as ``YYYY-MM-DD HH:MM UTC``; an em dash when not a finite number
    or out of the datetime range."""
    jd = finite_or_none(jd)
    if jd is None:
        return "—"
    try:
        when = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=jd - 2440587.5)
    except OverflowError:
        return "—"
    return when.strftime("%Y-%m-%d %H:%M UTC")


def catalog_mags(text: str | None) -> list[tuple]:
    """``{"V": [mag, err], ...}`` (JSON) as sorted (band, mag, err) triples; junk → []."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return []
    out = []
    if isinstance(data, dict):
        for band, value in sorted(data.items()):
            if isinstance(value, (list, tuple)) and value:
                out.append((str(band), finite_or_none(value[0]),
                            finite_or_none(value[1]) if len(value) > 1 else None))
            else:
                out.append((str(band), finite_or_none(value), None))
    return out
