"""Time and geometry per measurement: mid-exposure JD, BJD_TDB, airmass.

Airmass uses local sidereal time from the IAU 1982 GMST formula with UT1 ≈ UTC (error below a
second of time, far below what airmass needs) and the J2000 position precessed to the date
(IAU 1976 angles: without it a 2026 altitude is off by up to 0.35°, 0.02 in airmass at 30°);
nutation and aberration (< 0.01°) are left out. BJD_TDB takes UT1 ≈ UTC too, so nothing is
downloaded or read from the IERS tables at run time.
"""

from __future__ import annotations

import numpy as np

__all__ = ["airmass", "bjd_tdb", "altitude"]


def _gmst_deg(jd_utc):
    t = (np.asarray(jd_utc, float) - 2451545.0)
    return np.mod(280.46061837 + 360.98564736629 * t, 360.0)


def _precess_to_date(ra_deg, dec_deg, jd):
    """J2000 RA, Dec (deg) precessed to the equator and equinox of ``jd`` (IAU 1976; Meeus,
    *Astronomical Algorithms*, eq. 21.4), in radians."""
    t = (np.asarray(jd, float) - 2451545.0) / 36525.0
    arcsec = np.pi / (180.0 * 3600.0)
    zeta = (2306.2181 * t + 0.30188 * t**2 + 0.017998 * t**3) * arcsec
    z = (2306.2181 * t + 1.09468 * t**2 + 0.018203 * t**3) * arcsec
    theta = (2004.3109 * t - 0.42665 * t**2 - 0.041833 * t**3) * arcsec
    ra0 = np.radians(np.asarray(ra_deg, float))
    dec0 = np.radians(np.asarray(dec_deg, float))
    a = np.cos(dec0) * np.sin(ra0 + zeta)
    b = np.cos(theta) * np.cos(dec0) * np.cos(ra0 + zeta) - np.sin(theta) * np.sin(dec0)
    c = np.sin(theta) * np.cos(dec0) * np.cos(ra0 + zeta) + np.cos(theta) * np.sin(dec0)
    return np.arctan2(a, b) + z, np.arcsin(np.clip(c, -1.0, 1.0))


def altitude(ra_deg, dec_deg, jd_utc, latitude_deg, longitude_deg):
    """Altitude (deg, geometric) of J2000 positions at UTC Julian dates for a site (east
    longitude positive)."""
    ra, dec = _precess_to_date(ra_deg, dec_deg, jd_utc)
    lst = np.radians(_gmst_deg(jd_utc) + longitude_deg)
    ha = lst - ra
    lat = np.radians(latitude_deg)
    sin_alt = np.sin(dec) * np.sin(lat) + np.cos(dec) * np.cos(lat) * np.cos(ha)
    return np.degrees(np.arcsin(np.clip(sin_alt, -1.0, 1.0)))


def airmass(ra_deg, dec_deg, jd_utc, latitude_deg, longitude_deg):
    """Airmass (Pickering 2002, good to the horizon); NaN below the horizon."""
    alt = altitude(ra_deg, dec_deg, jd_utc, latitude_deg, longitude_deg)
    with np.errstate(invalid="ignore"):
        x = 1.0 / np.sin(np.radians(alt + 244.0 / (165.0 + 47.0 * np.abs(alt) ** 1.1)))
    return np.where(alt > 0, x, np.nan)


#: metres per astronomical unit, speed of light (m/s), seconds per day
_AU_M = 149597870700.0
_C_M_S = 299792458.0
_DAY_S = 86400.0


def bjd_tdb(jd_utc, ra_deg, dec_deg, latitude_deg, longitude_deg, elevation_m):
    """Barycentric Julian date (TDB) of UTC Julian dates for stars at (ra, dec), one site.

    ``BJD_TDB = JD_TDB + n . r_obs / c``, computed with erfa as astropy's
    ``Time.light_travel_time(kind="barycentric", ephemeris="builtin")`` does: ``n`` the star's
    ICRS unit vector, ``r_obs`` the observatory's barycentric position = the Earth's
    (``erfa.epv00`` at TDB) + the site's geocentric position (WGS84) rotated from ITRS to
    GCRS (``erfa.c2t06a``); TDB - TT from ``erfa.dtdb`` with the site, as ``Time.tdb``.
    UT1 is taken as UTC and polar motion as zero, so no IERS table is read (astropy reads
    one, ~1 s per process): that moves the site by < 1 km, < 3 us of light time, below
    the resolution of a float64 JD (~40 us). Each distinct date is computed once (all the
    stars of a frame share one). Arrays broadcast; NaN inputs give NaN.
    """
    import erfa
    from astropy.time.utils import day_frac

    jd, ra, dec = np.broadcast_arrays(np.asarray(jd_utc, float), np.asarray(ra_deg, float),
                                      np.asarray(dec_deg, float))
    out = np.full(jd.shape, np.nan)
    ok = np.isfinite(jd) & np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return out
    dates, which = np.unique(jd[ok], return_inverse=True)
    lon = np.radians(float(longitude_deg))
    site = erfa.gd2gc(1, lon, np.radians(float(latitude_deg)), float(elevation_m))  # m, ITRS
    utc1, utc2 = day_frac(dates, 0.0)
    tt1, tt2 = erfa.taitt(*erfa.utctai(utc1, utc2))
    ut = day_frac(utc1 - 0.5, utc2)[1]
    dtdb = erfa.dtdb(tt1, tt2, ut, lon, np.hypot(site[0], site[1]) / 1e3, site[2] / 1e3)
    tdb1, tdb2 = tt1, tt2 + dtdb / _DAY_S
    _, pvb = erfa.epv00(tdb1, tdb2)
    c2t = erfa.c2t06a(tt1, tt2, utc1, utc2, 0.0, 0.0)  # UT1 ~ UTC, no polar motion
    r_obs = pvb["p"] * _AU_M + np.einsum("kji,j->ki", c2t, site)  # metres, BCRS axes
    ra_rad, dec_rad = np.radians(ra[ok]), np.radians(dec[ok])
    cos_dec = np.cos(dec_rad)
    n = np.stack([cos_dec * np.cos(ra_rad), cos_dec * np.sin(ra_rad), np.sin(dec_rad)], axis=-1)
    ltt = np.einsum("ki,ki->k", n, r_obs[which]) / _C_M_S
    out[ok] = tdb1[which] + (tdb2[which] + ltt / _DAY_S)
    return out
