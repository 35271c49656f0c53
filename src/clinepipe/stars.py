"""Stable star identities: each detection is matched by position to the growing star list."""

from __future__ import annotations

import numpy as np

__all__ = ["assign_stars"]


def assign_stars(ra, dec, known_ra, known_dec, radius_arcsec: float):
    """Match detections to known stars.

    Parameters
    ----------
    ra, dec : array_like (n,)
        Detected positions (deg).
    known_ra, known_dec : array_like (m,)
        The star list near the field (deg).
    radius_arcsec : float
        Largest separation at which a detection is the same star.

    Returns
    -------
    index : ndarray of int (n,)
        Index into the known stars, or -1 for a detection that is a new star. Each known
        star takes at most one detection (the nearest); the others become -1 only when they
        are farther than the radius from every other star, otherwise they are dropped as
        duplicates (index -2), so a star never gets two measurements on one frame.
    """
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    index = np.full(ra.size, -1, dtype=int)
    if ra.size == 0:
        return index
    known_ra = np.asarray(known_ra, float)
    det = SkyCoord(ra * u.deg, dec * u.deg)
    if known_ra.size:
        known = SkyCoord(known_ra * u.deg, np.asarray(known_dec, float) * u.deg)
        idx, sep, _ = det.match_to_catalog_sky(known)
        close = sep.to_value(u.arcsec) <= radius_arcsec
        # nearest detection wins a known star; the rest that hit the same star are duplicates
        order = np.argsort(sep.to_value(u.arcsec), kind="stable")
        taken = np.zeros(known_ra.size, dtype=bool)
        cand = order[close[order]]
        first = np.zeros(cand.size, dtype=bool)
        _, first_pos = np.unique(idx[cand], return_index=True)
        first[first_pos] = True
        index[cand[first]] = idx[cand[first]]
        index[cand[~first]] = -2
        taken[idx[cand[first]]] = True
    # new stars closer than the radius to each other on one frame are one blended star
    new = np.flatnonzero(index == -1)
    if new.size > 1:
        sub = det[new]
        _, sep2, _ = sub.match_to_catalog_sky(sub, nthneighbor=2)
        crowded = sep2.to_value(u.arcsec) <= radius_arcsec
        if crowded.any():
            idx2, _, _ = sub.match_to_catalog_sky(sub, nthneighbor=2)
            # keep the lower index of each close pair
            drop = crowded & (idx2 < np.arange(new.size))
            index[new[drop]] = -2
    return index
