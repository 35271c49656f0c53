"""Real FITS headers (tests/data/headers/*.txt, one card per line) as astropy Headers, and as
small FITS files written byte for byte the way the camera wrote the cards."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

HEADERS = Path(__file__).parent / "data" / "headers"


def header_text(name: str) -> str:
    return (HEADERS / name).read_text(encoding="ascii")


def load_header(name: str) -> fits.Header:
    """The header of ``tests/data/headers/<name>`` as astropy reads it (warnings silenced:
    several real headers carry non-standard cards, which is the point)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fits.Header.fromstring(header_text(name), sep="\n")


def header_from_cards(*cards: str) -> fits.Header:
    """A header from card strings such as ``"IMAGETYP= 'zero'"`` (each padded to 80 columns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fits.Header.fromstring("".join(c.ljust(80)[:80] for c in cards + ("END",)))


def write_fits(path: Path, card_lines, shape=(6, 8), data=None) -> Path:
    """Write a FITS file whose header is ``card_lines`` as written (each cut/padded to 80
    columns, NAXIS reset to a small 2-D ``shape``), followed by ``data`` (zeros by default)."""
    ny, nx = shape
    text = "\n".join(card_lines)
    found = re.search(r"^BITPIX\s*=\s*(-?\d+)", text, re.MULTILINE)
    bitpix = int(found.group(1)) if found else 16
    bitpix = 16 if bitpix == 8 else bitpix  # ASTAP's BITPIX = 8 placeholder of a pixel-less sidecar
    out = ["SIMPLE  =                    T", f"BITPIX  = {bitpix:20d}", "NAXIS   =                    2",
           f"NAXIS1  = {nx:20d}", f"NAXIS2  = {ny:20d}"]
    for line in card_lines:
        key = line[:8].strip()
        if key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "END") or not line.strip():
            continue
        out.append(line)
    out = [line.ljust(80)[:80] for line in out] + ["END".ljust(80)]
    raw = "".join(out).encode("ascii", "replace")
    raw += b" " * (-len(raw) % 2880)
    dtype = {16: ">i2", 32: ">i4", -32: ">f4", -64: ">f8"}[bitpix]
    pixels = np.zeros(shape, dtype) if data is None else np.asarray(data).astype(dtype)
    body = pixels.tobytes()
    body += b"\0" * (-len(body) % 2880)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw + body)
    return path


def write_fixture(path: Path, name: str, **kw) -> Path:
    """Write ``tests/data/headers/<name>`` as a small FITS file at ``path``."""
    return write_fits(path, header_text(name).splitlines(), **kw)
