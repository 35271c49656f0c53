"""Reduction of a light: bias, exposure-scaled dark and flat, with an uncertainty plane and a mask."""

from __future__ import annotations

import functools
import math
import os
import re
import weakref
from pathlib import Path
import bottleneck as bn
import numpy as np
from astropy.io import fits
from clinepipe.ccd.dark_bias import holds_bias, use_dark
from clinepipe.ingest.row_order import FLIPPED, bottom_up_origin
from clinepipe import __version__
from clinepipe.errors import BadInput, ClinepipeError, MissingCalibration
from clinepipe.ingest.frame_info import FrameInfo
from clinepipe.ingest.fits_reader import brief
from clinepipe.ccd.masks import MASK_BAD_FLAT, MASK_COSMIC_RAY, MASK_HOT, MASK_NONFINITE, MASK_SATURATED
from clinepipe.ccd.reduced_files import _ENCODING_CARDS, ReducedFrame, calibrated_name, write_reduced
from clinepipe.finite import finite_or_none


#: a flat outside this range marks the pixel as bad (dead column, dust donut core, vignetting)
FLAT_RANGE = (0.5, 2.0)

#: hot pixel: master dark above its median by this many robust sigma
HOT_SIGMA = 8.0


_SECTION = re.compile(r"^\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]$")

def parse_section(text: str) -> tuple[slice, slice]:
    """IRAF/FITS section ``'[x1:x2,y1:y2]'`` (1-based, inclusive) -> numpy ``(rows, cols)`` slices."""
    m = _SECTION.match(str(text).strip())
    if not m:
        raise ValueError(f"not a section string: {text!r}")
    x1, x2, y1, y2 = (int(v) for v in m.groups())
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    if x1 < 1 or y1 < 1:
        raise ValueError(f"section {text!r} starts before pixel 1")
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def crop_master(master: np.ndarray, xorg: int, yorg: int, shape: tuple[int, int], *,
                has_origin: bool = True, name: str = "frame") -> np.ndarray:
    """The part of ``master`` under a (sub)frame of ``shape`` at origin (``xorg``, ``yorg``).

    The origin is XORGSUBF/YORGSUBF in binned pixels, 0-based. A frame of the master's shape at
    (0, 0) gets the master itself. Raises :class:`BadInput`:

    * ``subframe without origin`` — the frame's shape differs from the master's, its origin is
      (0, 0) and ``has_origin`` is False (no XORGSUBF/YORGSUBF in its header): where it sits
      on the sensor is unknown, and guessing the corner would calibrate with the wrong pixels;
    * ``subframe outside the master`` — it does not fit inside the master at that origin
      (or a different binning's master was given).
    """
    ny, nx = (int(shape[0]), int(shape[1]))
    my, mx = master.shape
    if (ny, nx) == (my, mx) and xorg == 0 and yorg == 0:
        return master
    if xorg == 0 and yorg == 0 and not has_origin:
        raise BadInput(f"{name}: is {nx}x{ny} pixels but the master is {mx}x{my} and the header "
                       "has no XORGSUBF/YORGSUBF to place it (subframe without origin).",
                       reason="subframe without origin")
    if xorg < 0 or yorg < 0 or xorg + nx > mx or yorg + ny > my:
        raise BadInput(f"{name}: the {nx}x{ny} subframe at ({xorg}, {yorg}) does not fit in the "
                       f"{mx}x{my} master (subframe outside the master).",
                       reason="subframe outside the master")
    return master[yorg:yorg + ny, xorg:xorg + nx]


def hot_pixel_mask(dark: np.ndarray, *, sigma: float = HOT_SIGMA) -> np.ndarray:
    """Pixels whose master dark is far above the dark's robust distribution (bool array).

    ``dark > median + sigma * 1.4826 MAD`` (the MAD floored at 1 ADU so a noise-free dark
    does not flag every pixel above the median).
    """
    d = np.asarray(dark, dtype=np.float32)
    med = float(bn.nanmedian(d))
    spread = max(1.4826 * float(bn.nanmedian(np.abs(d - np.float32(med)))), 1.0)
    with np.errstate(invalid="ignore"):
        return d > med + sigma * spread


# Per-master products reused by every light: the hot pixels of a master dark, the square of a
# master flat and its bad pixels. Only read-only arrays are remembered (the masters read from
# files are, see _cached_master): they cannot change under the cache. The key is the memory
# the array describes, so a crop of a master (a new view each time) hits too; a weak
# reference to the memory's owner says when an entry is stale.
_DERIVED: dict = {}

_DERIVED_MAX = 16

def _derived(kind: str, arr: np.ndarray, compute):
    if arr.flags.writeable:
        return compute(arr)
    owner = arr
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    key = (kind, arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.dtype.str)
    hit = _DERIVED.get(key)
    if hit is not None and hit[0]() is owner:
        return hit[1]
    value = compute(arr)
    if len(_DERIVED) >= _DERIVED_MAX:
        for stale in [k for k, v in _DERIVED.items() if v[0]() is None] or list(_DERIVED)[:1]:
            _DERIVED.pop(stale, None)
    try:
        _DERIVED[key] = (weakref.ref(owner), value)
    except TypeError:  # an owner that cannot be weakly referenced: do not remember
        pass
    return value


def _hot_pixels(dark: np.ndarray) -> np.ndarray:
    """:func:`hot_pixel_mask` of a master dark, computed once per read-only master."""
    def compute(d):
        mask = hot_pixel_mask(d)
        mask.setflags(write=False)
        return mask

    return _derived("hot", dark, compute)


def _flat_products(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``flat * flat`` and the bad-flat pixels, computed once per read-only master flat."""
    def compute(f):
        sq = np.multiply(f, f)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(f) | (f < FLAT_RANGE[0]) | (f > FLAT_RANGE[1])
        sq.setflags(write=False)
        bad.setflags(write=False)
        return sq, bad

    return _derived("flat", flat, compute)


def _overscan_level(image: np.ndarray, rows: slice, cols: slice) -> np.ndarray | np.float32:
    """Median of the overscan region: per row when it spans every row, else one number."""
    region = image[rows, cols]
    ny = image.shape[0]
    if region.shape[0] == ny and region.shape[1] >= 1:
        per_row = bn.nanmedian(region, axis=1).astype(np.float32)
        if ny >= 15:  # smooth the row-to-row noise of a few overscan columns
            smooth = bn.move_median(per_row, 15, min_count=1)
            centred = np.empty_like(per_row)
            centred[:-7] = smooth[7:]
            centred[-7:] = smooth[-1]
            per_row = centred.astype(np.float32)
        return per_row[:, None]
    return np.float32(bn.nanmedian(region))


def _as_float32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


_BLOCK_PIXELS = 1 << 16

def _calibrate_block(raw, bias, dark, k, flat, flat_sq, gain, const_var, flat_noise, data, var,
                     *, uncertainty: bool, pedestal=np.float32(0)) -> None:
    """The formulas of the module docstring on one block of rows, into ``data`` and ``var``
    (the uncertainty itself when ``uncertainty``, else the variance), float32 throughout.

    Without a master bias (``bias`` None) the data keep the bias pedestal, and ``pedestal``
    (ADU) is what the Poisson term leaves out: the pedestal holds no electrons."""
    if bias is None:
        signal = np.array(raw, dtype=np.float32)
    else:
        signal = np.subtract(raw, bias, dtype=np.float32)
    if dark is not None:
        np.multiply(dark, k, out=data)
        np.subtract(signal, data, out=data)
    else:
        data[...] = signal
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if flat is not None:
            np.divide(data, flat, out=data)
        np.subtract(signal, pedestal, out=var)
        np.maximum(var, np.float32(0), out=var)
        np.divide(var, gain, out=var)
        np.add(var, const_var, out=var)
        if flat is not None:
            np.divide(var, flat_sq, out=var)
            if flat_noise:
                term = np.multiply(data, np.float32(flat_noise), out=signal)
                np.multiply(term, term, out=term)
                np.add(var, term, out=var)
        if uncertainty:
            np.sqrt(var, out=var)


def calstat_of(bias: bool, dark: bool, flat: bool) -> str:
    """CALSTAT: the letters of the masters applied, in the order B(ias), D(ark), F(lat)."""
    return "B" * bias + "D" * dark + "F" * flat


def missing_masters_reason(calstat: str) -> str:
    """What a light reduced with only the masters of ``calstat`` lacks: ``no flat``,
    ``no bias or dark``, ``no bias, dark or flat``; "" when it has them all."""
    missing = [name for letter, name in (("B", "bias"), ("D", "dark"), ("F", "flat"))
               if letter not in calstat]
    if not missing:
        return ""
    return "no " + (missing[0] if len(missing) == 1
                    else ", ".join(missing[:-1]) + " or " + missing[-1])


def pedestal_estimate(raw: np.ndarray, gain: float, read_noise: float) -> float:
    """The bias pedestal of a raw frame without a master bias (ADU), from its own noise.

    Photon transfer: a pixel holding ``S`` ADU of photo- and dark electrons over a pedestal
    has the variance ``S / gain + (read_noise / gain)**2`` (ADU**2), so the frame's median
    level less ``gain * sigma**2 - read_noise**2 / gain`` is the pedestal. ``sigma`` is the
    robust (1.4826 MAD) standard deviation of differences of neighbouring rows over sqrt 2:
    smooth structure (vignetting, gradients) and the bias's fixed column pattern cancel in
    them, stars and cosmic rays are outliers. Clipped to [0, median level].

    Parameters
    ----------
    raw : numpy.ndarray
        2-D raw frame, ADU.
    gain : float
        e-/ADU.
    read_noise : float
        e- per pixel.

    Returns
    -------
    float
        ADU; the pedestal the Poisson term of the uncertainty leaves out.
    """
    a = np.asarray(raw, dtype=np.float32)
    if a.shape[0] < 2:
        return 0.0
    step = max(1, a.shape[0] // 128)  # ~64 row pairs: plenty for a robust spread
    upper, lower = a[0:-1:step], a[1::step]
    n = min(len(upper), len(lower))
    diff = upper[:n] - lower[:n]
    sigma = 1.4826 * float(bn.nanmedian(np.abs(diff - bn.nanmedian(diff)))) / math.sqrt(2.0)
    level = float(bn.nanmedian(upper))
    if not (math.isfinite(sigma) and math.isfinite(level)):
        return 0.0
    electrons_adu = gain * sigma * sigma - read_noise * read_noise / gain
    return float(np.clip(level - electrons_adu, 0.0, max(level, 0.0)))


def reduce_frame(raw, *, bias, dark, dark_exptime: float | None, flat, exptime: float,
                 mode: str = "default", gain: float, read_noise: float,
                 saturation: float = 65535.0, hot_pixels=None, bias_noise: float | None = None,
                 dark_noise: float | None = None, flat_noise: float | None = None,
                 overscan: bool | None = None, cosmic_rays: bool = False,
                 header: fits.Header | None = None, name: str = "frame",
                 dark_holds_bias: bool = False) -> ReducedFrame:
    """Calibrate one raw light (arrays already cropped to the frame by :func:`crop_master`).

    Parameters
    ----------
    raw : array (ny, nx)
        The raw frame in ADU (BZERO applied), any numeric dtype.
    bias, dark, flat : arrays (ny, nx)
        Master bias (ADU), master dark (ADU in ``dark_exptime`` seconds, bias-free) and master
        flat (normalised). Any of them may be None for a partial calibration (CALSTAT then
        lacks its letter; no noise of that master enters the uncertainty). Without a bias the
        data keep the bias pedestal, which a local background removes as sky; the Poisson
        term of the uncertainty leaves out the pedestal, estimated from the frame's own noise
        (:func:`pedestal_estimate`, header ``CLPPED``).
    dark_exptime, exptime : float
        Exposures (s) of the master dark and of the light: the dark is scaled by their ratio.
    mode : "seed" or "default"
        ``seed`` uses the formula only; ``default`` may add overscan and cosmic rays.
    gain : float
        e-/ADU.
    read_noise : float
        e- per pixel.
    saturation : float
        Raw ADU at and above which a pixel is saturated (mask bit 1).
    hot_pixels : bool array, optional
        Hot pixels; by default :func:`hot_pixel_mask` of the dark.
    bias_noise, dark_noise : float, optional
        Random 1-sigma per pixel of the master bias / dark (ADU). ``flat_noise`` is relative.
    overscan : bool, optional
        ``default`` mode: subtract the median of ``BIASSEC`` (per row when it spans all rows,
        smoothed over 15 rows; else one number) from the light and from the master bias, then
        trim everything to ``TRIMSEC``. Done only when both keywords are in ``header``.
    cosmic_rays : bool
        ``default`` mode: detect with ``astroscrappy.detect_cosmics`` (the frame's variance,
        gain, read noise and saturation passed in) and replace them with its cleaned values.
    header : astropy Header, optional
        The raw header; copied, never modified.
    name : str
        The file name for messages.
    dark_holds_bias : bool
        The dark was made without a master bias: see :mod:`clinepipe.ccd.dark_bias` for how
        it is subtracted (header ``CLPDNOTE`` when it cannot be).

    Returns
    -------
    ReducedFrame
    """
    if mode not in ("seed", "default"):
        raise ValueError(f"unknown reduction mode {mode!r} (seed or default)")
    raw = _as_float32(raw)
    bias = None if bias is None else _as_float32(bias)
    dark = None if dark is None else _as_float32(dark)
    flat = None if flat is None else _as_float32(flat)
    for what, arr in (("bias", bias), ("dark", dark), ("flat", flat)):
        if arr is not None and arr.shape != raw.shape:
            raise BadInput(f"{name}: the master {what} is {arr.shape[1]}x{arr.shape[0]} but the "
                           f"frame is {raw.shape[1]}x{raw.shape[0]} (shape differs from the master).",
                           reason="shape differs from the master")
    use = use_dark(bias, dark, holds_bias=dark_holds_bias, exptime=exptime,
                   dark_exptime=dark_exptime, bias_noise=bias_noise, dark_noise=dark_noise)
    bias, dark, bias_noise, dark_noise = use.bias, use.dark, use.bias_noise, use.dark_noise
    hdr = header.copy() if header is not None else fits.Header()
    for key in _ENCODING_CARDS:
        hdr.remove(key, ignore_missing=True, remove_all=True)
    saturated = raw >= np.float32(saturation)
    if hot_pixels is None:
        hot = _hot_pixels(dark) if dark is not None else None
    else:
        hot = np.asarray(hot_pixels, dtype=bool)

    if mode == "default" and overscan and "BIASSEC" in hdr and "TRIMSEC" in hdr:
        if hot is None:
            hot = np.zeros(raw.shape, bool)
        raw, bias, dark, flat, saturated, hot = _apply_overscan(raw, bias, dark, flat, saturated,
                                                                hot, hdr, name)

    pedestal = np.float32(0.0)
    if bias is None:  # after the overscan, if any, which removes most of it
        pedestal = np.float32(pedestal_estimate(raw, gain, read_noise))
    k = np.float32(0.0)
    if dark is not None:
        if not dark_exptime or dark_exptime <= 0:
            raise BadInput(f"{name}: the master dark has no exposure time.",
                           reason="master dark without EXPTIME")
        k = np.float32(float(exptime) / float(dark_exptime))
    gain = float(gain)
    const_var = np.float32((read_noise / gain) ** 2 + (bias_noise or 0.0) ** 2
                           + (float(k) * (dark_noise or 0.0)) ** 2)
    flat_sq, bad_flat = _flat_products(flat) if flat is not None else (None, None)
    data = np.empty(raw.shape, np.float32)
    var = np.empty(raw.shape, np.float32)
    # Row blocks of ~64k pixels: the dozen float32 steps then run on arrays that stay in the
    # CPU cache instead of streaming the whole frame through memory a dozen times (4.9 -> 3.9
    # ms on a 1117x844 frame); the operations and their order, so the result, are the same.
    rows = max(1, _BLOCK_PIXELS // max(1, raw.shape[1]))
    for r in range(0, raw.shape[0], rows):
        b = slice(r, r + rows)
        _calibrate_block(raw[b], None if bias is None else bias[b],
                         None if dark is None else dark[b], k,
                         None if flat is None else flat[b], None if flat is None else flat_sq[b],
                         np.float32(gain), const_var, flat_noise, data[b], var[b],
                         uncertainty=not (mode == "default" and cosmic_rays), pedestal=pedestal)
    # bool is one byte holding 0 or 1, and MASK_SATURATED is bit value 1
    mask = np.ascontiguousarray(saturated).view(np.uint8)
    if hot is not None:
        np.bitwise_or(mask, np.uint8(MASK_HOT), out=mask, where=hot)
    if flat is not None:
        np.bitwise_or(mask, np.uint8(MASK_BAD_FLAT), out=mask, where=bad_flat)

    if mode == "default" and cosmic_rays:
        bias_level = 0.0 if bias is None else float(bn.nanmedian(bias))
        n_cr = _clean_cosmic_rays(data, var, mask, bias_level, gain, read_noise, saturation)
        hdr["CLPNCR"] = (int(n_cr), "cosmic-ray pixels cleaned (astroscrappy)")
        with np.errstate(invalid="ignore"):
            np.sqrt(var, out=var)
    uncertainty = var
    # a NaN or infinity makes the float64 sum non-finite (it cannot overflow for float32 data),
    # so the per-pixel test runs only for the frames that have one
    if not (np.isfinite(np.add.reduce(data, axis=None, dtype=np.float64))
            and np.isfinite(np.add.reduce(uncertainty, axis=None, dtype=np.float64))):
        nonfinite = ~(np.isfinite(data) & np.isfinite(uncertainty))
        data[nonfinite] = np.nan
        uncertainty[nonfinite] = np.nan
        mask[nonfinite] |= MASK_NONFINITE

    hdr["CALSTAT"] = (calstat_of(use.bias_applied, use.dark_applied, flat is not None),
                      "calibration applied: B bias, D dark, F flat")
    if use.note:
        hdr["CLPDNOTE"] = (use.note, "why the master dark was not applied")
    elif use.dark_applied and dark is None:
        hdr["CLPDSCAL"] = (1.0, "master dark subtracted whole, unscaled")
        hdr["CLPDBIAS"] = (True, "the master dark held the bias: B and D together")
    if bias is None:
        hdr["CLPPED"] = (float(pedestal), "[ADU] bias pedestal left in (no master bias)")
    hdr["BUNIT"] = ("ADU", "calibrated, flat-fielded ADU")
    hdr["CLPMODE"] = (mode, "clinepipe reduction mode")
    hdr["CLPVER"] = (__version__, "clinepipe version")
    if dark is not None:
        hdr["CLPDSCAL"] = (float(k), "master dark scaled by EXPTIME / dark EXPTIME")
    hdr["CLPGAIN"] = (gain, "[e-/ADU] gain used for the uncertainty")
    hdr["CLPRDN"] = (float(read_noise), "[e-] read noise used for the uncertainty")
    return ReducedFrame(data=data.astype(np.float32, copy=False),
                        uncertainty=uncertainty.astype(np.float32, copy=False), mask=mask, header=hdr)


def _apply_overscan(raw, bias, dark, flat, saturated, hot, hdr, name):
    try:
        b_rows, b_cols = parse_section(hdr["BIASSEC"])
        t_rows, t_cols = parse_section(hdr["TRIMSEC"])
    except ValueError as exc:
        raise BadInput(f"{name}: BIASSEC/TRIMSEC cannot be read ({brief(exc)}).",
                       reason="bad BIASSEC/TRIMSEC") from exc
    ny, nx = raw.shape
    for rows, cols in ((b_rows, b_cols), (t_rows, t_cols)):
        if rows.stop > ny or cols.stop > nx:
            raise BadInput(f"{name}: BIASSEC/TRIMSEC lie outside the {nx}x{ny} image.",
                           reason="bad BIASSEC/TRIMSEC")
    level = _overscan_level(raw, b_rows, b_cols)
    raw = raw - level
    trim = (t_rows, t_cols)
    raw, saturated, hot = raw[trim], saturated[trim], hot[trim]
    hdr["CLPOSCAN"] = (float(np.mean(level)), "[ADU] mean overscan level subtracted")
    if bias is not None:
        bias_level = _overscan_level(bias, b_rows, b_cols)
        bias = (bias - bias_level)[trim]
        hdr["CLPOSCB"] = (float(np.mean(bias_level)), "[ADU] mean overscan level of the master bias")
    dark = None if dark is None else dark[trim]
    flat = None if flat is None else flat[trim]
    hdr["CLPTRIM"] = (str(hdr["TRIMSEC"]), "trimmed to this section of the raw frame")
    for key in ("BIASSEC", "TRIMSEC", "DATASEC"):
        hdr.remove(key, ignore_missing=True)
    for axis, sl in (("1", t_cols), ("2", t_rows)):  # the WCS follows the trimmed pixels
        if f"CRPIX{axis}" in hdr:
            hdr[f"CRPIX{axis}"] = float(hdr[f"CRPIX{axis}"]) - sl.start
    return raw, bias, dark, flat, saturated, hot


def _clean_cosmic_rays(data, var, mask, bias_level, gain, read_noise, saturation) -> int:
    """Run L.A.Cosmic (astroscrappy) on the calibrated frame; cleans ``data`` in place."""
    import astroscrappy

    finite = np.isfinite(data) & np.isfinite(var)
    inmask = (~finite) | ((mask & (MASK_SATURATED | MASK_BAD_FLAT)) != 0)
    indat = np.where(finite, data, 0.0).astype(np.float32)
    invar = np.where(finite, var, np.float32(1e10)).astype(np.float32)
    # astroscrappy compares satlevel with data * gain (electrons); the calibrated frame has
    # lost the bias level, so the raw saturation less the bias is where it saturates
    satlevel = float((saturation - bias_level) * gain)
    crmask, cleaned = astroscrappy.detect_cosmics(
        indat, inmask=inmask, invar=invar, gain=float(gain), readnoise=float(read_noise),
        satlevel=satlevel, sigclip=4.5, sigfrac=0.3, objlim=5.0, cleantype="meanmask")
    crmask &= ~inmask
    data[crmask] = cleaned[crmask]
    mask[crmask] |= MASK_COSMIC_RAY
    return int(crmask.sum())


@functools.lru_cache(maxsize=6)
def _cached_master(path: str, mtime_ns: int, size: int):
    from clinepipe.ccd.masters import read_master

    data, header = read_master(Path(path))
    data.setflags(write=False)  # shared between lights: never changed in place
    return data, header


def _load_master(path: Path):
    st = Path(path).stat()
    return _cached_master(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def _master_parts(obj):
    """(data, header-or-None, noise, exptime, name) of a master given in any accepted form."""
    from clinepipe.ccd.masters import MasterResult

    if isinstance(obj, dict):
        src = obj.get("data") if obj.get("data") is not None else obj.get("path")
        data, header, noise, exptime, name = _master_parts(src)
        noise = obj.get("noise", noise)
        exptime = obj.get("exptime", exptime)
        if obj.get("path") is not None:
            name = Path(obj["path"]).name
        return data, header, noise, exptime, name
    if isinstance(obj, MasterResult):
        return obj.data, None, obj.noise, obj.exptime, ""
    if isinstance(obj, np.ndarray):
        return obj, None, None, None, ""
    data, header = _load_master(Path(obj))
    noise = header.get("CLPNOISE")
    exptime = header.get("EXPTIME")
    return data, header, noise, exptime, Path(obj).name


#: how a waiting light says it could be measured now
MEASURE_HINT = 'set [reduction] without_masters = "measure" to measure without it'


def _missing(name: str, what: str, binning: int) -> MissingCalibration:
    reason = f"waiting for calibration: no {what} for binning {binning}"
    return MissingCalibration(f"{name}: {reason} ({MEASURE_HINT}).", reason=reason)


def reduce_light(path: Path, info: FrameInfo, masters: dict | None = None, *, bias=None,
                 dark=None, flat=None, dark_exptime: float | None = None,
                 mode: str | None = None, camera=None, reduction=None) -> ReducedFrame:
    """Read a raw light once and reduce it with its masters.

    Parameters
    ----------
    path : Path
        The raw light (the archive copy); read only.
    info : FrameInfo
        Its header facts (from :func:`clinepipe.ingest.read_frame_info`).
    masters : dict, optional
        ``{"bias": m, "dark": m, "flat": m}``; each ``m`` a FITS path (as written by
        :func:`clinepipe.masters.write_master`), an array, a
        :class:`~clinepipe.masters.MasterResult`, or a dict with ``data``/``path``,
        ``noise`` and ``exptime``. The keywords ``bias``/``dark``/``flat`` are the same.
    dark_exptime : float, optional
        Overrides the dark's exposure (else its ``exptime``/EXPTIME).
    mode, camera, reduction
        The reduction mode (default: ``reduction.mode``), :class:`CameraConfig` (gain when the
        frame has no EGAIN, read noise, saturation, ``max_ccd_temp``) and
        :class:`ReductionConfig` (``overscan``, ``cosmic_rays``, ``without_masters``: with
        ``"measure"`` a master not given is left out, see :func:`reduce_frame`).

    Raises
    ------
    BadInput
        ``CCD too warm: -1.2 °C > -3.0 °C``; ``subframe without origin``; ``subframe outside
        the master``; the raw file's own problems (see :mod:`clinepipe.ingest`).
    MissingCalibration
        ``waiting for calibration: no bias for binning 2`` (``no dark …``,
        ``no R-band flat …``) when a master is not given or its file does not exist (and
        ``reduction.without_masters`` is ``"wait"``).
    """
    from clinepipe.config import CameraConfig, ReductionConfig
    from clinepipe.ingest.fits_reader import check_data, read_image

    camera = camera or CameraConfig()
    reduction = reduction or ReductionConfig()
    mode = mode or reduction.mode
    path = Path(path)
    name = path.name
    given = dict(masters or {})
    for key, value in (("bias", bias), ("dark", dark), ("flat", flat)):
        if value is not None:
            given[key] = value

    if (info.ccd_temp is not None and camera.max_ccd_temp is not None
            and info.ccd_temp > camera.max_ccd_temp):
        reason = f"CCD too warm: {info.ccd_temp:.1f} °C > {camera.max_ccd_temp:.1f} °C"
        raise BadInput(f"{name}: CCD too warm ({info.ccd_temp:.1f} °C > "
                       f"{camera.max_ccd_temp:.1f} °C allowed).", reason=reason)
    what = {"bias": "bias", "dark": "dark", "flat": f"{info.filter}-band flat"}
    for key in ("bias", "dark", "flat"):
        m = given.get(key)
        target = m.get("data") if isinstance(m, dict) and m.get("data") is not None else (
            m.get("path") if isinstance(m, dict) else m)
        if target is None or (isinstance(target, (str, os.PathLike)) and not Path(target).is_file()):
            if reduction.without_masters != "measure":
                raise _missing(name, what[key], info.binning)
            given[key] = None

    raw, header = read_image(path)
    if not _has_information(raw):
        check_data(raw, path)  # says why: all-NaN or constant data
    has_origin = "XORGSUBF" in header or "YORGSUBF" in header
    yorg = info.yorg
    parts = {}
    for key in ("bias", "dark", "flat"):
        if given.get(key) is None:  # measured without it
            parts[key] = (None, None, None, "")
            continue
        data, _, noise, exptime, mname = _master_parts(given[key])
        if has_origin:
            yorg = bottom_up_origin(header, info.yorg, data.shape[0], raw.shape[0])
        cropped = crop_master(np.asarray(data, dtype=np.float32), info.xorg, yorg, raw.shape,
                              has_origin=has_origin, name=name)
        parts[key] = (cropped, noise, exptime, mname)
    t_dark = dark_exptime if dark_exptime is not None else parts["dark"][2]
    gain = info.gain or positive_or_none(header.get("EGAIN")) or camera.gain
    frame = reduce_frame(
        raw, bias=parts["bias"][0], dark=parts["dark"][0], dark_exptime=positive_or_none(t_dark),
        flat=parts["flat"][0], exptime=info.exptime, mode=mode, gain=gain,
        read_noise=camera.read_noise, saturation=_saturation(info, header, camera, raw),
        bias_noise=finite_or_none(parts["bias"][1]), dark_noise=finite_or_none(parts["dark"][1]),
        flat_noise=finite_or_none(parts["flat"][1]), overscan=reduction.overscan,
        cosmic_rays=reduction.cosmic_rays, header=header, name=name,
        dark_holds_bias=holds_bias(given.get("dark")))
    if header.get(FLIPPED) and has_origin and yorg != info.yorg:  # for the masters' crop
        frame.header["CLPYORG"] = (yorg, "subframe origin row in the bottom-up masters")
    for key, card in (("bias", "BIASFILE"), ("dark", "DARKFILE"), ("flat", "FLATFILE")):
        if parts[key][3]:
            frame.header[card] = (parts[key][3], f"master {key}")
    return frame


def _saturation(info, header, camera, raw=None) -> float:
    """The raw ADU at which a pixel is saturated: the header's (SATURATE, DATAMAX, MAXLIN;
    a FrameInfo rebuilt from the database no longer carries it), else the ceiling of a 12- or
    14-bit ADC in a 16-bit file when ``raw`` shows one (:func:`clinepipe.headers.adc_saturation`;
    header ``CLPADC``), else ``[camera] saturation``."""
    from clinepipe.headers import adc_saturation, read_header_facts

    given = info.saturation or read_header_facts(header).saturation
    if given:
        return given
    adc = adc_saturation(raw) if raw is not None else None
    if adc is not None and adc[1] < camera.saturation:
        header["CLPADC"] = (adc[0], f"ADC bits: every pixel <= {adc[1]:g} ADU, some at it")
        return adc[1]
    return camera.saturation


def _has_information(raw: np.ndarray) -> bool:
    """True when the first row already holds two different finite values, so the frame is
    neither all-NaN nor constant (what :func:`clinepipe.ingest.check_data` checks with full
    passes over the frame); False means "run check_data"."""
    row = raw[0] if raw.ndim == 2 and raw.shape[0] else raw.ravel()[:0]
    row = row[np.isfinite(row)]
    return row.size >= 2 and bool(row.min() != row.max())


def positive_or_none(value) -> float | None:
    """``value`` as a float when it is a finite positive number (a header value), else None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _find_master(masters_dir: Path, kind: str, binning: int, filt: str | None) -> Path | None:
    from clinepipe.ccd.masters import master_path

    path = master_path(masters_dir, kind, binning, filt)
    for candidate in (path, path.with_suffix(".fit")):  # the 2018 MasterCal used .fit
        if candidate.is_file():
            return candidate
    return None


def reduce_files(lights, masters_dir: Path, output_dir: Path, *, mode: str = "default",
                 camera=None, site=None, reduction=None) -> list[tuple[Path, Path | str]]:
    """The core of ``clinepipe reduce``: each light -> ``output_dir/<stem>_calibrated.fits``.

    Masters are read from ``masters_dir/binning{N}/bias_master.fits``, ``dark_master.fits``,
    ``flat_master_{FILTER}.fits`` (as :func:`clinepipe.masters.make_masters` writes them; a
    ``.fit`` ending is accepted too). A frame that cannot be reduced is reported with its
    reason and the others go on.

    Returns
    -------
    list of (Path, Path or str)
        Per input, in order: the output file, or the reason it was not written.
    """
    from clinepipe.config import CameraConfig, ReductionConfig, SiteConfig
    from clinepipe.ingest.classify import read_frame_info

    camera = camera or CameraConfig()
    site = site or SiteConfig()
    reduction = reduction or ReductionConfig()
    output_dir = Path(output_dir)
    results: list[tuple[Path, Path | str]] = []
    written: dict[Path, Path] = {}
    for light in lights:
        light = Path(light)
        try:
            info = read_frame_info(light, camera, site)
            if info.kind != "light":
                raise BadInput(f"{light.name}: is a {info.kind} frame, not a light.",
                               reason=f"not a light frame ({info.kind})")
            out = output_dir / calibrated_name(light.name)
            if out in written:
                raise BadInput(f"{light.name}: its output {out.name} was already written for "
                               f"{written[out]}.", reason=f"output name collides with {written[out]}")
            masters = {key: _find_master(Path(masters_dir), key, info.binning,
                                         info.filter if key == "flat" else None)
                       for key in ("bias", "dark", "flat")}
            frame = reduce_light(light, info, masters, mode=mode, camera=camera,
                                 reduction=reduction)
            output_dir.mkdir(parents=True, exist_ok=True)
            write_reduced(out, frame, masters_used={k: v for k, v in masters.items()})
            written[out] = light
            results.append((light, out))
        except ClinepipeError as exc:
            results.append((light, exc.reason))
    return results


