"""Source detection with sep: 0-based positions, fluxes, FWHM, elongation and flags of the stars in a frame."""

from __future__ import annotations

import logging
import math

import numpy as np
import sep

log = logging.getLogger(__name__)


# -- flag bits of ``detect_sources``'s ``flags`` field -------------------------------------
#: peak at/above ``saturation``, or a saturated (mask bit 1) pixel in the object
SOURCE_SATURATED = 1

SOURCE_EDGE = 2  #: touches the image edge, or the centroid is within one FWHM of it

SOURCE_DEBLENDED = 4  #: sep split it from a blend (``OBJ_MERGED``)

SOURCE_OTHER = 8  #: other sep extraction flags (``OBJ_DOVERFLOW``, ``OBJ_SINGU``)

#: one row per detected source, brightest first
SOURCE_DTYPE = np.dtype([
    ("x", "f8"),  # pixels, 0-based column (windowed centroid)
    ("y", "f8"),  # pixels, 0-based row
    ("flux", "f8"),  # ADU, isophotal, background-subtracted
    ("a", "f4"),  # pixels, rms along the major axis
    ("b", "f4"),  # pixels, rms along the minor axis
    ("theta", "f4"),  # radians, major axis from +x towards +y
    ("fwhm", "f4"),  # pixels, 2 x half-light radius
    ("elongation", "f4"),  # a / b
    ("peak", "f4"),  # ADU above the background, brightest pixel
    ("npix", "i4"),  # pixels in the isophote
    ("flags", "i4"),  # SOURCE_* bits
])

_MASK_SATURATED = 1  # the reduction's mask bit for saturated pixels

# sep's pixel stack (pixels above threshold held at once; ~40 bytes each) is raised to this
# before extraction and grown 4x, up to the frame size, whenever sep reports it full.
_PIXSTACK_START = 1_000_000

def _float_image(data) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {arr.shape}")
    dtype = arr.dtype.newbyteorder("=") if arr.dtype.kind == "f" and arr.dtype.itemsize in (4, 8) \
        else np.dtype(np.float32)
    return np.ascontiguousarray(arr, dtype=dtype)


#: px**2 by which (2 r_half)**2 from sep.flux_radius exceeds a Gaussian's FWHM**2 on pixel
#: data: 5.545/12 from the pixel integration (sigma**2 + 1/12) and about as much again from
#: the uniform weighting of partly covered pixels; measured 0.90-0.93 px**2 on noiseless
#: pixel-integrated Gaussians of FWHM 2-6 px.
_R_HALF_BROADENING = 0.91

def fwhm_from_half_light_radius(r_half) -> np.ndarray:
    """FWHM (pixels) of a Gaussian star from its half-light radius measured on pixels.

    For a continuous Gaussian ``FWHM = 2 r_half`` exactly; on pixel data ``sep.flux_radius``
    returns a slightly larger radius, so ``FWHM = sqrt((2 r_half)**2 - 0.91 px**2)`` (floored
    at 1.5 r_half). This is the FWHM of the PSF before pixel sampling, the number seeing and
    focus are judged by.

    Parameters
    ----------
    r_half : array_like
        Half-light radius, pixels.

    Returns
    -------
    numpy.ndarray
        FWHM, pixels (NaN where ``r_half`` is not positive and finite).
    """
    r_half = np.asarray(r_half, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(r_half) & (r_half > 0)
        d2 = np.where(ok, 4.0 * r_half * r_half, np.nan)
        return np.where(ok, np.maximum(np.sqrt(np.maximum(d2 - _R_HALF_BROADENING, 0.0)),
                                       1.5 * r_half), np.nan)


def detect_sources(data, *, background=None, mask=None, threshold: float = 3.0,
                   min_area: int = 5, deblend: bool = True,
                   saturation: float | None = None) -> np.ndarray:
    """Detect sources with sep and measure them.

    Parameters
    ----------
    data : numpy.ndarray
        2-D image, ADU, with its background (any float/integer dtype, any byte order).
    background : optional
        An object with 2-D ``level`` and ``rms`` attributes (ADU/pixel), e.g.
        ``clinepipe.photometry.Background``; default: a 64-pixel sep mesh measured here.
    mask : numpy.ndarray, optional
        2-D uint8 bitmask (1 saturated, 2 hot, 4 bad flat, 8 cosmic ray, 16 non-finite).
        Pixels with any bit but "saturated" are ignored. Saturated pixels keep their values
        so that a saturated star stays one object; it is flagged instead.
    threshold : float
        Detection threshold in units of the background rms (per pixel, after sep's 3x3
        matched filter).
    min_area : int
        Fewest connected pixels above the threshold.
    deblend : bool
        Split blends (sep ``deblend_cont = 0.005``); False keeps them whole.
    saturation : float, optional
        ADU (in ``data``'s units, with background); an object whose brightest pixel is at or
        above it is flagged saturated.

    Returns
    -------
    numpy.ndarray
        Structured array of :data:`SOURCE_DTYPE`, brightest first: ``x, y`` 0-based windowed
        centroids (sep.winpos with SExtractor's sigma = 2 r_half / 2.35; the isophotal
        barycentre for deblended objects and where the windowed one fails or wanders more
        than one FWHM), ``flux`` (isophotal, ADU), ``a, b, theta``, ``fwhm`` (from the
        half-light radius, see :func:`fwhm_from_half_light_radius`; from the second
        moments, 2.355 sqrt((a**2 + b**2)/2), for deblended objects or when that fails),
        ``elongation`` (a/b), ``peak``, ``npix`` and ``flags`` (``SOURCE_*`` bits).
    """
    arr = _float_image(data)
    ny, nx = arr.shape
    bits = None if mask is None else np.asarray(mask)
    if bits is not None and bits.shape != arr.shape:
        raise ValueError(f"mask shape {bits.shape} differs from the image shape {arr.shape}")
    nonfinite = ~np.isfinite(arr)
    any_nonfinite = bool(nonfinite.any())
    if any_nonfinite:
        arr = np.where(nonfinite, 0, arr).astype(arr.dtype, copy=False)
    ignore = None
    if bits is not None:
        ignore = (bits.astype(np.int64, copy=False) & ~_MASK_SATURATED) != 0
    if any_nonfinite:
        ignore = nonfinite if ignore is None else (ignore | nonfinite)

    if background is None:
        bkg_mask = ignore if bits is None else (ignore | (bits != 0))
        bkg = sep.Background(arr, mask=bkg_mask, bw=64, bh=64, fw=3, fh=3)
        level, rms = bkg.back(dtype=np.float32), bkg.rms(dtype=np.float32)
    else:
        level = np.asarray(background.level, dtype=np.float32)
        rms = np.asarray(background.rms, dtype=np.float32)
    positive = rms[rms > 0]
    if positive.size == 0:
        return np.zeros(0, dtype=SOURCE_DTYPE)  # a constant image has nothing to detect
    rms = np.where(rms > 0, rms, float(np.median(positive))).astype(np.float32)
    sub = np.ascontiguousarray(arr - level, dtype=np.float32)
    if ignore is not None:
        sub[ignore] = 0.0  # sep 1.4 still detects a bright masked column unless it is zeroed

    objects = _extract(sub, float(threshold), rms, ignore, int(min_area), bool(deblend))
    out = np.zeros(len(objects), dtype=SOURCE_DTYPE)
    if len(objects) == 0:
        return out
    x = objects["x"].astype(np.float64)
    y = objects["y"].astype(np.float64)
    a = objects["a"].astype(np.float64)
    b = objects["b"].astype(np.float64)

    sep_flags = objects["flag"].astype(np.int64)
    # A deblended object's neighbour lies inside any circle around it, so its half-light
    # radius and windowed centroid would both be pulled towards the neighbour: for those,
    # keep sep's deblended barycentre and the FWHM from the second moments.
    merged = (sep_flags & sep.OBJ_MERGED) != 0
    rmax = np.clip(6.0 * a, 3.0, 50.0)
    r_half, rfl = sep.flux_radius(sub, x, y, rmax, 0.5, mask=ignore, subpix=5)
    moments_fwhm = 2.0 * math.sqrt(2.0 * math.log(2.0)) * np.sqrt((a * a + b * b) / 2.0)
    ok = (rfl == 0) & np.isfinite(r_half) & (r_half > 0) & ~merged
    fwhm = np.where(ok, fwhm_from_half_light_radius(np.where(ok, r_half, 1.0)), moments_fwhm)

    sig = np.maximum(fwhm / 2.35, 0.5 * 2.0 / 2.35)
    xw, yw, wfl = sep.winpos(sub, x, y, sig, mask=ignore)
    shift = np.hypot(xw - x, yw - y)
    use = (wfl == 0) & np.isfinite(shift) & (shift < np.maximum(moments_fwhm, 1.0)) & ~merged
    x = np.where(use, xw, x)
    y = np.where(use, yw, y)

    flags = np.zeros(len(objects), dtype=np.int32)
    flags[(sep_flags & sep.OBJ_MERGED) != 0] |= SOURCE_DEBLENDED
    flags[(sep_flags & (sep.OBJ_DOVERFLOW | sep.OBJ_SINGU)) != 0] |= SOURCE_OTHER
    margin = np.maximum(fwhm, 1.0)
    touches = ((objects["xmin"] <= 0) | (objects["ymin"] <= 0)
               | (objects["xmax"] >= nx - 1) | (objects["ymax"] >= ny - 1))
    close = (x < margin) | (y < margin) | (x > nx - 1 - margin) | (y > ny - 1 - margin)
    near_edge = ((sep_flags & sep.OBJ_TRUNC) != 0) | touches | close
    flags[near_edge] |= SOURCE_EDGE
    if saturation is not None:
        raw_peak = arr[objects["ypeak"], objects["xpeak"]]
        flags[raw_peak >= saturation] |= SOURCE_SATURATED
    if bits is not None:
        flags[_box_has_bit(bits, _MASK_SATURATED, objects)] |= SOURCE_SATURATED

    out["x"], out["y"] = x, y
    out["flux"] = objects["flux"]
    out["a"], out["b"], out["theta"] = a, b, objects["theta"]
    out["fwhm"] = fwhm
    with np.errstate(divide="ignore", invalid="ignore"):
        out["elongation"] = np.where(b > 0, a / np.where(b > 0, b, 1.0), np.inf)
    out["peak"] = objects["peak"]
    out["npix"] = objects["npix"]
    out["flags"] = flags
    return out[np.argsort(-out["flux"], kind="stable")]


def _extract(sub, threshold, rms, ignore, min_area, deblend):
    """sep.extract, growing sep's pixel stack / sub-object limit when a big frame needs it."""
    size = sub.size
    sep.set_extract_pixstack(max(sep.get_extract_pixstack(), min(size, _PIXSTACK_START)))
    deblend_cont = 0.005 if deblend else 1.0
    for _ in range(6):
        try:
            return sep.extract(sub, threshold, err=rms, mask=ignore, minarea=min_area,
                               deblend_cont=deblend_cont)
        except Exception as exc:  # sep raises a bare Exception with a message
            text = str(exc)
            if "pixel buffer full" in text and sep.get_extract_pixstack() < size:
                sep.set_extract_pixstack(min(size, 4 * sep.get_extract_pixstack()))
            elif "deblending overflow" in text and sep.get_sub_object_limit() < 65536:
                sep.set_sub_object_limit(4 * sep.get_sub_object_limit())
            else:
                raise
    return sep.extract(sub, threshold, err=rms, mask=ignore, minarea=min_area,
                       deblend_cont=deblend_cont)


def _box_has_bit(bits, bit, objects) -> np.ndarray:
    """True for objects whose bounding box contains a pixel with ``bit`` set (integral image)."""
    hit = (bits.astype(np.int64, copy=False) & bit) != 0
    if not hit.any():
        return np.zeros(len(objects), dtype=bool)
    integral = np.zeros((hit.shape[0] + 1, hit.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = hit.cumsum(axis=0).cumsum(axis=1)
    x0, x1 = objects["xmin"], objects["xmax"] + 1
    y0, y1 = objects["ymin"], objects["ymax"] + 1
    count = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return count > 0


