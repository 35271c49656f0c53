"""Times, altitudes and airmass for the simulator, without network or IERS tables.

Altitudes are geometric (no refraction): the J2000 (FK5 ~ ICRS) position is precessed and
nutated to the true equator of date (IAU 2006/2000A via erfa), the hour angle comes from the
Greenwich apparent sidereal time with UT1 = UTC, and ``airmass = 1 / sin(altitude)``
(plane-parallel sec z). This agrees with astropy ``AltAz(pressure=0).secz`` to ~1e-4.
"""

from __future__ import annotations

import datetime as _dt
import math

import erfa
import numpy as np

JD_UNIX_EPOCH = 2440587.5
MJD0 = 2400000.5
TT_MINUS_UTC = (37.0 + 32.184) / 86400.0  # days, valid since 2017
_UTC = _dt.timezone.utc


def ms_to_jd(ms) -> np.ndarray | float:
    """UTC Julian date from integer milliseconds since 1970-01-01 UTC (no leap seconds)."""
    return JD_UNIX_EPOCH + np.asarray(ms, dtype=np.float64) / 86_400_000.0


def ms_to_isot(ms: int) -> str:
    """'YYYY-MM-DDThh:mm:ss.sss' (TheSkyX DATE-OBS) of integer ms since 1970 UTC."""
    ms = int(ms)
    dt = _dt.datetime(1970, 1, 1, tzinfo=_UTC) + _dt.timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}"


def date_to_ms(date: _dt.date, hours_utc: float = 0.0) -> int:
    """Integer ms since 1970 of ``date`` at ``hours_utc`` UTC."""
    dt = _dt.datetime(date.year, date.month, date.day, tzinfo=_UTC)
    return int(round(dt.timestamp() * 1000 + hours_utc * 3_600_000))


def parse_date(text: str) -> _dt.date:
    """A calendar date from ``YYYY-MM-DD`` or ``YYYYMMDD`` (the night names); raises ValueError
    for anything else."""
    text = str(text).strip()
    if len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return _dt.date.fromisoformat(text)


def _unit_vectors(ra_deg, dec_deg) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _altitude_of_vectors(jd_utc, vec_icrs, lat_deg, lon_deg) -> np.ndarray:
    """Geometric altitude (deg) at each UTC JD of the direction(s) ``vec_icrs`` (..., 3)."""
    jd = np.atleast_1d(np.asarray(jd_utc, dtype=np.float64))
    d2 = jd - MJD0
    tt2 = d2 + TT_MINUS_UTC
    rnpb = erfa.pnm06a(MJD0, tt2)                      # (n, 3, 3) ICRS -> true equator of date
    gast = erfa.gst06a(MJD0, d2, MJD0, tt2)            # rad, UT1 = UTC
    v = np.einsum("nij,nj->ni", rnpb, np.broadcast_to(vec_icrs, (jd.size, 3)))
    ra = np.arctan2(v[:, 1], v[:, 0])
    dec = np.arcsin(np.clip(v[:, 2], -1, 1))
    ha = gast + math.radians(lon_deg) - ra
    lat = math.radians(lat_deg)
    sin_alt = math.sin(lat) * np.sin(dec) + math.cos(lat) * np.cos(dec) * np.cos(ha)
    return np.degrees(np.arcsin(np.clip(sin_alt, -1, 1)))


def altitude(jd_utc, ra_deg: float, dec_deg: float, lat_deg: float, lon_deg: float) -> np.ndarray:
    """Geometric altitude (deg) of a J2000 position at UTC Julian date(s)."""
    return _altitude_of_vectors(jd_utc, _unit_vectors(ra_deg, dec_deg), lat_deg, lon_deg)


def sun_altitude(jd_utc, lat_deg: float, lon_deg: float) -> np.ndarray:
    """Geometric altitude (deg) of the Sun (geocentric direction from erfa.epv00)."""
    jd = np.atleast_1d(np.asarray(jd_utc, dtype=np.float64))
    pvh, _ = erfa.epv00(MJD0, jd - MJD0 + TT_MINUS_UTC)
    sun = -pvh["p"]
    sun = sun / np.linalg.norm(sun, axis=1, keepdims=True)
    return _altitude_of_vectors(jd, sun, lat_deg, lon_deg)


def airmass(alt_deg) -> np.ndarray:
    """Plane-parallel airmass sec(z) = 1 / sin(altitude)."""
    return 1.0 / np.sin(np.radians(alt_deg))


def observing_window(evening: _dt.date, ra_deg: float, dec_deg: float, lat_deg: float,
                     lon_deg: float, min_alt: float, sun_max_alt: float,
                     step_s: int = 60) -> tuple[int, int, int]:
    """(dark_start_ms, dark_end_ms, twilight_ms) of the night beginning on local ``evening``.

    The window is the longest run of minutes, from local noon to the next local noon, with
    the Sun below ``sun_max_alt`` and the field above ``min_alt``; ``twilight_ms`` is when the
    Sun first reaches -4 deg in the evening (for twilight flats).
    """
    noon = date_to_ms(evening, 12.0 - lon_deg / 15.0) // 60_000 * 60_000  # whole minute
    ms = noon + np.arange(0, 86_400_000, step_s * 1000, dtype=np.int64)
    jd = ms_to_jd(ms)
    sun = sun_altitude(jd, lat_deg, lon_deg)
    alt = altitude(jd, ra_deg, dec_deg, lat_deg, lon_deg)
    good = (sun < sun_max_alt) & (alt >= min_alt)
    if not good.any():
        raise ValueError(f"the field (RA {ra_deg}, Dec {dec_deg}) is never above {min_alt} deg "
                         f"in the dark on the night of {evening.isoformat()}")
    # longest run of consecutive good minutes
    edges = np.diff(np.concatenate([[0], good.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    k = int(np.argmax(ends - starts))
    below = np.flatnonzero(sun < -4.0)
    twilight = int(ms[below[0]]) if below.size else int(ms[starts[k]]) - 3_600_000
    return int(ms[starts[k]]), int(ms[ends[k] - 1]), twilight


AU_LIGHT_DAYS = 499.004783836 / 86400.0  # light travel time over 1 au (d)


def bjd_tdb(jd_utc, ra_deg: float, dec_deg: float) -> np.ndarray:
    """Barycentric Julian date (TDB) of UTC JD(s) for a star at J2000 ``ra_deg, dec_deg``.

    BJD_TDB = JD_UTC + (TT - UTC) + (r_earth . n) / c, with the Earth's barycentric position
    from erfa.epv00. TDB - TT (< 1.7 ms) and the observer's offset from the geocentre
    (< 21 ms) are left out: both are far below a transit's timing error.
    """
    jd = np.atleast_1d(np.asarray(jd_utc, dtype=np.float64))
    _, pvb = erfa.epv00(MJD0, jd - MJD0 + TT_MINUS_UTC)
    toward = _unit_vectors(ra_deg, dec_deg)
    return jd + TT_MINUS_UTC + (pvb["p"] @ toward) * AU_LIGHT_DAYS
