"""Calibrated frames on disk: data, uncertainty and mask planes, written atomically (and in a background thread)."""

from __future__ import annotations
from dataclasses import dataclass

import functools
import os
import re
from pathlib import Path
import numpy as np
from astropy.io import fits
from clinepipe import __version__
from clinepipe.ccd.masks import MASK_BITS



#: header cards that describe the raw integer encoding and must not survive into float output
_ENCODING_CARDS = ("BZERO", "BSCALE", "BLANK", "DATAMIN", "DATAMAX")

def write_reduced(path: Path, frame: ReducedFrame, *, masters_used: dict | None = None) -> None:
    """Write a reduced frame atomically (temporary file, fsync, ``os.replace``).

    Primary HDU: float32 data with the frame's header, plus ``CALSTAT`` (the letters of the
    masters used, in the order B(ias), D(ark), F(lat): 'BDF' normally, 'BD'/'B' when
    ``masters_used`` lacks one), ``BIASFILE``/``DARKFILE``/``FLATFILE`` (the names in
    ``masters_used``, a dict ``{"bias": name_or_path, ...}``), ``CLPMODE``, ``CLPVER``.
    Extensions ``UNCERT`` (float32, 1-sigma ADU) and ``MASK`` (uint8, bits in ``MASKBn``).
    """
    from clinepipe.atomic_files import atomic_write_bytes

    atomic_write_bytes(Path(path), reduced_fits_chunks(frame, masters_used=masters_used))


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
        hdr["CALSTAT"] = (letters, "calibration applied: B bias, D dark, F flat")
    hdr.setdefault("CLPMODE", "")
    hdr["CLPVER"] = (__version__, "clinepipe version")
    return hdr


_WRITER: list = []  # [(pid, ThreadPoolExecutor)]: one writer thread per process

def write_reduced_async(path: Path, frame: ReducedFrame, *, masters_used: dict | None = None):
    """:func:`write_reduced`, the disk part in a background thread; returns a
    ``concurrent.futures.Future`` that is done when the file is in place.

    The file is serialised here (:func:`reduced_fits_chunks`: big-endian copies of the planes,
    so the caller may go on using its arrays); the background thread only writes those bytes,
    ``fsync``-s and renames, which is waiting for the disk and needs no Python lock, so the
    per-light work goes on meanwhile (``lightframe.finish_light`` waits for the future before
    the light is reported).
    """
    from concurrent.futures import ThreadPoolExecutor

    from clinepipe.atomic_files import atomic_write_bytes

    chunks = reduced_fits_chunks(frame, masters_used=masters_used)
    if not _WRITER or _WRITER[0][0] != os.getpid():  # none yet, or inherited through fork
        _WRITER[:] = [(os.getpid(), ThreadPoolExecutor(max_workers=1,
                                                       thread_name_prefix="clinepipe-write"))]
    return _WRITER[0][1].submit(atomic_write_bytes, Path(path), chunks)


def read_reduced(path: Path) -> ReducedFrame:
    """Read a file written by :func:`write_reduced`."""
    with fits.open(Path(path), memmap=False) as hdul:
        data = np.asarray(hdul[0].data, dtype=np.float32)
        header = hdul[0].header.copy()
        unc = np.asarray(hdul["UNCERT"].data, dtype=np.float32)
        mask = np.asarray(hdul["MASK"].data, dtype=np.uint8)
    return ReducedFrame(data=data, uncertainty=unc, mask=mask, header=header)


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
