"""What a raw frame is (kind, time, exposure, binning, filter, temperature) from its header, and its observing night."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path
from astropy.io import fits
from astropy.time import Time
from clinepipe.config import CameraConfig, SiteConfig
from clinepipe.ingest.frame_info import FrameInfo
from clinepipe.ingest.fits_reader import _bad, _check_complete, _hdu_shape, _image_data, _merged_header, _open_hdul, check_data, image_hdu_index


#: IMAGETYP value (lower case, stripped) -> frame kind
FRAME_TYPES = {
    "bias frame": "bias", "bias": "bias", "zero": "bias",
    "dark frame": "dark", "dark": "dark",
    "flat field": "flat", "flat": "flat",
    "light frame": "light", "light": "light", "object": "light",
}

#: the named reasons this module raises (``BadInput.reason``); those ending in ``…`` carry a value
REASONS = (
    "empty file", "not FITS", "truncated FITS", "no image data", "missing IMAGETYP",
    "unknown frame type '…'", "missing EXPTIME", "negative EXPTIME", "missing DATE-OBS",
    "unknown binning …", "missing FILTER", "bad subframe origin", "all-NaN data",
    "constant data", "file changed while being copied", "unreadable file",
)

def _keyword(header, *names):
    for name in names:
        if name in header:
            value = header[name]
            if isinstance(value, str):
                value = value.strip()
            if value is not None and value != "" and not isinstance(value, fits.card.Undefined):
                return value
    return None


def _float(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _parse_date_obs(header) -> Time | None:
    value = _keyword(header, "DATE-OBS", "DATE_OBS")
    if not isinstance(value, str):
        return None
    text = value.strip()
    if "T" not in text and len(text) == 10:  # old style: date only, time in TIME-OBS / UT
        clock = _keyword(header, "TIME-OBS", "UT", "UTSTART")
        if isinstance(clock, str) and clock.strip():
            text = f"{text}T{clock.strip()}"
        else:
            return None
    text = text.rstrip("Z")
    for fmt in ("isot", "fits"):
        try:
            t = Time(text, format=fmt, scale="utc")
            t.jd  # noqa: B018 - forces the conversion to be validated
            return t
        except (ValueError, TypeError):
            continue
    return None


def _binning(path: Path, header) -> int:
    xb, yb = header.get("XBINNING"), header.get("YBINNING")
    xb = yb if xb is None else xb
    yb = xb if yb is None else yb
    if xb is None:
        return 1
    try:
        xi, yi = float(xb), float(yb)
    except (TypeError, ValueError):
        raise _bad(path, f"unknown binning {xb!r}", f"has an unreadable binning {xb!r}") from None
    if xi != yi:
        label = f"{xb}x{yb}"
        raise _bad(path, f"unknown binning {label}", f"has unequal binning {label} (XBINNING x YBINNING)")
    if xi != int(xi) or not 1 <= xi <= 4:
        raise _bad(path, f"unknown binning {xb}", f"has an unknown binning {xb} (1 to 4 expected)")
    return int(xi)


def _origin(path: Path, header, key: str) -> int:
    value = header.get(key)
    if value is None:
        return 0
    v = _float(value)
    if v is None or v < 0 or v != int(v):
        raise _bad(path, "bad subframe origin", f"has an unusable {key} = {value!r}")
    return int(v)


def read_frame_info(path: Path, camera: CameraConfig, site: SiteConfig, *,
                    check: bool = True) -> FrameInfo:
    """Read what the header of a raw frame says, or raise :class:`BadInput` with a named reason.

    Parameters
    ----------
    path : Path
        A raw frame (plain, ``.gz`` or fpack ``.fz``). Opened read-only; never modified.
    camera : CameraConfig
        Not used for the header facts themselves (EGAIN stays None when absent, and the
        config's gain applies later); accepted so the call is uniform across stages.
    site : SiteConfig
        Its longitude gives the local observing night.
    check : bool
        Also read the pixels: catches truncation inside the data and runs :func:`check_data`
        (``all-NaN data``, ``constant data``). A frame is a few MB; it is read once here.

    Returns
    -------
    FrameInfo
        ``shape`` is numpy ``(ny, nx)``; ``xorg``/``yorg`` are XORGSUBF/YORGSUBF (binned,
        0-based), 0 when absent. Whether the frame is a subframe cannot be decided from the
        header alone (the full sensor size is not configured): see :func:`is_subframe`; the
        reduce step raises "subframe without origin" when a smaller frame has no origin.

    Notes
    -----
    Reasons, in the order they are checked: ``empty file``, ``not FITS``, ``truncated FITS``,
    ``no image data``, ``missing IMAGETYP``, ``unknown frame type '<value>'``,
    ``missing EXPTIME`` (EXPOSURE is accepted too), ``negative EXPTIME``, ``missing DATE-OBS``
    (absent or unparsable), ``unknown binning <value>``, ``missing FILTER`` (flats and lights),
    ``bad subframe origin``, then ``all-NaN data``/``constant data``.
    """
    path = Path(path)
    hdul, size = _open_hdul(path)
    with hdul:
        index = image_hdu_index(hdul)
        if index is None:
            raise _bad(path, "no image data", "has no 2-D image in its primary HDU or first image extension")
        offset = _check_complete(path, hdul, index, size)
        header = _merged_header(hdul, index)
        shape = _hdu_shape(hdul[index])
        if check:
            check_data(_image_data(path, hdul, index, offset), path)

    imagetyp = _keyword(header, "IMAGETYP")
    if imagetyp is None:
        raise _bad(path, "missing IMAGETYP", "has no IMAGETYP keyword (frame type unknown)")
    kind = FRAME_TYPES.get(str(imagetyp).strip().lower())
    if kind is None:
        raise _bad(path, f"unknown frame type '{imagetyp}'", f"has an unknown frame type '{imagetyp}'")

    exptime = _float(_keyword(header, "EXPTIME", "EXPOSURE"))
    if exptime is None:
        raise _bad(path, "missing EXPTIME", "has no usable EXPTIME (or EXPOSURE) keyword")
    if exptime < 0:
        raise _bad(path, "negative EXPTIME", f"has a negative EXPTIME {exptime:g}")

    t0 = _parse_date_obs(header)
    if t0 is None:
        raise _bad(path, "missing DATE-OBS", "has no parsable DATE-OBS keyword")

    binning = _binning(path, header)

    filt = _keyword(header, "FILTER")
    filt = str(filt).strip() if filt is not None else None
    if kind in ("flat", "light") and not filt:
        raise _bad(path, "missing FILTER", f"is a {kind} frame without a FILTER keyword")
    if kind in ("bias", "dark"):
        filt = filt or None

    jd_start = float(t0.jd)
    jd_mid = jd_start + exptime / 2.0 / 86400.0
    obj = _keyword(header, "OBJECT")
    return FrameInfo(
        path=path, kind=kind, binning=binning, filter=filt, exptime=exptime,
        ccd_temp=_float(_keyword(header, "CCD-TEMP", "CCD_TEMP")),
        date_obs=t0.isot, jd_start=jd_start, jd_mid=jd_mid,
        night=observing_night(jd_start, site.longitude), shape=shape,
        xorg=_origin(path, header, "XORGSUBF"), yorg=_origin(path, header, "YORGSUBF"),
        gain=_float(_keyword(header, "EGAIN")), object=str(obj) if obj is not None else None,
    )


def is_subframe(info: FrameInfo, master_shape: tuple[int, int]) -> bool:
    """True when the frame is smaller than (or placed inside) a master of ``master_shape``.

    The sensor's full size per binning is not in the configuration, so "subframe" is decided
    against the masters of the same binning: a frame that does not cover the master exactly.
    """
    return tuple(info.shape) != tuple(master_shape) or info.xorg != 0 or info.yorg != 0


_UNIX_EPOCH_JD = 2440587.5

def observing_night(jd_utc: float, longitude_deg: float) -> str:
    """The local observing night of a UTC Julian date, as ``YYYYMMDD``.

    A night runs from local noon to the next local noon in local *mean solar* time at the
    site's longitude (east positive): the night is the calendar date of
    ``UTC + longitude/15 h - 12 h``. At Greensboro (79.81 W) local noon is about 17:19 UTC,
    so 2024-03-02 03:00 UTC belongs to night 20240301. The boundary instant belongs to the
    new night. Times are rounded to the millisecond first, so a boundary given as a JD is
    not split by floating-point noise.
    """
    seconds = (float(jd_utc) - _UNIX_EPOCH_JD) * 86400.0
    shifted = round(seconds + float(longitude_deg) / 15.0 * 3600.0 - 12 * 3600.0, 3)
    days = math.floor(shifted / 86400.0)
    return (date(1970, 1, 1) + timedelta(days=days)).strftime("%Y%m%d")


