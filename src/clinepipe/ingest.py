"""Ingest: find new raw frames, read their header facts, and copy them into the archive.

Everything here only *reads* the camera's drop folder: no raw file is ever modified, moved or
deleted (``archive_copy`` writes only below the archive). Every problem with a file is a
:class:`~clinepipe.errors.BadInput` whose ``reason`` is one of a small set of named reasons
(see :data:`REASONS`) and whose ``message`` is one sentence naming the file.

Public functions
----------------
find_new_files(incoming, settle_seconds=2.0, now=None) -> list[Path]
sha256_file(path, chunk=1 << 20) -> str
read_frame_info(path, camera, site, *, check=True) -> FrameInfo
read_image(path, *, hdu=None) -> (float32 ndarray, astropy Header)
check_data(data, path) -> None
observing_night(jd_utc, longitude_deg) -> "YYYYMMDD"
is_subframe(info, master_shape) -> bool
archive_copy(src, archive_root, info, sha256=None) -> Path
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import shutil
import tempfile
import time
import warnings
import zlib
from datetime import date, timedelta
from pathlib import Path

import bottleneck as bn
import numpy as np
from astropy.io import fits
from astropy.time import Time

from .config import CameraConfig, SiteConfig
from .errors import BadInput
from .frames import FrameInfo

__all__ = [
    "FITS_SUFFIXES",
    "COMPRESSED_SUFFIXES",
    "FRAME_TYPES",
    "REASONS",
    "is_fits_name",
    "fits_stem",
    "find_new_files",
    "iter_fits_files",
    "sha256_file",
    "read_frame_info",
    "read_image",
    "image_hdu_index",
    "check_data",
    "brief",
    "observing_night",
    "is_subframe",
    "archive_copy",
]

#: plain FITS name endings (compared case-insensitively)
FITS_SUFFIXES = (".fit", ".fits", ".fts")
#: compressed FITS name endings: gzip of a whole file, or a tile-compressed (fpack) file
COMPRESSED_SUFFIXES = (".fit.gz", ".fits.gz", ".fts.gz", ".fz")

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

_GZIP_MAGIC = b"\x1f\x8b"
_FITS_MAGIC = b"SIMPLE  ="
_BLOCK = 2880


# ----------------------------------------------------------------------------- finding files

def is_fits_name(name: str) -> bool:
    """True when ``name`` ends in a FITS suffix (plain or compressed), any case."""
    low = name.lower()
    return low.endswith(FITS_SUFFIXES) or low.endswith(COMPRESSED_SUFFIXES)


def fits_stem(name: str) -> str:
    """``name`` without its FITS suffix(es): ``a.fits.gz`` -> ``a``, ``b.FIT`` -> ``b``."""
    low = name.lower()
    for suffix in sorted(COMPRESSED_SUFFIXES + FITS_SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix):
            stem = name[: -len(suffix)]
            if suffix == ".fz":  # fpack names are usually ``x.fits.fz``
                return fits_stem(stem) if is_fits_name(stem) else stem
            return stem
    return Path(name).stem


def iter_fits_files(root: Path):
    """Yield ``(path, stat)`` of every non-hidden FITS file below ``root`` (hidden folders skipped)."""
    root = Path(root)
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or not is_fits_name(name):
                continue
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:  # vanished between the listing and the stat
                continue
            if path.is_file():
                yield path, st


def find_new_files(incoming: Path, settle_seconds: float = 2.0, now: float | None = None) -> list[Path]:
    """Every FITS file below ``incoming``, sorted, that is finished being written.

    Parameters
    ----------
    incoming : Path
        The camera's drop folder; searched recursively. Only read, never modified.
    settle_seconds : float
        The "size/mtime not yet stable" rule: a file whose modification time is less than
        this many seconds before ``now`` may still be growing (a camera or a copy writes it)
        and is left for a later call. Writing a file updates its mtime, so an mtime older
        than ``settle_seconds`` means its size has not changed for that long.
    now : float, optional
        The current time (POSIX seconds); ``time.time()`` when not given (for tests).

    Returns
    -------
    list of Path
        ``.fit .fits .fts`` in any case, and compressed ``.fit.gz .fits.gz .fts.gz .fz``;
        hidden files (and files in hidden folders, e.g. a sync tool's ``.partial/``) skipped.
    """
    now = time.time() if now is None else float(now)
    found = []
    for path, st in iter_fits_files(Path(incoming)):
        if st.st_mtime > now - settle_seconds:
            continue
        found.append(path)
    return sorted(found)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in ``chunk``-byte pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- reading FITS

def brief(exc: BaseException) -> str:
    """An exception's text as a clause that fits inside one sentence (first line, no full stops)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace(". ", "; ").rstrip(".").strip()


def _bad(path: Path, reason: str, sentence: str) -> BadInput:
    return BadInput(f"{Path(path).name}: {sentence.rstrip('.')}.", reason=reason)


def _is_gzip_name(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _open_hdul(path: Path, *, memmap: bool = False):
    """Open ``path`` as FITS, classifying failures; returns ``(HDUList, file_size)``.

    A gzip file is decompressed into memory first (frames are tens of MB at most), so the
    decompressed size can be checked against what the headers promise like a plain file's.
    Memory mapping is off: astropy cannot memory-map integer data with BZERO (every 16-bit
    camera frame), and the frame is read once anyway.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _bad(path, "unreadable file", f"cannot be read ({exc.strerror or brief(exc)})") from exc
    if size == 0:
        raise _bad(path, "empty file", "the file is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(len(_FITS_MAGIC))
    source: object = path
    if head.startswith(_GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as gz:
                raw = gz.read()
        except (EOFError, zlib.error) as exc:
            raise _bad(path, "truncated FITS", "the gzip stream ends early (truncated FITS)") from exc
        except gzip.BadGzipFile as exc:
            raise _bad(path, "not FITS", "is not a FITS file (bad gzip data)") from exc
        if not raw.startswith(_FITS_MAGIC):
            raise _bad(path, "not FITS", "is not a FITS file (no SIMPLE card)")
        size = len(raw)
        source = io.BytesIO(raw)
        memmap = False
    elif not head.startswith(_FITS_MAGIC):
        if len(head) < len(_FITS_MAGIC) and _FITS_MAGIC.startswith(head):
            raise _bad(path, "truncated FITS", "the file ends inside its header (truncated FITS)")
        raise _bad(path, "not FITS", "is not a FITS file (no SIMPLE card)")
    if size < _BLOCK:
        raise _bad(path, "truncated FITS", "the file ends inside its header (truncated FITS)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            hdul = fits.open(source, memmap=memmap, lazy_load_hdus=False)
        except Exception as exc:  # astropy raises OSError/ValueError/... for a damaged header
            text = str(exc).lower()
            if "end card" in text or "truncat" in text or "empty or corrupt" in text:
                raise _bad(path, "truncated FITS", "the header is cut short (truncated FITS)") from exc
            raise _bad(path, "not FITS", f"is not a readable FITS file ({brief(exc)})") from exc
    return hdul, size


def image_hdu_index(hdul) -> int | None:
    """Index of the HDU holding the 2-D image: the primary when it has one, else the first
    image extension (fpack ``.fz`` files keep the image in extension 1); None when none."""
    for i, hdu in enumerate(hdul):
        if i > 0 and not isinstance(hdu, (fits.ImageHDU, fits.CompImageHDU)):
            continue
        if hdu.header.get("NAXIS", 0) == 2 or (
                isinstance(hdu, fits.CompImageHDU) and len(getattr(hdu, "shape", ())) == 2):
            return i
        if i == 0 and hdu.header.get("NAXIS", 0) != 0:
            return None  # the primary has data, but not a 2-D image
    return None


def _hdu_shape(hdu) -> tuple[int, int]:
    if isinstance(hdu, fits.CompImageHDU):
        return tuple(int(n) for n in hdu.shape)
    return int(hdu.header["NAXIS2"]), int(hdu.header["NAXIS1"])


def _check_complete(path: Path, hdul, index: int, size: int) -> int:
    """Raise "truncated FITS" when the file is shorter than its image HDU's data needs; else
    return where the image data starts in the file (bytes).

    For an uncompressed image the need is exact (header end + |BITPIX|/8 * NAXIS1 * NAXIS2;
    a missing final padding block is tolerated since the pixels are all there). For a
    tile-compressed HDU it is the end of the padded table minus one block; a cut inside the
    last block is then caught when the tiles are decompressed.
    """
    info = hdul.fileinfo(index)
    hdu = hdul[index]
    if isinstance(hdu, fits.CompImageHDU):
        needed = info["datLoc"] + max(info["datSpan"] - _BLOCK + 1, 0)
    else:
        ny, nx = _hdu_shape(hdu)
        needed = info["datLoc"] + abs(int(hdu.header["BITPIX"])) // 8 * nx * ny
    if size < needed:
        raise _bad(path, "truncated FITS",
                   f"the file has {size} bytes but its header needs {needed} (truncated FITS)")
    return info["datLoc"]


def _load_data(path: Path, hdu) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data = hdu.data
        except Exception as exc:  # short buffers, corrupt tiles
            raise _bad(path, "truncated FITS", f"the image data cannot be read ({brief(exc)})") from exc
    if data is None or data.ndim != 2:
        raise _bad(path, "no image data", "has no 2-D image")
    return data


def _merged_header(hdul, index: int) -> fits.Header:
    """The image HDU's header, with the primary's cards it lacks (MEF ``INHERIT`` style)."""
    header = hdul[index].header.copy()
    if index > 0:  # an extension's structural cards do not belong in a primary header
        for key in ("XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "EXTVER", "INHERIT"):
            header.remove(key, ignore_missing=True)
        for card in hdul[0].header.cards:
            if card.keyword and card.keyword not in header and card.keyword not in (
                    "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "COMMENT", "HISTORY", ""):
                header.append(card)
    return header


def read_image(path: Path, *, hdu: int | None = None) -> tuple[np.ndarray, fits.Header]:
    """The 2-D image of ``path`` as float32 (BZERO/BSCALE applied) and its header.

    Raises :class:`BadInput` with the same named reasons as :func:`read_frame_info`.
    """
    path = Path(path)
    hdul, size = _open_hdul(path)
    with hdul:
        index = image_hdu_index(hdul) if hdu is None else hdu
        if index is None:
            raise _bad(path, "no image data", "has no 2-D image")
        offset = _check_complete(path, hdul, index, size)
        # no copy: the data is read into memory (no memory map), and nothing else keeps it
        data = np.asarray(_image_data(path, hdul, index, offset), dtype=np.float32)
        header = _merged_header(hdul, index)  # after the data: astropy's scaling edits it
    return data, header


def _image_data(path: Path, hdul, index: int, offset: int) -> np.ndarray:
    """The image's pixels with BZERO/BSCALE applied: read here as float32 when the layout
    allows (:data:`_PLAIN`), else astropy's scaled data (any numeric dtype)."""
    layout = _plain_layout(path, hdul, index, offset)
    return _read_plain(path, *layout) if layout else _load_data(path, hdul[index])


# The data layouts read_image reads itself: (BITPIX, BZERO) whose float32 values and header
# are exactly astropy's (16-bit unsigned camera frames, the common case: read_image takes 2.1
# ms instead of 4.0 on 1117x844, astropy converting to uint16 and then float32 in two passes).
_PLAIN = {(8, 0.0): np.dtype("u1"), (16, 0.0): np.dtype(">i2"), (16, 32768.0): np.dtype(">i2"),
          (-32, 0.0): np.dtype(">f4"), (-64, 0.0): np.dtype(">f8")}


def _plain_layout(path: Path, hdul, index: int, offset: int):
    """``(offset, dtype, shape, bzero)`` of an image whose data starts at ``offset`` bytes, if
    :func:`_read_plain` can read it; else None (compressed or gzip files, BSCALE, BLANK, other
    BZERO values: astropy scales those)."""
    hdu = hdul[index]
    if isinstance(hdu, fits.CompImageHDU) or _is_gzip(path):
        return None
    h = hdu.header
    try:
        key = (int(h["BITPIX"]), float(h.get("BZERO", 0.0)))
        plain = float(h.get("BSCALE", 1.0)) == 1.0 and "BLANK" not in h and key in _PLAIN
        shape = _hdu_shape(hdu)
    except (KeyError, TypeError, ValueError):
        return None
    if not plain:
        return None
    return offset, _PLAIN[key], shape, key[1]


def _read_plain(path: Path, offset: int, dtype: np.dtype, shape: tuple, bzero: float) -> np.ndarray:
    raw = np.empty(shape, dtype)
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            got = fh.readinto(memoryview(raw).cast("B"))
    except OSError as exc:
        raise _bad(path, "unreadable file", f"cannot be read ({exc.strerror or brief(exc)})") from exc
    if got != raw.nbytes:
        raise _bad(path, "truncated FITS", "the image data cannot be read (truncated FITS)")
    out = np.empty(shape, np.float32)
    if bzero:
        np.add(raw, np.float32(bzero), out=out, dtype=np.float32, casting="unsafe")
    else:
        out[...] = raw
    return out


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(_GZIP_MAGIC)).startswith(_GZIP_MAGIC)


def check_data(data: np.ndarray, path: Path) -> None:
    """Raise :class:`BadInput` for an image that holds no information.

    Reasons: ``all-NaN data`` (no finite pixel), ``constant data`` (every finite pixel equal,
    e.g. a camera readout failure that wrote zeros).
    """
    arr = np.asarray(data)
    if arr.size == 0:
        raise _bad(path, "no image data", "has an empty image")
    if arr.dtype.kind == "f":
        if bn.allnan(arr):
            raise _bad(path, "all-NaN data", "every pixel is NaN (all-NaN data)")
        lo, hi = bn.nanmin(arr), bn.nanmax(arr)
    else:
        lo, hi = arr.min(), arr.max()
    if lo == hi:
        raise _bad(path, "constant data", f"every pixel has the same value {lo:g} (constant data)")


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


# ----------------------------------------------------------------------------- nights

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


# ----------------------------------------------------------------------------- archive copy

def _with_suffix_tag(name: str, tag: str) -> str:
    stem = fits_stem(name)
    return f"{stem}_{tag}{name[len(stem):]}"


def archive_copy(src: Path, archive_root: Path, info: FrameInfo, sha256: str | None = None) -> Path:
    """Copy a raw frame to ``archive_root/raw/<night>/<kind>/<original name>``.

    ``shutil.copy2`` semantics (bytes, permission bits and times) but written atomically: a
    temporary file in the destination folder, flushed to disk, then ``os.replace``d, so a
    crash never leaves a partial copy under the final name. ``src`` is only read.

    If a file of that name with the same SHA-256 is already there, nothing is written and its
    path is returned (idempotent). If a *different* file has the name (two nights' ``dark_1.fit``
    land in one folder only if clocks are odd, but a camera reusing names is common), the copy
    is named ``<stem>_<first 8 hex of sha256><suffix>``.

    Raises ``BadInput("file changed while being copied")`` when the bytes copied do not hash
    to ``sha256`` (the camera was still writing it).
    """
    src = Path(src)
    expected = sha256 or sha256_file(src)
    folder = Path(archive_root) / "raw" / info.night / info.kind
    folder.mkdir(parents=True, exist_ok=True)
    candidates = [src.name, _with_suffix_tag(src.name, expected[:8]),
                  _with_suffix_tag(src.name, expected[:16])]
    for name in candidates:
        dest = folder / name
        if not dest.exists():
            break
        if dest.is_file() and sha256_file(dest) == expected:
            return dest
    else:
        dest = folder / _with_suffix_tag(src.name, expected)

    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            while block := fin.read(1 << 20):
                digest.update(block)
                fout.write(block)
            fout.flush()
            os.fsync(fout.fileno())
        if digest.hexdigest() != expected:
            raise _bad(src, "file changed while being copied",
                       "changed while it was being copied (still being written?)")
        shutil.copystat(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
