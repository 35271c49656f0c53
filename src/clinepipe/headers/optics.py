"""Where the telescope pointed, its pixel scale, and where it stood, from any header style."""

from __future__ import annotations

import math

from clinepipe.headers.coords import parse_angle
from clinepipe.headers.problem import Problem
from clinepipe.headers.values import comment, number, raw

__all__ = ["read_pointing", "read_scale", "read_site", "site_problem"]

_ARCSEC_PER_RAD = 180.0 / math.pi * 3600.0
#: plate scales outside this range (arcsec/px) are placeholders, e.g. astropy's CDELT = 1 deg
_SCALE_RANGE = (0.01, 600.0)
_POINTING_KEYS = (("RA", "DEC"), ("OBJCTRA", "OBJCTDEC"), ("RA_OBJ", "DEC_OBJ"), ("CRVAL1", "CRVAL2"))


def _ra_degrees(header, key: str) -> float:
    value = raw(header, key)
    in_hours = any(w in comment(header, key).lower() for w in ("[h]", "hour"))
    try:
        return float(value) * (15.0 if in_hours else 1.0)  # numbers (and quoted numbers)
    except (TypeError, ValueError):
        return parse_angle(str(value), hours=True)  # sexagesimal strings are hours


def read_pointing(header) -> tuple[float | None, float | None, str]:
    """``(ra, dec, "RA/DEC")``: the pointing in degrees and the keywords it came from.

    RA numbers are degrees unless the comment says hours (DWARF II ``[h]``), RA strings are
    sexagesimal hours; ``CRVAL1/2`` count only with an ``RA---`` axis; ``0, 0`` and
    ``'00 00 00'`` are the "no mount" placeholders of N.I.N.A. and DWARF and are skipped.
    ``(None, None, "")`` when no pair is usable.
    """
    for ra_key, dec_key in _POINTING_KEYS:
        if raw(header, ra_key) is None or raw(header, dec_key) is None:
            continue
        if ra_key == "CRVAL1" and not str(raw(header, "CTYPE1") or "").upper().startswith("RA"):
            continue
        try:
            ra, dec = _ra_degrees(header, ra_key), parse_angle(raw(header, dec_key))
        except ValueError:
            continue
        if (ra == 0.0 and dec == 0.0) or not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
            continue
        return ra, dec, f"{ra_key}/{dec_key}"
    return None, None, ""


def _plausible(scale: float | None) -> bool:
    return scale is not None and _SCALE_RANGE[0] < scale < _SCALE_RANGE[1]


def read_scale(header, binning: int = 1) -> tuple[float | None, str]:
    """``(arcsec per binned pixel, keyword)`` from the first usable of PIXSCALE, SECPIX(1),
    SCALE, IM_SCALE, PLTSCALE, CDELT1 (times the PC matrix), the CD matrix, or FOCALLEN (mm)
    with XPIXSZ (um, binned, as the SBIG FITS extension and every header seen write it) or
    PIXSIZE1 (um, unbinned) times ``binning``. ``(None, "")`` when none is usable."""
    for key in ("PIXSCALE", "SECPIX", "SECPIX1", "SCALE", "IM_SCALE", "PLTSCALE"):
        value = number(header, key)
        if _plausible(value):
            return value, key
    cdelt = number(header, "CDELT1")
    if cdelt is not None:
        pc = [number(header, k) for k in ("PC1_1", "PC1_2", "PC2_1", "PC2_2")]
        det = abs(pc[0] * pc[3] - pc[1] * pc[2]) if None not in pc else 1.0
        scale = abs(cdelt) * math.sqrt(det) * 3600.0
        if _plausible(scale):
            return scale, "CDELT1"
    cd = [number(header, k) for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2")]
    if cd[0] is not None and cd[3] is not None:
        cd = [c or 0.0 for c in cd]
        scale = math.sqrt(abs(cd[0] * cd[3] - cd[1] * cd[2])) * 3600.0
        if _plausible(scale):
            return scale, "CD1_1"
    focal = number(header, "FOCALLEN")
    if focal and focal > 0:
        pixel, key = number(header, "XPIXSZ"), "XPIXSZ"
        if pixel is None and number(header, "PIXSIZE1") is not None:
            pixel, key = number(header, "PIXSIZE1") * binning, "PIXSIZE1"
        if pixel:
            scale = pixel * 1e-3 / focal * _ARCSEC_PER_RAD
            if _plausible(scale):
                return scale, f"FOCALLEN+{key}"
    return None, ""


def _geodetic(x: float, y: float, z: float) -> tuple[float, float, float]:
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    g = EarthLocation.from_geocentric(x, y, z, unit=u.m).to_geodetic()
    return float(g.lat.deg), float(g.lon.wrap_at(180 * u.deg).deg), float(g.height.to_value(u.m))


def read_site(header, profile: str = "generic"):
    """``(lat, lon, elevation_m, source, problems)``: the site the header names, east positive.

    Read from SITELAT/SITELONG, LAT-OBS/LONG-OBS, OBSGEO-B/L(/H), OBSGEO-X/Y/Z, LATITUDE/
    LONGITUD, first usable pair; decimal or sexagesimal. TheSkyX writes SITELONG west-positive
    (its OBSGEO-L says east-positive), so that one is negated. ``0, 0`` is an unset site and is
    skipped; an unreadable value (``48.XXXX``) is a problem, not a failure. Values are for
    checking ``[site]``: the config wins.
    """
    problems = []
    elevation = next((number(header, k) for k in ("SITEELEV", "ALT-OBS", "OBSGEO-H", "ALTITUDE")
                      if number(header, k) is not None and k != "ALTITUDE"), None)
    for lat_key, lon_key in (("SITELAT", "SITELONG"), ("LAT-OBS", "LONG-OBS"),
                             ("OBSGEO-B", "OBSGEO-L"), ("LATITUDE", "LONGITUD")):
        lat_raw, lon_raw = raw(header, lat_key), raw(header, lon_key)
        if lat_raw is None or lon_raw is None:
            continue
        try:
            lat, lon = parse_angle(lat_raw), parse_angle(lon_raw)
        except ValueError:
            bad = lat_key if _not_angle(lat_raw) else lon_key
            value = lat_raw if bad == lat_key else lon_raw
            problems.append(Problem(f"{bad} '{value}' is not an angle",
                                    f"{bad} = '{value}' is not an angle clinepipe reads; the "
                                    "header's site is not checked against [site].", ""))
            continue
        if lat == 0.0 and lon == 0.0:
            continue
        if profile == "thesky" and lon_key == "SITELONG":
            lon = -lon
        lon = (lon + 180.0) % 360.0 - 180.0
        if -90.0 <= lat <= 90.0:
            return lat, lon, elevation, f"{lat_key}/{lon_key}", problems
    xyz = [number(header, k) for k in ("OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z")]
    if None not in xyz and any(xyz):
        lat, lon, height = _geodetic(*xyz)
        return lat, lon, height, "OBSGEO-X/Y/Z", problems
    return None, None, elevation, "", problems


def _not_angle(value) -> bool:
    try:
        parse_angle(value)
    except ValueError:
        return True
    return False


def site_problem(lat: float | None, lon: float | None, source: str, config_lat: float,
                 config_lon: float) -> Problem | None:
    """A problem when the header's site is more than 1 deg from ``[site]``, or is ``[site]``
    with the other sign of longitude (the common west-positive mistake); else None."""
    if lat is None or lon is None:
        return None
    fix_lon = f"[site] longitude = {lon:.4f}"
    dlon = (lon - config_lon + 180.0) % 360.0 - 180.0
    if abs(lat - config_lat) <= 1.0 and abs(config_lon) > 1.0 and abs(lon + config_lon) <= 1.0:
        return Problem("site longitude sign", (
            f"the header's {source} puts the site at longitude {lon:+.4f} but [site] says "
            f"{config_lon:+.4f}: the same place with the other sign (east is positive in "
            "clinepipe.toml)."), fix_lon)
    # great-circle distance between the two sites
    p1, p2, d = math.radians(lat), math.radians(config_lat), math.radians(dlon)
    cos_sep = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(d)
    separation = math.degrees(math.acos(max(-1.0, min(1.0, cos_sep))))
    if separation > 1.0:
        return Problem("site differs from [site]", (
            f"the header's {source} puts the site at {lat:+.4f} {lon:+.4f}, {separation:.1f} deg "
            f"from [site] ({config_lat:+.4f} {config_lon:+.4f}); the config is used."), "")
    return None
