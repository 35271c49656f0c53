"""Time and geometry per measurement: mid-exposure JD, BJD_TDB, airmass.

Airmass uses local sidereal time from the IAU 1982 GMST formula with UT1 ≈ UTC (error below a
second of time, far below what airmass needs), so nothing is downloaded at run time.
"""

from __future__ import annotations

import numpy as np

__all__ = ["airmass", "bjd_tdb", "altitude"]


def _gmst_deg(jd_utc):
    t = (np.asarray(jd_utc, float) - 2451545.0)
    return np.mod(280.46061837 + 360.98564736629 * t, 360.0)


def altitude(ra_deg, dec_deg, jd_utc, latitude_deg, longitude_deg):
    """Altitude (deg) of positions at UTC Julian dates for a site (east longitude positive)."""
    lst = _gmst_deg(jd_utc) + longitude_deg
    ha = np.radians(lst - np.asarray(ra_deg, float))
    dec = np.radians(np.asarray(dec_deg, float))
    lat = np.radians(latitude_deg)
    sin_alt = np.sin(dec) * np.sin(lat) + np.cos(dec) * np.cos(lat) * np.cos(ha)
    return np.degrees(np.arcsin(np.clip(sin_alt, -1.0, 1.0)))


def airmass(ra_deg, dec_deg, jd_utc, latitude_deg, longitude_deg):
    """Airmass (Pickering 2002, good to the horizon); NaN below the horizon."""
    alt = altitude(ra_deg, dec_deg, jd_utc, latitude_deg, longitude_deg)
    with np.errstate(invalid="ignore"):
        x = 1.0 / np.sin(np.radians(alt + 244.0 / (165.0 + 47.0 * np.abs(alt) ** 1.1)))
    return np.where(alt > 0, x, np.nan)


def bjd_tdb(jd_utc, ra_deg, dec_deg, latitude_deg, longitude_deg, elevation_m):
    """Barycentric Julian date (TDB) of UTC Julian dates for stars at (ra, dec), one site.

    Uses astropy's built-in ephemeris (no download). Arrays broadcast.
    """
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers
    import astropy.units as u

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    site = EarthLocation.from_geodetic(longitude_deg * u.deg, latitude_deg * u.deg,
                                       elevation_m * u.m)
    t = Time(np.asarray(jd_utc, float), format="jd", scale="utc", location=site)
    target = SkyCoord(np.asarray(ra_deg, float) * u.deg, np.asarray(dec_deg, float) * u.deg)
    ltt = t.light_travel_time(target, kind="barycentric", ephemeris="builtin")
    return (t.tdb + ltt).jd
