"""The celestial WCS of a frame: read from its header, pixel <-> sky, pixel scale, match residuals."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

log = logging.getLogger(__name__)


def header_wcs(header) -> WCS | None:
    """The celestial WCS of a FITS header, or None.

    TheSkyX's TAN with a CD matrix (with its deprecated ``RADECSYS``), PC/CDELT (or CROTA2)
    and TAN-SIP headers are understood; FITSFixedWarning chatter is silenced.

    A header without a celestial WCS (no ``CTYPE1``/``CTYPE2``, or non-celestial axes) gives
    None. A *broken* celestial WCS -- no pixel scale at all (no CD, PC or CDELT), an all-zero
    CD matrix (wcslib would silently turn either into 1 degree/pixel), a singular or
    non-finite matrix, a non-finite reference point, or one that cannot transform the image
    centre -- also gives None, with a logged warning naming the cause: to the pipeline both
    mean "no usable WCS, plate-solve the frame", which the caller reports with the file name.

    Parameters
    ----------
    header : astropy.io.fits.Header or dict-like
        The image header.

    Returns
    -------
    astropy.wcs.WCS or None
        A two-axis celestial WCS (SIP distortion kept).
    """
    if header is None:
        return None
    if not isinstance(header, fits.Header):
        header = fits.Header(dict(header))
    if "CTYPE1" not in header or "CTYPE2" not in header:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, relax=True)
            if not wcs.has_celestial:
                return None
            if wcs.naxis != 2:
                wcs = wcs.celestial
            matrix = wcs.pixel_scale_matrix
            reason = None
            cd = [header[k] for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2") if k in header]
            scale_keys = ("CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2")
            if not cd and not any(k in header for k in scale_keys):
                reason = "no pixel scale (no CD, PC or CDELT)"  # wcslib would assume 1 deg/px
            elif cd and not any(cd):
                reason = "all-zero CD matrix"  # wcslib would replace it by 1 deg/px
            elif not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-20:
                reason = "singular or non-finite pixel matrix"
            elif not np.all(np.isfinite(wcs.wcs.crval)) or not np.all(np.isfinite(wcs.wcs.crpix)):
                reason = "non-finite reference point"
            else:
                nx = header.get("NAXIS1", 2 * wcs.wcs.crpix[0])
                ny = header.get("NAXIS2", 2 * wcs.wcs.crpix[1])
                centre = wcs.all_pix2world([[(nx - 1) / 2.0, (ny - 1) / 2.0]], 0)
                if not np.all(np.isfinite(centre)):
                    reason = "cannot transform the image centre"
    except Exception as exc:  # astropy raises many kinds for malformed WCS keywords
        reason = f"{type(exc).__name__}: {exc}"
    if reason:
        log.warning("ignoring a broken WCS in the header (%s)", reason)
        return None
    return wcs


def pixel_to_sky(wcs: WCS | None, x0, y0) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions of 0-based pixel positions.

    Parameters
    ----------
    wcs : astropy.wcs.WCS or None
        Celestial WCS (SIP included); None gives NaN.
    x0, y0 : array_like
        Pixels, 0-based.

    Returns
    -------
    ra, dec : numpy.ndarray
        Degrees (in the WCS's frame, ICRS/FK5 J2000 for our files).
    """
    x0 = np.asarray(x0, dtype=np.float64)
    y0 = np.asarray(y0, dtype=np.float64)
    if wcs is None or x0.size == 0:
        nan = np.full(np.broadcast(x0, y0).shape, np.nan)
        return nan, nan.copy()
    world = wcs.all_pix2world(x0, y0, 0)
    ra, dec = world[wcs.wcs.lng], world[wcs.wcs.lat]  # in case the header lists Dec first
    return np.asarray(ra, dtype=np.float64) % 360.0, np.asarray(dec, dtype=np.float64)


def sky_to_pixel(wcs: WCS | None, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel positions of sky positions (degrees).

    NaN where the projection is undefined (e.g. more than 90 degrees from a TAN tangent
    point). SIP and table distortions are inverted iteratively (to 1e-6 pixel).
    """
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    if wcs is None or ra.size == 0:
        nan = np.full(np.broadcast(ra, dec).shape, np.nan)
        return nan, nan.copy()
    ra, dec = np.broadcast_arrays(ra, dec)
    world = [ra, dec] if wcs.wcs.lng == 0 else [dec, ra]
    if not wcs.has_distortion:
        x0, y0 = wcs.wcs_world2pix(*world, 0)
    else:
        x0, y0 = wcs.all_world2pix(*world, 0, tolerance=1e-6, maxiter=50, quiet=True)
    return np.asarray(x0, dtype=np.float64), np.asarray(y0, dtype=np.float64)


def pixel_scale_arcsec(wcs: WCS) -> float:
    """Mean pixel scale of a celestial WCS, arcsec/pixel (sqrt of the pixel area)."""
    return float(math.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600.0)


def match_residual_arcsec(wcs: WCS, x0, y0, ra_cat, dec_cat, *,
                          max_separation: float | None = None) -> float:
    """RMS separation (arcsec) between detected stars and their nearest catalog stars.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The frame's WCS.
    x0, y0 : array_like
        Detected positions, pixels, 0-based.
    ra_cat, dec_cat : array_like
        Catalog positions, degrees.
    max_separation : float, optional
        Pairs farther apart than this (arcsec) are not matches. Default: the larger of
        2 arcsec and 3 pixels.

    Returns
    -------
    float
        RMS separation of the matched pairs, arcsec; NaN when nothing matches (for QC: a WCS
        off by more than ``max_separation`` has no matches).
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    ra, dec = pixel_to_sky(wcs, x0, y0)
    ra_cat = np.asarray(ra_cat, dtype=np.float64)
    dec_cat = np.asarray(dec_cat, dtype=np.float64)
    good = np.isfinite(ra) & np.isfinite(dec)
    if not good.any() or ra_cat.size == 0:
        return float("nan")
    if max_separation is None:
        max_separation = max(2.0, 3.0 * pixel_scale_arcsec(wcs))
    stars = SkyCoord(ra[good] * u.deg, dec[good] * u.deg)
    catalog = SkyCoord(ra_cat * u.deg, dec_cat * u.deg)
    _, sep2d, _ = stars.match_to_catalog_sky(catalog)
    arcsec = sep2d.to_value(u.arcsec)
    arcsec = arcsec[arcsec <= max_separation]
    if arcsec.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean(arcsec ** 2)))


