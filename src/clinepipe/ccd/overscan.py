"""Overscan: the bias level of each frame from its BIASSEC columns (FITS sections).
"""

from __future__ import annotations

import re

import bottleneck as bn
import numpy as np

from clinepipe.errors import BadInput
from clinepipe.ingest.fits_reader import brief

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


def apply_overscan(raw, bias, dark, flat, saturated, hot, hdr, name):
    """Subtract a light's overscan level and trim it and its masters to ``TRIMSEC``.

    The level is the median of the ``BIASSEC`` columns (per row, smoothed over 15 rows, when
    they span every row; else one number); the master bias gets its own overscan level removed
    the same way, so what is left of it is the bias structure only.

    Parameters
    ----------
    raw : ndarray, shape (ny, nx)
        The raw light (ADU), untrimmed.
    bias, dark, flat : ndarray or None
        The masters (bias and dark in ADU, flat normalised), untrimmed, same shape as ``raw``.
    saturated, hot : ndarray of bool, shape (ny, nx)
        Pixel masks of the raw frame.
    hdr : astropy.io.fits.Header
        The light's header, changed in place: ``CLPOSCAN``/``CLPOSCB`` (mean levels removed, ADU)
        and ``CLPTRIM`` added, ``BIASSEC``/``TRIMSEC``/``DATASEC`` removed, ``CRPIX1/2`` shifted
        so the WCS follows the trimmed pixels.
    name : str
        The file's name, for errors.

    Returns
    -------
    tuple
        ``(raw, bias, dark, flat, saturated, hot)`` trimmed to ``TRIMSEC`` (None stays None).

    Raises
    ------
    BadInput
        When ``BIASSEC``/``TRIMSEC`` cannot be parsed or lie outside the image.
    """
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
