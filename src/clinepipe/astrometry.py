"""Source lists, WCS and plate solving (the ``astrometry`` stage core).

* :func:`read_src` reads TheSkyX Image Link ``.SRC`` lists (1-based, as written);
  :func:`src_positions` converts them to 0-based numpy positions -- the only place the
  one-pixel offset of the 2018 code is handled.
* :func:`detect_sources` is our own detection with sep (0-based windowed centroids).
* :func:`header_wcs`, :func:`pixel_to_sky`, :func:`sky_to_pixel` read and apply a celestial
  WCS (TAN with a CD matrix as TheSkyX writes it, PC/CDELT, or TAN-SIP).
* :func:`solve_field` plate-solves with astrometry.net's ``solve-field`` and checks the
  solution before writing a copy of the image with the new WCS.

In memory, pixel coordinates are 0-based (x = column, y = row, the centre of the first
pixel is (0, 0)); in files they are 1-based FITS/SExtractor coordinates.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import sep
from astropy.io import fits
from astropy.table import Table
from astropy.units import UnitsWarning
from astropy.wcs import WCS, FITSFixedWarning

from .errors import BadInput, ClinepipeError, UsageError

__all__ = [
    "SRC_COLUMNS",
    "SOURCE_DTYPE",
    "SOURCE_SATURATED",
    "SOURCE_EDGE",
    "SOURCE_DEBLENDED",
    "SOURCE_OTHER",
    "read_src",
    "src_positions",
    "header_wcs",
    "pixel_to_sky",
    "sky_to_pixel",
    "pixel_scale_arcsec",
    "fwhm_from_half_light_radius",
    "detect_sources",
    "match_residual_arcsec",
    "solve_field_command",
    "solver_config_text",
    "SYSTEM_INDEX_DIR",
    "solve_field",
]

log = logging.getLogger(__name__)

#: the eleven columns of a TheSkyX Image Link ``.SRC`` file, in file order
SRC_COLUMNS = ("X_IMAGE", "Y_IMAGE", "MAG_APER", "FWHM_IMAGE", "FLAGS", "CLASS_STAR",
               "ELONGATION", "ELLIPTICITY", "A_IMAGE", "B_IMAGE", "THETA_IMAGE")
_SRC_INT_HEADERS = ("HEIGHT", "WIDTH")
_SRC_HEADER = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*=\s*(.*?)\s*$")

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


# --------------------------------------------------------------------------------------
# .SRC files
# --------------------------------------------------------------------------------------

def read_src(path) -> Table:
    """Read a TheSkyX Image Link ``.SRC`` source list.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.SRC`` file: ``#`` header lines (``#HEIGHT= 844``, ``#WIDTH = 1117``,
        ``#TIME  = ...``, perhaps a column-name comment) then one source per line with the
        eleven whitespace-separated columns of :data:`SRC_COLUMNS`. LF, CRLF or mixed line
        endings.

    Returns
    -------
    astropy.table.Table
        The columns as in the file (``X_IMAGE``/``Y_IMAGE`` 1-based pixels, as written;
        ``FLAGS`` int64, the rest float64); ``meta`` holds the ``#KEY = value`` header values
        (``HEIGHT`` and ``WIDTH`` as int, the others as str). No sources is an empty table.

    Raises
    ------
    BadInput
        ``reason="unreadable .SRC"`` when the file cannot be read; ``reason="malformed .SRC"``
        naming the file and line when a line has the wrong number of columns, a
        non-numeric or non-finite position, or a non-integer flag.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot be read ({exc.strerror or exc}).",
                       reason="unreadable .SRC") from exc
    if b"\x00" in raw:
        raise BadInput(f"{path}: is not a text source list (binary data).", reason="malformed .SRC")
    lines = raw.decode("utf-8", errors="replace").splitlines()  # LF, CRLF, CR or mixed

    meta: dict[str, object] = {}
    body: list[list[str]] = []
    line_numbers: list[int] = []
    for number, line in enumerate(lines, start=1):  # one pass over the text, to split it
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            match = _SRC_HEADER.match(text)
            if match:
                meta[match.group(1).upper()] = match.group(2)
            continue
        body.append(text.split())
        line_numbers.append(number)

    for key in _SRC_INT_HEADERS:
        if key in meta:
            try:
                meta[key] = int(float(str(meta[key])))
            except ValueError:
                raise BadInput(f"{path}: header #{key} = {meta[key]!r} is not a whole number "
                               "(malformed .SRC).", reason="malformed .SRC") from None

    ncol = len(SRC_COLUMNS)
    if not body:
        table = Table(names=SRC_COLUMNS,
                      dtype=[np.int64 if c == "FLAGS" else np.float64 for c in SRC_COLUMNS])
        table.meta.update(meta)
        return table

    counts = np.fromiter((len(row) for row in body), dtype=np.intp, count=len(body))
    wrong = np.flatnonzero(counts != ncol)
    if wrong.size:
        i = int(wrong[0])
        raise BadInput(f"{path}: line {line_numbers[i]} has {counts[i]} columns instead of "
                       f"{ncol} (malformed .SRC).", reason="malformed .SRC")
    tokens = np.array(body, dtype=str)
    try:
        values = tokens.astype(np.float64)
    except ValueError:
        i = _first_non_numeric(tokens)
        raise BadInput(f"{path}: line {line_numbers[i]} has a value that is not a number "
                       "(malformed .SRC).", reason="malformed .SRC") from None
    bad = ~np.isfinite(values[:, :2]).all(axis=1)
    flags = values[:, SRC_COLUMNS.index("FLAGS")]
    bad |= ~np.isfinite(flags) | (flags != np.round(flags))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BadInput(f"{path}: line {line_numbers[i]} has a non-finite position or a "
                       "non-integer FLAGS value (malformed .SRC).", reason="malformed .SRC")

    table = Table()
    for j, name in enumerate(SRC_COLUMNS):
        column = values[:, j]
        table[name] = column.astype(np.int64) if name == "FLAGS" else column
    table.meta.update(meta)
    return table


def _first_non_numeric(tokens: np.ndarray) -> int:
    """Row index of the first row holding a token float() rejects (error path only)."""
    def is_number(token: str) -> bool:
        try:
            float(token)
        except ValueError:
            return False
        return True

    ok = np.vectorize(is_number, otypes=[bool])(tokens).all(axis=1)
    return int(np.flatnonzero(~ok)[0])


def src_positions(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """0-based numpy positions of a :func:`read_src` table.

    Returns
    -------
    x0, y0 : numpy.ndarray
        float64 pixels, ``X_IMAGE - 1`` and ``Y_IMAGE - 1`` (FITS 1-based to numpy 0-based).
    """
    x0 = np.asarray(table["X_IMAGE"], dtype=np.float64) - 1.0
    y0 = np.asarray(table["Y_IMAGE"], dtype=np.float64) - 1.0
    return x0, y0


# --------------------------------------------------------------------------------------
# WCS
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# plate solving
# --------------------------------------------------------------------------------------

#: where the Debian astrometry-data-* packages put their index files (the fallback set)
SYSTEM_INDEX_DIR = Path("/usr/share/astrometry")

_INSTALL_HINT = ("solve-field (astrometry.net) is not installed; run `make system-deps` or "
                 "install the Debian packages astrometry.net and astrometry-data-tycho2.")

#: WCS keywords removed from a header before a new solution is merged in
_WCS_KEY = re.compile(
    r"^(WCSAXES|CTYPE\d|CUNIT\d|CRVAL\d|CRPIX\d|CDELT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|PS\d_\d+"
    r"|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|WCSNAME|IMAGEW|IMAGEH"
    r"|[AB]P?_ORDER|[AB]P?_\d+_\d+|[AB]_DMAX)$")


def solve_field_command(xylist: Path, width: int, height: int, out_dir: Path, *,
                        scale_low: float | None = None, scale_high: float | None = None,
                        ra: float | None = None, dec: float | None = None,
                        radius: float | None = None, timeout: float = 120,
                        executable: str = "solve-field",
                        config_file: Path | None = None) -> list[str]:
    """The ``solve-field`` command line for an xylist of our own detections.

    Parameters
    ----------
    xylist : pathlib.Path
        FITS table with columns ``X``, ``Y`` (1-based pixels) and ``FLUX``.
    width, height : int
        Image size, pixels.
    out_dir : pathlib.Path
        Where solve-field writes ``solution.*`` (``.wcs``, ``.corr``, ``.solved``).
    scale_low, scale_high : float, optional
        Pixel-scale bounds, arcsec/pixel.
    ra, dec, radius : float, optional
        Search only within ``radius`` degrees of (ra, dec) degrees.
    timeout : float
        CPU-time limit for the solver, s.
    executable : str
        Path of solve-field.
    config_file : pathlib.Path, optional
        Backend configuration (``--config``) naming the index files to use, see
        :func:`solver_config_text`; None = the system's ``/etc/astrometry.cfg``.

    Returns
    -------
    list of str
    """
    cmd = [
        executable, str(xylist),
        "--width", str(int(width)), "--height", str(int(height)),
        "--x-column", "X", "--y-column", "Y", "--sort-column", "FLUX",
        "--dir", str(out_dir), "--out", "solution",
        "--no-plots", "--overwrite", "--new-fits", "none",
        "--index-xyls", "none", "--rdls", "none", "--match", "none", "--temp-axy",
        "--crpix-center",
        "--cpulimit", str(max(1, int(math.ceil(timeout)))),
    ]
    if config_file is not None:
        cmd += ["--config", str(config_file)]
    if scale_low is not None or scale_high is not None:
        low = scale_low if scale_low is not None else scale_high / 2.0
        high = scale_high if scale_high is not None else scale_low * 2.0
        cmd += ["--scale-units", "arcsecperpix", "--scale-low", f"{low:.6g}",
                "--scale-high", f"{high:.6g}"]
    if ra is not None and dec is not None:
        cmd += ["--ra", f"{float(ra):.8f}", "--dec", f"{float(dec):.8f}",
                "--radius", f"{float(radius if radius is not None else 5.0):.6g}"]
    return cmd


def solver_config_text(index_files=(), *, system_index: bool = True,
                       timeout: float = 120) -> str:
    """An astrometry.net backend configuration (``solve-field --config``).

    Parameters
    ----------
    index_files : iterable of path
        Index files to load first (e.g. built from the reference catalog by
        :mod:`clinepipe.catalog_index`).
    system_index : bool
        Also load every index file in :data:`SYSTEM_INDEX_DIR` (Tycho-2: the fallback for
        fields wider than ~30 arcmin).
    timeout : float
        The backend's own CPU limit, s.

    Returns
    -------
    str
        The file's text: ``cpulimit``, one ``index`` line per file, and ``add_path`` +
        ``autoindex`` for the system directory.
    """
    lines = [f"cpulimit {max(1, int(math.ceil(timeout)))}"]
    lines += [f"index {Path(f).resolve()}" for f in index_files]
    if system_index and SYSTEM_INDEX_DIR.is_dir():
        lines += [f"add_path {SYSTEM_INDEX_DIR}", "autoindex"]
    return "\n".join(lines) + "\n"


def solve_field(image_path, output_path, *, scale_low: float | None = None,
                scale_high: float | None = None, ra: float | None = None,
                dec: float | None = None, radius: float | None = None,
                timeout: float = 120, max_rms_pixels: float = 2.0,
                max_sources: int = 300, header_hints: bool = True,
                index_files=(), system_index: bool = True) -> Path:
    """Plate-solve an image with astrometry.net and write a copy carrying the solved WCS.

    Our own detections (:func:`detect_sources`, the brightest ``max_sources`` clean ones)
    are given to ``solve-field`` as an xylist, in a temporary directory. The solution is
    then checked independently: the index stars astrometry.net matched (``.corr``) are
    projected through the solved WCS *as astropy reads it* (SIP included) and compared with
    our detections; the solution is rejected when their rms exceeds ``max_rms_pixels`` or
    fewer than 5 stars matched.

    Parameters
    ----------
    image_path : str or os.PathLike
        FITS image (the first HDU with 2-D data is solved). Never modified.
    output_path : str or os.PathLike
        Where the copy goes: every HDU of the input, the image header's old WCS keywords
        replaced by the solution (TAN-SIP), plus ``ASTRMRMS`` (rms, pixels) and ``ASTRMNUM``.
        Written atomically.
    scale_low, scale_high : float, optional
        Pixel-scale bounds, arcsec/pixel (binned pixels).
    ra, dec, radius : float, optional
        Centre hint and search radius, degrees (e.g. the mount's pointing).
    timeout : float
        Solver CPU limit, s (the process is killed 30 s after that; with header hints that
        fail, a second, blind attempt gets the same limit).
    max_rms_pixels : float
        Largest acceptable rms of the matched stars, pixels.
    max_sources : int
        Brightest detections given to the solver.
    header_hints : bool
        When a hint is not given, take it from the header: the scale from ``FOCALLEN`` (mm)
        and ``XPIXSZ`` (binned pixel size, um) or an existing WCS (+-20 %), the centre from
        ``RA``/``DEC`` or ``OBJCTRA``/``OBJCTDEC`` (TheSkyX, MaxIm) or an existing WCS, within
        2 degrees. If the hinted search finds nothing, a blind search follows.
    index_files : iterable of path
        Extra astrometry.net index files, e.g. built from the reference catalog around the
        field (:func:`clinepipe.catalog_index.index_for_image`); tried alongside the system ones.
    system_index : bool
        Also use the index files in ``/usr/share/astrometry`` (Tycho-2).

    Notes
    -----
    The Debian ``astrometry-data-tycho2`` index files hold Tycho-2 stars (about 60 per
    square degree) with quads of 22 arcmin and larger: they solve fields of roughly half a
    degree and more. Smaller fields (this observatory's 18 x 14 arcmin at 3x3 binning holds
    only a handful of Tycho-2 stars) need deeper index files: ``index_files`` built from the
    reference catalog (:mod:`clinepipe.catalog_index`) or the 4100/5200 series.

    Returns
    -------
    pathlib.Path
        ``output_path``.

    Raises
    ------
    ClinepipeError
        solve-field is not installed.
    BadInput
        ``reason="plate solving failed"`` (unreadable image, too few stars, no solution,
        timeout) or ``reason="plate solution rejected"`` (the check failed).
    """
    image_path = Path(image_path)
    output_path = Path(output_path)
    exe = shutil.which("solve-field")
    if exe is None:
        raise ClinepipeError(f"{image_path}: cannot be plate-solved: {_INSTALL_HINT}",
                             reason="solve-field not installed")
    if output_path.resolve() == image_path.resolve():
        raise UsageError(f"{image_path}: the solved copy must not overwrite the image itself.")
    hdus, index = _read_image(image_path)
    try:
        data = hdus[index].data
        height, width = data.shape
        sources = detect_sources(data, threshold=5.0)
        clean = sources[(sources["flags"] & (SOURCE_SATURATED | SOURCE_EDGE)) == 0]
        if clean.size < 10:
            clean = sources
        clean = clean[:max_sources]
        if clean.size < 5:
            raise BadInput(f"{image_path}: only {clean.size} stars found, too few to "
                           "plate-solve.", reason="plate solving failed")
        given = {"scale_low": scale_low, "scale_high": scale_high, "ra": ra, "dec": dec,
                 "radius": radius}
        hints = dict(given)
        if header_hints:
            for key, value in _header_hints(hdus[index].header).items():
                if hints.get(key) is None and (key not in ("ra", "dec") or
                                               (ra is None and dec is None)):
                    hints[key] = value
        attempts = [hints] if hints == given else [hints, given]
        with tempfile.TemporaryDirectory(prefix="clinepipe-solve-") as tmp:
            tmp = Path(tmp)
            xylist = tmp / "sources.xyls"
            Table({"X": clean["x"] + 1.0, "Y": clean["y"] + 1.0,
                   "FLUX": clean["flux"]}).write(xylist, format="fits")
            wcs_file, corr_file = tmp / "solution.wcs", tmp / "solution.corr"
            config_file = None
            index_files = list(index_files)
            if index_files or not system_index:
                # our own backend config: /etc/astrometry.cfg knows only the system indexes
                config_file = tmp / "astrometry.cfg"
                config_file.write_text(solver_config_text(index_files, system_index=system_index,
                                                          timeout=timeout), encoding="utf-8")
            for attempt in attempts:
                cmd = solve_field_command(xylist, width, height, tmp, timeout=timeout,
                                          executable=exe, config_file=config_file, **attempt)
                log.debug("running %s", " ".join(cmd))
                output = _run(cmd, tmp, timeout + 30, image_path)
                if (tmp / "solution.solved").exists() and wcs_file.exists():
                    break
            if not (tmp / "solution.solved").exists() or not wcs_file.exists():
                tail = " ".join(output.strip().splitlines()[-1:])[:200]
                raise BadInput(f"{image_path}: astrometry.net found no plate solution"
                               + (f" ({tail})." if tail else "."), reason="plate solving failed")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                solved_header = fits.getheader(wcs_file)
                wcs = WCS(solved_header, relax=True)
            rms, n = _solution_rms(wcs, corr_file)
        if not (n >= 5 and rms <= max_rms_pixels):
            raise BadInput(f"{image_path}: plate solution rejected ({n} matched stars, "
                           f"rms {rms:.2f} px > {max_rms_pixels:g} px allowed).",
                           reason="plate solution rejected")
        header = hdus[index].header
        for key in [k for k in header if _WCS_KEY.match(k)]:
            del header[key]
        # astrometry.net's own TAN-SIP cards (CD matrix, as TheSkyX writes it), not IMAGEW/H
        header.extend([card for card in solved_header.cards if _WCS_KEY.match(card.keyword)
                       and card.keyword not in ("IMAGEW", "IMAGEH")])
        header["ASTRMRMS"] = (round(float(rms), 4), "[pix] rms of stars matched by the solution")
        header["ASTRMNUM"] = (int(n), "stars matched by the plate solution")
        header.add_history("WCS from astrometry.net solve-field (clinepipe)")
        _write_atomic(hdus, output_path)
    finally:
        hdus.close()
    return output_path


def _header_hints(header) -> dict:
    """Plate-solving hints from a header (see :func:`solve_field`); {} when there are none."""
    hints: dict[str, float] = {}
    scale = None
    try:
        focal, pixel = float(header["FOCALLEN"]), float(header["XPIXSZ"])
        if focal > 0 and pixel > 0:
            scale = 206.264806 * pixel / focal  # arcsec per (binned) pixel
    except (KeyError, TypeError, ValueError):
        pass
    old = header_wcs(header)
    if scale is None and old is not None:
        scale = pixel_scale_arcsec(old)
    if scale is not None and math.isfinite(scale) and scale > 0:
        hints["scale_low"], hints["scale_high"] = 0.8 * scale, 1.2 * scale
    centre = _pointing(header)
    if centre is None and old is not None:
        ny, nx = header.get("NAXIS2", 0), header.get("NAXIS1", 0)
        ra, dec = pixel_to_sky(old, [(nx - 1) / 2.0], [(ny - 1) / 2.0])
        if np.isfinite(ra[0]) and np.isfinite(dec[0]):
            centre = float(ra[0]), float(dec[0])
    if centre is not None:
        hints["ra"], hints["dec"], hints["radius"] = centre[0], centre[1], 2.0
    return hints


def _pointing(header) -> tuple[float, float] | None:
    """The mount's pointing from RA/DEC (degrees or sexagesimal) or OBJCTRA/OBJCTDEC."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    for ra_key, dec_key in (("RA", "DEC"), ("OBJCTRA", "OBJCTDEC")):
        if ra_key not in header or dec_key not in header:
            continue
        ra, dec = header[ra_key], header[dec_key]
        try:
            if isinstance(ra, (int, float)) and isinstance(dec, (int, float)):
                coord = SkyCoord(float(ra) * u.deg, float(dec) * u.deg)
            else:  # sexagesimal strings: hours and degrees
                coord = SkyCoord(str(ra), str(dec), unit=(u.hourangle, u.deg))
        except (ValueError, TypeError):
            continue
        return float(coord.ra.deg), float(coord.dec.deg)
    return None


def _read_image(path: Path):
    try:
        hdus = fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: is not a readable FITS file ({exc}).",
                       reason="plate solving failed") from exc
    for i, hdu in enumerate(hdus):
        if hdu.is_image and hdu.data is not None and hdu.data.ndim == 2:
            return hdus, i
    hdus.close()
    raise BadInput(f"{path}: has no 2-D image to plate-solve.", reason="plate solving failed")


def _run(cmd: list[str], cwd: Path, timeout: float, image_path: Path) -> str:
    """Run solve-field in its own process group; kill that group on timeout."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # solve-field and the astrometry-engine it started
        proc.communicate()
        raise BadInput(f"{image_path}: plate solving timed out after {timeout:.0f} s.",
                       reason="plate solving failed") from None
    log.debug("solve-field output:\n%s", output)
    return output or ""


def _solution_rms(wcs: WCS, corr_file: Path) -> tuple[float, int]:
    """RMS (pixels) between our detections and the matched index stars through ``wcs``."""
    if not corr_file.exists():
        return float("inf"), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)  # 'pixels', 'degrees' in .corr units
        corr = Table.read(corr_file, hdu=1)
    if len(corr) == 0:
        return float("inf"), 0
    x, y = sky_to_pixel(wcs, np.asarray(corr["index_ra"]), np.asarray(corr["index_dec"]))
    dx = x - (np.asarray(corr["field_x"], dtype=np.float64) - 1.0)
    dy = y - (np.asarray(corr["field_y"], dtype=np.float64) - 1.0)
    d2 = dx * dx + dy * dy
    d2 = d2[np.isfinite(d2)]
    if d2.size == 0:
        return float("inf"), 0
    return float(np.sqrt(np.mean(d2))), int(d2.size)


def _write_atomic(hdus: fits.HDUList, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        hdus.writeto(tmp, overwrite=True, output_verify="silentfix")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
