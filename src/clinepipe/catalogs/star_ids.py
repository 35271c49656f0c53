"""Stable star identities: each detection is matched by position to the growing star list."""

from __future__ import annotations

import numpy as np

__all__ = ["assign_stars", "identity_radius"]


def identity_radius(match_radius_arcsec: float, pixel_scale_arcsec: float | None) -> float:
    """The radius (arcsec) within which a detection is a known star on a frame of this scale.

    ``[stars] match_radius`` (2") suits this observatory's 1"/px frames; on a wide field
    (10"/px) the same star's measured positions differ by a few arcsec (centroid and plate
    solution errors of a few tenths of a pixel), and a fixed 2" splits it into several stars.
    Two stars closer than one pixel are one blended source on any frame, so the radius is
    never smaller than one pixel.
    """
    if pixel_scale_arcsec is None or not np.isfinite(pixel_scale_arcsec):
        return float(match_radius_arcsec)
    return max(float(match_radius_arcsec), float(pixel_scale_arcsec))


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
    from clinepipe.catalogs.match import nearest_pairs, pairs_within

    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    index = np.full(ra.size, -1, dtype=int)
    if ra.size == 0:
        return index
    known_ra = np.asarray(known_ra, float)
    # Only pairs within the radius decide anything, so only those are looked for
    # (calibrate.pairs_within: Vincenty separations, as SkyCoord matching computes them).
    if known_ra.size:
        i, j, sep = pairs_within(ra, dec, known_ra, np.asarray(known_dec, float), radius_arcsec)
        near, near_sep, _ = nearest_pairs(i, j, sep, ra.size)
        # nearest detection wins a known star; the rest that hit the same star are duplicates
        cand = np.flatnonzero(near >= 0)
        cand = cand[np.argsort(near_sep[cand], kind="stable")]
        first = np.zeros(cand.size, dtype=bool)
        _, first_pos = np.unique(near[cand], return_index=True)
        first[first_pos] = True
        index[cand[first]] = near[cand[first]]
        index[cand[~first]] = -2
    # new stars closer than the radius to each other on one frame are one blended star
    new = np.flatnonzero(index == -1)
    if new.size > 1:
        i, j, sep = pairs_within(ra[new], dec[new], ra[new], dec[new], radius_arcsec)
        other = i != j
        near, _, _ = nearest_pairs(i[other], j[other], sep[other], new.size)
        # keep the lower index of each close pair
        drop = (near >= 0) & (near < np.arange(new.size))
        index[new[drop]] = -2
    return index
