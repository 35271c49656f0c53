"""Calibrated frames on disk, written atomically (and in a background thread).

``[archive] keep_calibrated`` says what is kept:

* ``"all"``: float32 image, uncertainty (``UNCERT``) and mask (``MASK``) planes, uncompressed
  (8.5 MB for a 1117x844 light against its 1.9 MB raw file);
* ``"image"`` (default): the image and the mask only, tile-compressed losslessly
  (:func:`compressed_fits_chunks`; ~1.4x the raw file); :func:`read_calibrated` recomputes
  the uncertainty from the image, the masters named in the header and the noise model;
* ``"none"``: nothing is written.
"""

from __future__ import annotations

import functools
import os
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from isal import isal_zlib

from clinepipe import __version__
from clinepipe.ccd.masks import MASK_BITS

#: header cards that describe the raw integer encoding and must not survive into float output
_ENCODING_CARDS = ("BZERO", "BSCALE", "BLANK", "DATAMIN", "DATAMAX")

#: the values of ``[archive] keep_calibrated``
KEEP_CHOICES = ("image", "all", "none")


def write_reduced(path: Path, frame: ReducedFrame, *, masters_used: dict | None = None,
                  keep: str = "all") -> None:
    """Write a reduced frame atomically (temporary file, fsync, ``os.replace``).

    Primary HDU: float32 data with the frame's header, plus ``CALSTAT`` (the letters of the
    masters used, in the order B(ias), D(ark), F(lat): 'BDF' normally, 'BD'/'B' when
    ``masters_used`` lacks one), ``BIASFILE``/``DARKFILE``/``FLATFILE`` (the names in
    ``masters_used``, a dict ``{"bias": name_or_path, ...}``), ``CLPMODE``, ``CLPVER``.
    Extensions ``UNCERT`` (float32, 1-sigma ADU) and ``MASK`` (uint8, bits in ``MASKBn``).
    ``keep`` is ``[archive] keep_calibrated`` (see the module docstring): ``"image"`` writes
    the tile-compressed image and mask of :func:`compressed_fits_chunks`, ``"none"`` nothing.
    """
    from clinepipe.atomic_files import atomic_write_bytes

    _check_keep(keep)
    if keep == "none":
        return
    if keep == "image":
        atomic_write_bytes(Path(path),
                           compressed_fits_chunks(*_compressed_parts(frame, masters_used)))
        return
    atomic_write_bytes(Path(path), reduced_fits_chunks(frame, masters_used=masters_used))


def _check_keep(keep: str) -> None:
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep_calibrated must be one of {KEEP_CHOICES}, got {keep!r}")


#: keywords FITS reserves for the structure of an HDU: written by :func:`reduced_fits_chunks`
#: itself, never copied from the raw header
_STRUCTURE = frozenset(("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT",
                        "GROUPS", "END", "EXTNAME", "CHECKSUM", "DATASUM") + _ENCODING_CARDS)

_NAXISN = re.compile(r"NAXIS\d+$")

_BLOCK = 2880

def reduced_fits_chunks(frame: ReducedFrame, *, masters_used: dict | None = None) -> list:
    """The bytes of the file :func:`write_reduced` writes, as a list of bytes-like chunks.

    Written here rather than by astropy's ``HDUList.writeto``, which spends ~7 ms of Python per
    light building and verifying three HDUs (1117x844), three times the cost of the
    byte-swapped copies themselves. The header cards are astropy's own (the raw header's, as read), so the
    file is as standard as the raw frame; tests check it against ``fits.open(...).verify``.
    """
    hdr = _reduced_header(frame.header.copy(), masters_used)
    ny, nx = np.shape(frame.data)
    primary = (_card("SIMPLE", True, "conforms to FITS standard")
               + _card("BITPIX", -32, "array data type") + _card("NAXIS", 2, "number of array dimensions")
               + _card("NAXIS1", nx) + _card("NAXIS2", ny) + _card("EXTEND", True)
               + "".join(c.image for c in hdr.cards
                         if c.keyword not in _STRUCTURE and not _NAXISN.match(c.keyword)))
    chunks: list = []
    # copies (big-endian, as FITS stores them): the writer thread must not see the caller
    # change its arrays afterwards
    _append_hdu(chunks, primary, np.array(frame.data, dtype=">f4"))
    head_unc, head_mask = _extension_headers(nx, ny)
    _append_hdu(chunks, head_unc, np.array(frame.uncertainty, dtype=">f4"))
    _append_hdu(chunks, head_mask, np.array(frame.mask, dtype=np.uint8))
    return chunks


def _card(keyword: str, value, comment: str = "") -> str:
    return fits.Card(keyword, value, comment).image


def _append_hdu(chunks: list, header: str, data: np.ndarray) -> None:
    header += "END".ljust(80)
    chunks.append(header.ljust(-(-len(header) // _BLOCK) * _BLOCK).encode("ascii"))
    data = np.ascontiguousarray(data)
    chunks.append(memoryview(data).cast("B"))
    pad = -data.nbytes % _BLOCK
    if pad:
        chunks.append(bytes(pad))


@functools.lru_cache(maxsize=8)
def _extension_headers(nx: int, ny: int) -> tuple[str, str]:
    """The UNCERT and MASK extension headers (without END) for an nx x ny frame."""
    def image(bitpix: int, name: str) -> str:
        return (_card("XTENSION", "IMAGE", "Image extension") + _card("BITPIX", bitpix)
                + _card("NAXIS", 2) + _card("NAXIS1", nx) + _card("NAXIS2", ny)
                + _card("PCOUNT", 0) + _card("GCOUNT", 1) + _card("EXTNAME", name))
    unc = image(-32, "UNCERT") + _card("BUNIT", "ADU", "1-sigma uncertainty")
    mask = image(8, "MASK") + "".join(_card(f"MASKB{bit}", meaning, f"meaning of mask bit value {bit}")
                                      for bit, meaning in MASK_BITS.items())
    return unc, mask


def _reduced_header(hdr: fits.Header, masters_used) -> fits.Header:
    """The reduced file's primary header; ``hdr`` is a copy of the frame's header (changed)."""
    for key in _ENCODING_CARDS:
        hdr.remove(key, ignore_missing=True, remove_all=True)
    if masters_used is not None:
        letters = ""
        for key, letter, card in (("bias", "B", "BIASFILE"), ("dark", "D", "DARKFILE"),
                                  ("flat", "F", "FLATFILE")):
            value = masters_used.get(key)
            if value:
                letters += letter
                hdr[card] = (Path(str(value)).name, f"master {key}")
        if hdr.get("CLPDNOTE"):  # a dark the reduction could not apply (ccd.dark_bias)
            letters = letters.replace("D", "")
        elif "D" in letters and hdr.get("CLPDBIAS") and "B" not in letters:
            letters = "B" + letters  # a dark holding the bias removed it too
        hdr["CALSTAT"] = (letters, "calibration applied: B bias, D dark, F flat")
    hdr.setdefault("CLPMODE", "")
    hdr["CLPVER"] = (__version__, "clinepipe version")
    return hdr


_WRITER: list = []  # [(pid, ThreadPoolExecutor)]: one writer thread per process

def write_reduced_async(path: Path, frame: ReducedFrame, *, masters_used: dict | None = None,
                        keep: str = "all"):
    """:func:`write_reduced`, the disk part in a background thread; returns a
    ``concurrent.futures.Future`` that is done when the file is in place.

    The file is serialised here (:func:`reduced_fits_chunks`: big-endian copies of the planes,
    so the caller may go on using its arrays); the background thread only writes those bytes,
    ``fsync``-s and renames, which is waiting for the disk and needs no Python lock, so the
    per-light work goes on meanwhile (``lightframe.finish_light`` waits for the future before
    the light is reported). With ``keep="image"`` the compression runs in that thread too:
    ISA-L's deflate releases the GIL. ``keep="none"`` returns a done future.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    from clinepipe.atomic_files import atomic_write_bytes

    _check_keep(keep)
    if keep == "none":
        done: Future = Future()
        done.set_result(None)
        return done
    if not _WRITER or _WRITER[0][0] != os.getpid():  # none yet, or inherited through fork
        _WRITER[:] = [(os.getpid(), ThreadPoolExecutor(max_workers=1,
                                                       thread_name_prefix="clinepipe-write"))]
    if keep == "image":
        parts = _compressed_parts(frame, masters_used)  # copies: the caller may change its arrays
        return _WRITER[0][1].submit(
            lambda: atomic_write_bytes(Path(path), compressed_fits_chunks(*parts)))
    chunks = reduced_fits_chunks(frame, masters_used=masters_used)
    return _WRITER[0][1].submit(atomic_write_bytes, Path(path), chunks)


# -- the compressed calibrated file (keep_calibrated = "image") ------------------------------
# The FITS tile-compression convention (GZIP_2: per tile, the big-endian bytes shuffled into
# planes, most significant first, then gzip), written here rather than by astropy's
# CompImageHDU (0.38 s per 1117x844 light, holding the GIL). A float32 calibrated pixel holds
# ~22 bits of noise (the sky's noise in units of the float's last place): the two low byte
# planes do not compress at all, so they go into the deflate stream as stored blocks (a
# memcpy), and only the sign/exponent plane and the next one are entropy-coded. They are
# deflated by ISA-L (the ``isal`` package), not zlib: a 2048² frame's two planes (8 MB) took
# zlib 53 ms at level 1 with its run-length strategy (the gain is in the skewed byte
# distribution, not in long matches), ISA-L 12 ms at its level 1, 0.3 % larger; its CRC-32 is
# 3x zlib's. Any gzip decoder reads the stream, so cfitsio, astropy and DS9 read the file.

#: rows per compressed tile: a reader of a few rows decompresses a quarter of a 1117x844
#: frame; deflate's Huffman tables adapt better over larger tiles (64 rows: 1.6 % larger)
TILE_ROWS = 256

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown
_STORED_MAX = 65535


def _gzip(coded: tuple, stored=b"") -> list:
    """One gzip member, as a list of bytes-like parts: each of ``coded`` deflated (ISA-L's
    level 1) in deflate blocks of its own, then ``stored`` in stored deflate blocks (all
    bytes-like, 1-D; ``stored`` may be empty).

    Blocks of their own give each plane its own Huffman codes: the sign/exponent plane's few
    values and the next plane's wide spread mixed in one block cost 1-2 % of the file. The
    parts are written as they are, not joined into one bytes object: that copy of every tile
    (~11 MB a 2048² frame) was the writer's own cost."""
    comp = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)  # -15: a raw deflate stream
    parts = [_GZIP_HEADER]
    for i, plane in enumerate(coded):
        parts.append(comp.compress(plane))
        if i < len(coded) - 1:
            parts.append(comp.flush(isal_zlib.Z_SYNC_FLUSH))  # ends the block
    stored = memoryview(stored)
    if not stored.nbytes:
        parts.append(comp.flush(isal_zlib.Z_FINISH))
    else:
        parts.append(comp.flush(isal_zlib.Z_SYNC_FLUSH))  # byte-aligned, not final
        for start in range(0, stored.nbytes, _STORED_MAX):
            block = stored[start:start + _STORED_MAX]
            final = start + _STORED_MAX >= stored.nbytes
            parts.append(struct.pack("<BHH", int(final), len(block), len(block) ^ 0xFFFF))
            parts.append(block)
    crc = 0
    for data in (*coded, stored):
        crc = isal_zlib.crc32(data, crc)
    size = sum(memoryview(data).nbytes for data in coded) + stored.nbytes
    parts.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return parts


def _byte_planes(rows: np.ndarray) -> np.ndarray:
    """``(4, pixels)`` uint8, a new array: the big-endian bytes of the float32 values of
    ``rows`` shuffled into planes, most significant first (GZIP_2), read straight from the
    native float32 array (no big-endian copy of the frame first)."""
    values = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1)  # native byte order
    octets = values.view(np.uint8).reshape(-1, 4)
    if sys.byteorder == "little":  # the most significant byte is each value's last
        octets = octets[:, ::-1]
    return octets.T.copy()


def _compressed_parts(frame: ReducedFrame, masters_used) -> tuple:
    """What :func:`compressed_fits_chunks` compresses, copied from ``frame`` (the caller may
    change its arrays while a background thread compresses): (primary header text, the
    image's byte planes per tile of :data:`TILE_ROWS` rows (:func:`_byte_planes`), its shape,
    a uint8 copy of the mask, BUNIT)."""
    hdr = _reduced_header(frame.header.copy(), masters_used)
    hdr["CLPKEEP"] = ("image", "no UNCERT plane: recomputed when read")
    primary = (_card("SIMPLE", True, "conforms to FITS standard") + _card("BITPIX", 8)
               + _card("NAXIS", 0) + _card("EXTEND", True)
               + "".join(c.image for c in hdr.cards
                         if c.keyword not in _STRUCTURE and not _NAXISN.match(c.keyword)
                         and c.keyword != "BUNIT"))
    data = np.asarray(frame.data)
    planes = [_byte_planes(data[r:r + TILE_ROWS]) for r in range(0, data.shape[0], TILE_ROWS)]
    return (primary, planes, data.shape, np.array(frame.mask, dtype=np.uint8),
            str(frame.header.get("BUNIT", "ADU")))


def compressed_fits_chunks(primary: str, planes: list, shape: tuple, mask: np.ndarray,
                           bunit: str = "ADU") -> list:
    """The bytes of a ``keep_calibrated = "image"`` file: a header-only primary HDU (the
    frame's cards), the image of ``shape`` given as its tiles' byte planes
    (:func:`_compressed_parts`) as a GZIP_2 tile-compressed float32 extension ``IMAGE`` and the
    mask as a GZIP_1 one ``MASK`` (both ``INHERIT = T``). Lossless: astropy reads back the very
    float32 values (tested)."""
    chunks: list = []
    header = primary + "END".ljust(80)
    chunks.append(header.ljust(-(-len(header) // _BLOCK) * _BLOCK).encode("ascii"))
    ny, nx = shape
    # per tile (a loop over blocks of rows, not pixels): the two high planes entropy-coded,
    # the two low ones stored (1-D views of the planes array, no copies)
    tiles = [_gzip((p[0], p[1]), p[2:].reshape(-1)) for p in planes]
    _append_compressed(chunks, tiles, nx, ny, -32, "GZIP_2", "IMAGE",
                       _card("BUNIT", bunit, "calibrated, flat-fielded ADU"))
    # the mask is zero but for a few thousand pixels: runs are all there is to compress
    # (2048²: zlib's level 6 with its run-length strategy 7 ms and 12 kB, ISA-L 0.4 ms and
    # 31 kB, beside the image's ~6 MB)
    mtiles = [_gzip((np.ascontiguousarray(mask[r:r + TILE_ROWS]).reshape(-1),))
              for r in range(0, ny, TILE_ROWS)]
    _append_compressed(chunks, mtiles, nx, ny, 8, "GZIP_1", "MASK",
                       "".join(_card(f"MASKB{bit}", meaning, f"meaning of mask bit value {bit}")
                               for bit, meaning in MASK_BITS.items()))
    return chunks


def _append_compressed(chunks, tiles, nx, ny, bitpix, cmptype, name, extra) -> None:
    """A tile-compressed image extension (a BINTABLE of one heap descriptor per tile); each
    tile a list of bytes-like parts (:func:`_gzip`)."""
    sizes = np.array([sum(memoryview(part).nbytes for part in t) for t in tiles], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    table = np.column_stack((sizes, offsets)).astype(">i4")
    heap = int(sizes.sum())
    header = (_card("XTENSION", "BINTABLE", "binary table extension") + _card("BITPIX", 8)
              + _card("NAXIS", 2) + _card("NAXIS1", 8) + _card("NAXIS2", len(tiles))
              + _card("PCOUNT", heap) + _card("GCOUNT", 1) + _card("TFIELDS", 1)
              + _card("TTYPE1", "COMPRESSED_DATA") + _card("TFORM1", f"1PB({int(sizes.max())})")
              + _card("ZIMAGE", True, "extension contains compressed image")
              + _card("ZBITPIX", bitpix) + _card("ZNAXIS", 2) + _card("ZNAXIS1", nx)
              + _card("ZNAXIS2", ny) + _card("ZTILE1", nx) + _card("ZTILE2", TILE_ROWS)
              + _card("ZCMPTYPE", cmptype, "lossless") + _card("EXTNAME", name)
              + _card("INHERIT", True, "the primary header's cards apply") + extra
              + "END".ljust(80))
    chunks.append(header.ljust(-(-len(header) // _BLOCK) * _BLOCK).encode("ascii"))
    chunks.append(table.tobytes())
    for tile in tiles:
        chunks.extend(tile)
    pad = -(table.nbytes + heap) % _BLOCK
    if pad:
        chunks.append(bytes(pad))


def read_reduced(path: Path, *, masters_dir: Path | None = None,
                 uncertainty: bool = True) -> ReducedFrame:
    """Read a calibrated frame written by :func:`write_reduced` with any ``keep``.

    Parameters
    ----------
    path : Path
        The calibrated file.
    masters_dir : Path, optional
        Where the masters named in its header (``BIASFILE``…) are found (searched below it,
        by name); needed only when the file has no uncertainty plane (``keep = "image"``).
    uncertainty : bool
        False: a frame without an uncertainty plane is returned with ``uncertainty`` None
        (a picture of the frame needs no masters).

    Returns
    -------
    ReducedFrame
        ``data`` (float32 ADU), ``uncertainty`` (float32 1-sigma ADU: the stored plane, or
        :func:`recompute_uncertainty`), ``mask`` (uint8), ``header`` (the primary's).

    Raises
    ------
    BadInput
        The uncertainty must be recomputed and a master it names is not under ``masters_dir``.
    """
    with fits.open(Path(path), memmap=False) as hdul:
        names = [h.name.upper() for h in hdul]
        header = hdul[0].header.copy()
        if "IMAGE" in names:  # keep_calibrated = "image"
            data = np.asarray(hdul["IMAGE"].data, dtype=np.float32)
            header["BUNIT"] = hdul["IMAGE"].header.get("BUNIT", "ADU")
        else:
            data = np.asarray(hdul[0].data, dtype=np.float32)
        unc = np.asarray(hdul["UNCERT"].data, dtype=np.float32) if "UNCERT" in names else None
        mask = np.asarray(hdul["MASK"].data, dtype=np.uint8)
    if unc is None and uncertainty:
        unc = recompute_uncertainty(data, header, _find_masters(header, masters_dir, path))
    return ReducedFrame(data=data, uncertainty=unc, mask=mask, header=header)


def _find_masters(header, masters_dir, path) -> dict:
    """``{"bias": (data, noise), ...}`` of the masters the header names (None when not applied)."""
    from clinepipe.ccd.master_files import read_master
    from clinepipe.errors import BadInput

    out = {}
    for key, card in (("bias", "BIASFILE"), ("dark", "DARKFILE"), ("flat", "FLATFILE")):
        name = header.get(card)
        if not name:
            out[key] = None
            continue
        found = _master_file(str(masters_dir), str(name)) if masters_dir is not None else None
        if found is None:
            raise BadInput(f"{Path(path).name}: its uncertainty plane was not kept and the master "
                           f"{name} it was calibrated with is not under {masters_dir} "
                           "(master not found).", reason="master not found")
        data, mhdr = read_master(found)
        out[key] = (np.asarray(data, dtype=np.float32), mhdr.get("CLPNOISE"))
    return out


@functools.lru_cache(maxsize=64)
def _master_file(masters_dir: str, name: str) -> Path | None:
    return next(iter(sorted(Path(masters_dir).rglob(name))), None)


def recompute_uncertainty(data: np.ndarray, header: fits.Header, masters: dict) -> np.ndarray:
    """The reduction's 1-sigma uncertainty plane (ADU, float32) from the calibrated image.

    The reduction (:func:`clinepipe.ccd.reduce.reduce_frame`) computes, per pixel,
    ``var = (max(S - P, 0) / g + c) / F**2 + (D f)**2`` with ``S = raw - bias`` the signal,
    ``P`` the pedestal left without a bias (``CLPPED``), ``g`` the gain (``CLPGAIN``),
    ``c = (read_noise/g)**2 + bias_noise**2 + (k dark_noise)**2`` (``CLPRDN``, the masters'
    ``CLPNOISE``, ``k = CLPDSCAL``), ``F`` the flat and ``f`` its relative noise, and
    ``D = (S - k dark) / F`` the calibrated image; so ``raw = D F + k dark + bias``, a whole
    number of ADU, and the same float32 steps then give the stored plane bit for bit
    (cosmic-ray pixels, replaced in ``D`` after their variance was taken, differ; they are
    masked).

    Parameters
    ----------
    data : numpy.ndarray
        The calibrated image, ADU.
    header : astropy.io.fits.Header
        Its header (``CLPGAIN``, ``CLPRDN``, ``CLPDSCAL``, ``CLPPED``, ``XORGSUBF``…).
    masters : dict
        ``{"bias" | "dark" | "flat": (array, noise) or None}``: the master frames as written
        (full sensor; cut to the frame by its subframe origin and ``TRIMSEC``).
    """
    from clinepipe.errors import BadInput

    gain = float(header["CLPGAIN"])
    read_noise = float(header.get("CLPRDN", 0.0))
    k = np.float32(header.get("CLPDSCAL", 0.0))

    def cut(key):
        if masters.get(key) is None:
            return None, None
        arr, noise = masters[key]
        if arr.shape != data.shape:
            # the reduction cut the master to the raw frame at its subframe origin (binned
            # pixels), then to the overscan run's TRIMSEC (CLPTRIM): one cut does both
            xorg = int(header.get("XORGSUBF", 0) or 0)
            # CLPYORG: the origin of a subframe turned from TOP-DOWN, counted bottom-up
            yorg = int(header.get("CLPYORG", header.get("YORGSUBF", 0)) or 0)
            trim = re.match(r"\[\s*(\d+):\d+\s*,\s*(\d+):\d+\s*\]", str(header.get("CLPTRIM", "")))
            if trim:  # 1-based FITS section of the raw frame
                xorg, yorg = xorg + int(trim.group(1)) - 1, yorg + int(trim.group(2)) - 1
            ny, nx = data.shape
            if yorg + ny > arr.shape[0] or xorg + nx > arr.shape[1] or xorg < 0 or yorg < 0:
                raise BadInput(f"master {key}: the {nx}x{ny} frame at ({xorg}, {yorg}) does not fit "
                               "in it (subframe outside the master).",
                               reason="subframe outside the master")
            arr = arr[yorg:yorg + ny, xorg:xorg + nx]
        noise = float(noise) if noise is not None and np.isfinite(float(noise)) else 0.0
        return np.asarray(arr, dtype=np.float32), noise

    bias, bias_noise = cut("bias")
    dark, dark_noise = cut("dark")
    flat, flat_noise = cut("flat")
    const_var = np.float32((read_noise / gain) ** 2 + (bias_noise or 0.0) ** 2
                           + (float(k) * (dark_noise or 0.0)) ** 2)
    pedestal = np.float32(header.get("CLPPED", 0.0))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # the raw frame, back from the image: a camera's ADU are whole numbers, and the
        # float32 steps leave ~1e-4 ADU of rounding, so rounding gives the very raw value and
        # then the reduction's own float32 steps give its very uncertainty (bit for bit);
        # pixels that are not whole (overscan levels, cleaned cosmic rays) keep the estimate
        raw = data.astype(np.float64)
        if flat is not None:
            raw *= flat
        if dark is not None:
            raw += np.float64(k) * dark
        if bias is not None:
            raw += bias
        whole = np.rint(raw)
        raw = np.where(np.abs(raw - whole) < 0.01, whole, raw).astype(np.float32)
        signal = raw if bias is None else np.subtract(raw, bias, dtype=np.float32)
        var = np.subtract(signal, pedestal, dtype=np.float32)
        np.maximum(var, np.float32(0), out=var)
        np.divide(var, np.float32(gain), out=var)
        np.add(var, const_var, out=var)
        if flat is not None:
            np.divide(var, np.multiply(flat, flat), out=var)
            if flat_noise:
                term = np.multiply(data, np.float32(flat_noise))
                np.multiply(term, term, out=term)
                np.add(var, term, out=var)
        np.sqrt(var, out=var)
    var[~np.isfinite(data)] = np.nan
    return var


def read_calibrated_header(path: Path) -> fits.Header:
    """The header of a calibrated frame with any ``keep``, its image size included (a
    compressed file keeps the frame's cards, WCS and all, in a header-only primary)."""
    with fits.open(Path(path), memmap=False) as hdul:
        header = hdul[0].header.copy()
        if header.get("NAXIS", 0) == 0 and "IMAGE" in hdul:
            image = hdul["IMAGE"].header
            header["NAXIS"] = 2
            header.insert("NAXIS", ("NAXIS1", image["NAXIS1"]), after=True)
            header.insert("NAXIS1", ("NAXIS2", image["NAXIS2"]), after=True)
    return header


def read_calibrated(path: Path, archive: Path | None = None) -> ReducedFrame:
    """:func:`read_reduced` of a calibrated frame of the run's archive (its masters under
    ``archive/masters``), the reader every part of clinepipe uses for calibrated frames."""
    return read_reduced(path, masters_dir=None if archive is None else Path(archive) / "masters")


def calibrated_name(raw_name: str) -> str:
    """``<stem>_calibrated.fits`` for a raw file name (``a.fits.gz`` -> ``a_calibrated.fits``)."""
    from clinepipe.ingest.files import fits_stem

    return f"{fits_stem(raw_name)}_calibrated.fits"


@dataclass
class ReducedFrame:
    """A calibrated frame: ``data`` float32 ADU, ``uncertainty`` float32 1-sigma ADU, ``mask``
    uint8 bits (see :data:`MASK_BITS`), ``header`` the raw header plus calibration cards."""

    data: np.ndarray
    uncertainty: np.ndarray
    mask: np.ndarray
    header: fits.Header
