"""Cross-matching positions on the sky: nearest unambiguous catalog counterpart, every pair within a radius."""

from __future__ import annotations

import numpy as np


def match_catalog(ra, dec, cat_ra, cat_dec, radius_arcsec: float):
    """Match positions to a catalog, one to one, rejecting ambiguous pairs.

    Returns
    -------
    index : ndarray of int (n,)
        Catalog index of each position's counterpart, or -1.
    separation : ndarray of float (n,)
        Separation (arcsec) to that counterpart (NaN when unmatched).

    A pair is kept only when each is the other's nearest neighbour, within the radius, and
    no second catalog star lies within the radius (the two could not be told apart).

    Only pairs closer than the radius can decide this, so they are all that is looked for
    (:func:`pairs_within`: a sweep in declination, separations by the Vincenty formula as
    astropy computes them); the result is what ``SkyCoord.match_to_catalog_sky`` nearest
    neighbours give, without its KD-trees and coordinate objects. Catalog rows without a
    finite position are never matched.
    """
    ra = np.asarray(ra, float).ravel()
    dec = np.asarray(dec, float).ravel()
    n = ra.size
    index = np.full(n, -1, dtype=int)
    separation = np.full(n, np.nan)
    cat_ra = np.asarray(cat_ra, float).ravel()
    cat_dec = np.asarray(cat_dec, float).ravel()
    if n == 0 or cat_ra.size == 0:
        return index, separation
    i, j, sep = pairs_within(ra, dec, cat_ra, cat_dec, radius_arcsec)
    if i.size == 0:
        return index, separation
    near_cat, near_sep, count = nearest_pairs(i, j, sep, n)
    near_src, _, _ = nearest_pairs(j, i, sep, cat_ra.size)
    src = np.flatnonzero(count == 1)  # exactly one catalog star within the radius ...
    mutual = near_src[near_cat[src]] == src  # ... which has no closer position
    src = src[mutual]
    index[src] = near_cat[src]
    separation[src] = near_sep[src]
    return index, separation


_RAD_TO_ARCSEC = 180.0 * 3600.0 / np.pi

def pairs_within(ra1, dec1, ra2, dec2, radius_arcsec: float):
    """Every pair (i, j) of position ``i`` of the first list and ``j`` of the second closer
    than (or at) ``radius_arcsec``; non-finite positions take no part.

    The second list is sorted by declination and each first position looks only at the
    band within the radius of its declination, so the work grows with the pairs in those
    bands, not with the product of the lists.

    Returns
    -------
    i, j : ndarray of int
        Indices into the first and second lists.
    sep : ndarray of float
        Separations, arcsec (Vincenty formula).
    """
    ra1, dec1 = np.asarray(ra1, float).ravel(), np.asarray(dec1, float).ravel()
    ra2, dec2 = np.asarray(ra2, float).ravel(), np.asarray(dec2, float).ravel()
    empty = np.zeros(0, dtype=np.intp)
    ok1 = np.flatnonzero(np.isfinite(ra1) & np.isfinite(dec1))
    ok2 = np.flatnonzero(np.isfinite(ra2) & np.isfinite(dec2))
    radius = float(radius_arcsec)
    if ok1.size == 0 or ok2.size == 0 or not radius >= 0:
        return empty, empty, np.zeros(0)
    ok2 = ok2[np.argsort(dec2[ok2], kind="stable")]
    sorted_dec = dec2[ok2]
    band = radius / 3600.0 * (1.0 + 1e-9) + 1e-12  # |d dec| <= separation
    lo = np.searchsorted(sorted_dec, dec1[ok1] - band, side="left")
    hi = np.searchsorted(sorted_dec, dec1[ok1] + band, side="right")
    count = hi - lo
    total = int(count.sum())
    if total == 0:
        return empty, empty, np.zeros(0)
    first = np.repeat(ok1, count)
    start = np.repeat(lo - (np.cumsum(count) - count), count)  # position in the sorted list
    second = ok2[start + np.arange(total)]
    sep = separation_arcsec(ra2[second], dec2[second], ra1[first], dec1[first])
    close = sep <= radius
    return first[close], second[close], sep[close]


def separation_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular separation (deg) of positions in degrees; :func:`separation_arcsec` / 3600."""
    return separation_arcsec(ra1, dec1, ra2, dec2) / 3600.0


def nearest_pairs(a: np.ndarray, b: np.ndarray, sep: np.ndarray, n: int):
    """For each of ``n`` items of the ``a`` side of the pairs ``(a, b, sep)``: its nearest
    ``b`` (-1 if none), that separation (NaN if none) and how many ``b`` it pairs with.
    Ties in separation go to the smaller ``b``."""
    order = np.lexsort((b, sep, a))
    a_sorted = a[order]
    head = np.ones(a_sorted.size, dtype=bool)
    head[1:] = a_sorted[1:] != a_sorted[:-1]
    best = order[head]
    nearest = np.full(n, -1, dtype=np.intp)
    nearest_sep = np.full(n, np.nan)
    nearest[a[best]] = b[best]
    nearest_sep[a[best]] = sep[best]
    return nearest, nearest_sep, np.bincount(a, minlength=n)


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular separation (arcsec) of positions in degrees, arrays broadcast.

    The Vincenty formula, as astropy's ``angular_separation`` computes it: exact at every
    separation, unlike the haversine near 180° or the cosine law near 0°. The one
    implementation for the whole package.
    """
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, float)) for v in (ra1, dec1, ra2, dec2))
    sdlon, cdlon = np.sin(lon2 - lon1), np.cos(lon2 - lon1)
    slat1, slat2, clat1, clat2 = np.sin(lat1), np.sin(lat2), np.cos(lat1), np.cos(lat2)
    num1 = clat2 * sdlon
    num2 = clat1 * slat2 - slat1 * clat2 * cdlon
    denominator = slat1 * slat2 + clat1 * clat2 * cdlon
    return np.arctan2(np.hypot(num1, num2), denominator) * _RAD_TO_ARCSEC


