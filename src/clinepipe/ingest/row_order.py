"""What else turns when a ``ROWORDER = 'TOP-DOWN'`` image is turned bottom-up.

N.I.N.A., SharpCap and MaxIm DL 6 store the top row of the image first. clinepipe reverses
the rows as it reads such a file (:func:`clinepipe.ingest.fits_reader.read_image`), so that
row 0 is the bottom row as FITS intends. Everything in the header that counts rows of the
array *as stored* must turn with it, or the pixels and their sky positions disagree:

* the WCS: a plate solution written into the file (ASTAP, astrometry.net) maps the stored
  array, as the FITS standard defines pixel coordinates. The two N.I.N.A. + ASTAP headers of
  ``shared/headers`` show it: their CD matrices have the mirrored parity (det > 0) of a
  normal sky seen through stored top-down rows. ``CRPIX2 -> ny + 1 - CRPIX2``, the second
  column of the CD (or PC, or ``CDELT2``) matrix changes sign, and the SIP terms with it;
* image sections (``BIASSEC``, ``TRIMSEC``, ``DATASEC``): ``[x1:x2,y1:y2]`` rows become
  ``ny + 1 - y2 : ny + 1 - y1``;
* a source list beside the file (TheSkyX's ``.SRC``, 1-based stored pixels):
  :func:`flip_y` of its positions;
* the subframe origin ``YORGSUBF``: the program counts it from the sensor's first stored
  (top) row, so in the bottom-up sensor of the masters the subframe starts at
  ``sensor_ny - YORGSUBF - ny`` (:func:`bottom_up_origin`).

The header gets ``CLPFLIPY = T`` so later steps know the rows were reversed.
"""

from __future__ import annotations

import re

import numpy as np

#: header keyword set on a header whose image clinepipe turned bottom-up
FLIPPED = "CLPFLIPY"

_SECTION = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")
_SIP = re.compile(r"^(A|B|AP|BP)_(\d+)_(\d+)$")


def _set_value(header, key: str, value) -> None:
    """``header[key] = value``, keeping as much of the card's comment as still fits in its 80
    characters: a longer value (``-0.000123`` for ``0.000123``) would otherwise make astropy
    truncate the comment with a warning on every TOP-DOWN frame."""
    from astropy.io import fits

    comment = header.comments[key] if key in header else ""
    room = 80 - len(fits.Card(key, value).image.rstrip()) - 3  # " / " before a comment
    header[key] = (value, comment[:max(room, 0)])


def flip_header_rows(header, ny: int) -> None:
    """Turn, in place, what ``header`` says about rows of a ``ny``-row image whose rows were
    just reversed (WCS with SIP, image sections); mark it :data:`FLIPPED`.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The image's header (changed in place).
    ny : int
        Rows of the image.
    """
    if "CRPIX2" in header:
        _set_value(header, "CRPIX2", ny + 1.0 - float(header["CRPIX2"]))
    # the matrix's second column changes sign: CD (ASTAP also writes CDELT/CROTA beside it,
    # turned too so the pair stays true), else PC, else CDELT2 (never two of one matrix)
    if "CD1_2" in header or "CD2_2" in header:
        keys = ("CD1_2", "CD2_2", "CDELT2")
    elif "PC1_2" in header or "PC2_2" in header:
        keys = ("PC1_2", "PC2_2")
    else:
        keys = ("CDELT2",)
    for key in keys:
        if key in header:
            _set_value(header, key, -float(header[key]))
    if "PC2_2" not in header and "PC1_2" in header and keys[0] == "PC1_2":
        header["PC2_2"] = -1.0  # an absent PC2_2 is 1
    for key in list(header.keys()):
        m = _SIP.match(key)
        if m is None:
            continue
        q = int(m.group(3))
        # v -> -v: the u correction keeps its sign for even powers of v, the v correction
        # (B, BP) changes sign once more
        sign = (-1) ** q * (-1 if m.group(1) in ("B", "BP") else 1)
        if sign < 0:
            _set_value(header, key, -float(header[key]))
    for key in ("BIASSEC", "TRIMSEC", "DATASEC"):
        value = header.get(key)
        m = _SECTION.match(value) if isinstance(value, str) else None
        if m:
            x1, x2, y1, y2 = (int(g) for g in m.groups())
            _set_value(header, key, f"[{x1}:{x2},{ny + 1 - y2}:{ny + 1 - y1}]")
    header[FLIPPED] = (True, "TOP-DOWN rows reversed; WCS, sections too")


def flip_y(y, ny: int) -> np.ndarray:
    """0-based row positions of a ``ny``-row image after its rows were reversed."""
    return (ny - 1.0) - np.asarray(y, dtype=np.float64)


def bottom_up_origin(header, yorg: int, sensor_ny: int, ny: int) -> int:
    """The row (0-based, bottom-up) of the full-sensor master where a subframe of ``ny`` rows
    with origin ``yorg`` (``YORGSUBF``) starts: ``yorg`` itself for a bottom-up file, and
    ``sensor_ny - yorg - ny`` for one turned from TOP-DOWN (:data:`FLIPPED` in ``header``),
    whose program counts the origin from the top."""
    if not header.get(FLIPPED):
        return int(yorg)
    return int(sensor_ny) - int(yorg) - int(ny)
