"""Reading a raw FITS file's image and header: plain, gzip or tile-compressed; truncated, empty and constant files named."""

from __future__ import annotations

import gzip
import io
import warnings
import zlib
from pathlib import Path

import bottleneck as bn
import numpy as np
from astropy.io import fits

from clinepipe.errors import BadInput

_GZIP_MAGIC = b"\x1f\x8b"

_FITS_MAGIC = b"SIMPLE  ="

_BLOCK = 2880

def brief(exc: BaseException) -> str:
    """An exception's text as a clause that fits inside one sentence (first line, no full stops)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace(". ", "; ").rstrip(".").strip()


def _bad(path: Path, reason: str, sentence: str) -> BadInput:
    return BadInput(f"{Path(path).name}: {sentence.rstrip('.')}.", reason=reason)




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


def rows_top_down(header) -> bool:
    """True when the file stores its image top row first (``ROWORDER = 'TOP-DOWN'``: N.I.N.A.,
    SharpCap, MaxIm DL 6), so its rows must be reversed for FITS's bottom-up pixel coordinates;
    a WCS, image section or source list of the file counts the rows as stored and is turned
    with them (:mod:`clinepipe.ingest.row_order`)."""
    value = header.get("ROWORDER")
    return isinstance(value, str) and value.strip().upper() == "TOP-DOWN"


def mark_bottom_up(header) -> None:
    """Record in ``header`` that its image is now bottom-up (a file written from the flipped
    image, e.g. a calibrated frame, must not be flipped again when it is read)."""
    header["ROWORDER"] = ("BOTTOM-UP", "rows flipped by clinepipe from TOP-DOWN")


def read_image(path: Path, *, hdu: int | None = None) -> tuple[np.ndarray, fits.Header]:
    """The 2-D image of ``path`` as float32 (BZERO/BSCALE applied) and its header.

    A ``ROWORDER = 'TOP-DOWN'`` image is returned bottom-up (rows reversed; the header then
    says ``BOTTOM-UP``, and its WCS and image sections are turned with the rows,
    :mod:`clinepipe.ingest.row_order`), so pixel coordinates agree with the WCS. The stacker's row reader
    (:class:`clinepipe.ccd.stack._Rows`) does the same for calibration frames.

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
    if rows_top_down(header):
        from clinepipe.ingest.row_order import flip_header_rows

        data = np.ascontiguousarray(data[::-1])
        mark_bottom_up(header)
        flip_header_rows(header, data.shape[0])  # its WCS and sections count stored rows
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


def _read_plain(path: Path, offset: int, dtype: np.dtype, shape: tuple, bzero: float,
                count: int | None = None) -> np.ndarray:
    """The image as float32 (``count``: only its first ``count`` pixels, flat)."""
    raw = np.empty(shape if count is None else min(count, shape[0] * shape[1]), dtype)
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            got = fh.readinto(memoryview(raw).cast("B"))
    except OSError as exc:
        raise _bad(path, "unreadable file", f"cannot be read ({exc.strerror or brief(exc)})") from exc
    if got != raw.nbytes:
        raise _bad(path, "truncated FITS", "the image data cannot be read (truncated FITS)")
    out = np.empty(raw.shape, np.float32)
    if bzero:
        np.add(raw, np.float32(bzero), out=out, dtype=np.float32, casting="unsafe")
    else:
        out[...] = raw
    return out


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(_GZIP_MAGIC)).startswith(_GZIP_MAGIC)


#: pixels :func:`check_data` looks at first
_HEAD_PIXELS = 4096


def _head_varies(head: np.ndarray) -> bool:
    """Two different finite values among ``head`` (the first pixels): the image is then
    neither all-NaN nor constant, which settles :func:`check_data` for any real frame."""
    if head.dtype.kind == "f":
        head = head[np.isfinite(head)]
    return head.size > 1 and bool(head.min() != head.max())


def check_image(path: Path, hdul, index: int, offset: int) -> None:
    """:func:`check_data` of the image of HDU ``index`` (data at ``offset`` bytes).

    Of an image :func:`_read_plain` reads (the layout of raw camera frames), the first
    :data:`_HEAD_PIXELS` are read first: when they settle it, the whole frame is not read
    and converted (16 MB of float32 at 2048², 7 ms) only for check_data to look at those
    same pixels. Its size was checked against the header already (:func:`_check_complete`),
    so its pixels are all there. Compressed and gzip files are read whole, as their damaged
    tiles show only so.
    """
    layout = _plain_layout(path, hdul, index, offset)
    if layout and _head_varies(_read_plain(path, *layout, count=_HEAD_PIXELS)):
        return
    check_data(_image_data(path, hdul, index, offset), path)


def check_data(data: np.ndarray, path: Path) -> None:
    """Raise :class:`BadInput` for an image that holds no information.

    Reasons: ``all-NaN data`` (no finite pixel), ``constant data`` (every finite pixel equal,
    e.g. a camera readout failure that wrote zeros).
    """
    arr = np.asarray(data)
    if arr.size == 0:
        raise _bad(path, "no image data", "has an empty image")
    # two different finite values among the first pixels settle it for any real frame: then it
    # is neither all-NaN nor constant, and the three passes over the whole image are not needed
    if _head_varies(arr.reshape(-1)[:_HEAD_PIXELS]):
        return
    if arr.dtype.kind == "f":
        if bn.allnan(arr):
            raise _bad(path, "all-NaN data", "every pixel is NaN (all-NaN data)")
        lo, hi = bn.nanmin(arr), bn.nanmax(arr)
    else:
        lo, hi = arr.min(), arr.max()
    if lo == hi:
        raise _bad(path, "constant data", f"every pixel has the same value {lo:g} (constant data)")


