"""Angles and sky positions as people and FITS headers write them.

A position typed by a user is ``"RA DEC"`` in degrees or sexagesimal (see the interface:
``"31.0428 46.6879"``, ``"02 04 10.26 +46 41 16.3"``, ``"02:04:10.26 +46:41:16.3"``,
``"02h04m10.26s +46d41m16.3s"``). Headers use the same forms, one angle per keyword.
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_angle", "parse_dec", "parse_position", "parse_ra"]

# One sexagesimal angle: sign, then 2 or 3 fields split by blanks, colons or h/d/m/s/°'" marks.
_SEXA = re.compile(
    r"""^\s*(?P<sign>[+-])?\s*(?P<a>\d+(?:\.\d*)?)\s*[hd:°\s]\s*(?P<b>\d+(?:\.\d*)?)
        (?:\s*[m:'′\s]\s*(?P<c>\d+(?:\.\d*)?)\s*[s"″]?)?\s*[m'′]?\s*$""",
    re.VERBOSE | re.IGNORECASE)
_DECIMAL = re.compile(r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*(?:[d°h])?\s*$")


def parse_angle(text, *, hours: bool = False) -> float:
    """One angle in degrees.

    Parameters
    ----------
    text : str or float
        Decimal (``"84.0667"``, ``84.0667``, ``"-00.000000"``) or sexagesimal with blanks,
        colons or unit letters (``"05 35 17"``, ``"-006:32:11.02"``, ``"02h04m10.26s"``,
        ``"+46d41m16.3s"``). A decimal followed by ``h`` is in hours.
    hours : bool
        Sexagesimal fields (and a bare decimal) are hours: the result is multiplied by 15.

    Returns
    -------
    float
        Degrees.

    Raises
    ------
    ValueError
        When ``text`` is not an angle (e.g. a redacted ``"48.XXXX"``).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not an angle")
        return value * 15.0 if hours else value
    s = str(text).strip()  # a bool gives 'True': not an angle
    if _DECIMAL.match(s):
        unit = s[-1].lower() if s and s[-1].lower() in "d°h" else ""
        value = float(s.rstrip("dDhH° "))
        in_hours = unit == "h" or (hours and unit == "")
        return value * 15.0 if in_hours else value
    m = _SEXA.match(s)
    if not m:
        raise ValueError(f"{s!r} is not an angle")
    a, b, c = float(m["a"]), float(m["b"]), float(m["c"] or 0.0)
    if b >= 60 or c >= 60:
        raise ValueError(f"{s!r} has minutes or seconds of 60 or more")
    value = a + b / 60.0 + c / 3600.0
    if "h" in s.lower():
        hours = True
    value = value * 15.0 if hours else value
    return -value if m["sign"] == "-" else value


def _split_position(text: str) -> tuple[str, str]:
    s = " ".join(str(text).replace(",", " ").split())
    # the declination starts at the first sign after the RA, or after an even split of fields
    m = re.search(r"\s([+-])", s)
    if m:
        return s[: m.start()], s[m.start() + 1:]
    parts = s.split(" ")
    if len(parts) % 2:
        raise ValueError(f"'{text}' is not 'RA DEC': give the declination a sign (+ or -)")
    half = len(parts) // 2
    return " ".join(parts[:half]), " ".join(parts[half:])


def parse_position(text: str) -> tuple[float, float]:
    """``"RA DEC"`` as typed by a user, in degrees (ICRS as given).

    Parameters
    ----------
    text : str
        Two decimals in degrees (``"31.0428 46.6879"``) or two sexagesimal angles, RA in hours
        (``"02 04 10.26 +46 41 16.3"``, ``"02:04:10.26 +46:41:16.3"``,
        ``"02h04m10.26s +46d41m16.3s"``).

    Returns
    -------
    (float, float)
        RA in [0, 360) and Dec in [-90, 90], degrees.

    Raises
    ------
    ValueError
        One sentence saying what is wrong with ``text``.
    """
    ra_text, dec_text = _split_position(text)
    sexagesimal = not (_DECIMAL.match(ra_text) and _DECIMAL.match(dec_text))
    try:
        ra = parse_angle(ra_text, hours=sexagesimal)
        dec = parse_angle(dec_text)
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a position 'RA DEC': {exc}") from None
    if not 0.0 <= ra < 360.0 or not -90.0 <= dec <= 90.0:
        raise ValueError(f"'{text}' is outside the sky (RA 0-360 deg or 0-24 h, Dec -90 to +90)")
    return ra, dec


def parse_ra(text) -> float:
    """A right ascension in degrees, as a table column writes it: decimal degrees
    (``"31.0428"``) or sexagesimal hours (``"02 04 10.26"``, ``"02:04:10.26"``,
    ``"02h04m10.26s"``). ValueError (one sentence) when it is neither or outside 0-360 deg."""
    ra = parse_angle(text, hours=not _DECIMAL.match(str(text)))
    if not 0.0 <= ra < 360.0:
        raise ValueError(f"RA '{text}' is outside 0-360 degrees (0-24 h)")
    return ra


def parse_dec(text) -> float:
    """A declination in degrees, decimal or sexagesimal (``"+46 41 16.3"``, ``"+46:41:16.3"``,
    ``"+46d41m16.3s"``). ValueError (one sentence) when it is neither or outside -90..+90."""
    dec = parse_angle(text)
    if not -90.0 <= dec <= 90.0:
        raise ValueError(f"Dec '{text}' is outside -90..+90 degrees")
    return dec
