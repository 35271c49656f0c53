"""Masters on disk: float32 FITS with their provenance in the header, written atomically,
and where each one lives in a folder of masters.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from astropy.io import fits

from clinepipe import __version__
from clinepipe.atomic_files import atomic_write_fits
from clinepipe.ccd.dark_bias import HOLDS_BIAS
from clinepipe.ccd.master_result import MasterResult
from clinepipe.errors import BadInput, MissingCalibration
from clinepipe.ingest.fits_reader import brief

#: IMAGETYP written into each master
MASTER_IMAGETYP = {"bias": "Master Bias", "dark": "Master Dark", "flat": "Master Flat"}


def sha256_or_empty(path: Path) -> str:
    """Hex SHA-256 of ``path``'s bytes, or ``""`` when it cannot be read: a master's provenance
    records the checksum of each input, and an input gone since must not stop the master."""
    from clinepipe.ingest.files import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return ""


def write_master(path: Path, result: MasterResult, *, kind: str, mode: str, binning: int,
                 filter: str | None = None, provenance: dict | None = None,  # noqa: A002
                 checksums: dict | None = None) -> None:
    """Write a master as float32 FITS, atomically (temporary file + ``os.replace``).

    Primary HDU: the image with IMAGETYP ('Master Bias'/'Master Dark'/'Master Flat'),
    XBINNING/YBINNING, FILTER (flats), EXPTIME (darks: the exposure the master is from; bias
    0), NCOMBINE, CLPMODE, CLPVER, CLPNOISE (random 1-sigma per pixel; relative for flats),
    CLPLEVEL, CCD-TEMP (mean of the inputs), DATE (written, UTC), and from ``provenance``:
    NIGHT, BIASFILE/DARKFILE (the masters this one was made with), other items as HISTORY.
    Extension ``INPUTS`` (BINTABLE): ``NAME``, ``SHA256``, ``STATUS`` (used/rejected),
    ``REASON`` — one row per input file. ``provenance["inputs"]`` (a list of
    ``{"raw_path", "sha256"}`` for the used files, in order) names them; otherwise the files'
    own names and checksums are used (``checksums``, {path: SHA-256 hex}, when already known).
    """
    provenance = dict(provenance or {})
    hdr = fits.Header()
    hdr["IMAGETYP"] = (MASTER_IMAGETYP[kind], "clinepipe master calibration frame")
    hdr["XBINNING"] = (int(binning), "binning")
    hdr["YBINNING"] = (int(binning), "binning")
    if filter:
        hdr["FILTER"] = (str(filter), "filter")
    if kind == "dark":
        hdr["EXPTIME"] = (float(result.exptime), "[s] exposure of the darks")
        if result.holds_bias:
            hdr[HOLDS_BIAS] = (True, "no master bias: this dark holds bias + dark")
    elif kind == "bias":
        hdr["EXPTIME"] = (0.0, "[s]")
    hdr["NCOMBINE"] = (int(result.n or len(result.used)), "frames median-combined")
    hdr["CLPMODE"] = (str(mode), "clinepipe reduction mode")
    hdr["CLPVER"] = (__version__, "clinepipe version")
    hdr["CLPKIND"] = (kind, "master kind")
    if math.isfinite(result.noise):
        hdr["CLPNOISE"] = (float(result.noise), "random 1-sigma per pixel" +
                           (" (relative)" if kind == "flat" else " [ADU]"))
    if math.isfinite(result.level):
        hdr["CLPLEVEL"] = (float(result.level), "median before normalisation [ADU]")
    if result.ccd_temp is not None:
        hdr["CCD-TEMP"] = (float(result.ccd_temp), "[C] mean of the inputs")
    if kind != "flat":
        hdr["BUNIT"] = ("ADU", "")
    hdr["DATE"] = (datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "written (UTC)")
    if provenance.get("night"):
        hdr["NIGHT"] = (str(provenance["night"]), "observing night of the inputs")
    for key, card in (("bias", "BIASFILE"), ("dark", "DARKFILE")):
        if provenance.get(key):
            hdr[card] = (Path(str(provenance[key])).name, f"master {key} used")
    for key, value in provenance.items():
        if key not in ("inputs", "night", "bias", "dark"):
            hdr.add_history(f"{key}: {value}")

    given = provenance.get("inputs") or []
    known = {Path(k): v for k, v in (checksums or {}).items()}

    def sha(p) -> str:
        return known.get(Path(p)) or sha256_or_empty(Path(p))

    names, shas, status, reasons = [], [], [], []
    for i, p in enumerate(result.used):
        item = given[i] if i < len(given) else {}
        names.append(str(item.get("raw_path") or Path(p).name))
        shas.append(str(item.get("sha256") or sha(p)))
        status.append("used")
        reasons.append("")
    for p, reason in result.rejected.items():
        names.append(Path(p).name)
        shas.append(sha(p))
        status.append("rejected")
        reasons.append(reason)
    inputs = fits.BinTableHDU.from_columns(
        [_text_column(name, values) for name, values in
         (("NAME", names), ("SHA256", shas), ("STATUS", status), ("REASON", reasons))],
        name="INPUTS")
    primary = fits.PrimaryHDU(np.asarray(result.data, dtype=np.float32), header=hdr)
    atomic_write_fits(Path(path), fits.HDUList([primary, inputs]))


def _text_column(name: str, values: list[str]) -> fits.Column:
    """A FITS ``nA`` column of ``values`` (ASCII: FITS text is ASCII, so "°C" becomes "degC")."""
    encoded = [str(v).replace("\u00b0C", "degC").replace("\u00b0", "deg").encode("ascii", "replace")
               for v in values]
    width = max([1] + [len(b) for b in encoded])
    return fits.Column(name=name, format=f"{width}A", array=np.array(encoded, dtype=f"S{width}"))


def read_master(path: Path) -> tuple[np.ndarray, fits.Header]:
    """A master's float32 image and primary header."""
    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            data = np.asarray(hdul[0].data, dtype=np.float32)
            header = hdul[0].header.copy()
    except FileNotFoundError as exc:
        raise MissingCalibration(f"{path.name}: the master file does not exist.",
                                 reason=f"master missing: {path.name}") from exc
    except OSError as exc:
        raise BadInput(f"{path.name}: the master cannot be read ({brief(exc)}).",
                       reason="unreadable master") from exc
    if data.ndim != 2:
        raise BadInput(f"{path.name}: the master has no 2-D image.", reason="unreadable master")
    return data, header


def safe_filter_name(filt: str) -> str:
    """A filter name usable in a file name (letters, digits, ``._-``; others become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(filt)).strip("_") or "none"


def master_filename(kind: str, filt: str | None = None) -> str:
    """``bias_master.fits``, ``dark_master.fits``, ``flat_master_{FILTER}.fits``."""
    if kind == "flat":
        return f"flat_master_{safe_filter_name(filt)}.fits"
    return f"{kind}_master.fits"


def master_path(root: Path, kind: str, binning: int, filt: str | None = None) -> Path:
    """Where :func:`make_masters` writes (and ``reduce_files`` reads) a master."""
    return Path(root) / f"binning{int(binning)}" / master_filename(kind, filt)
