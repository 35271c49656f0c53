"""File formats the simulator writes: raw FITS, TheSkyX .SRC, truth CSV/JSON, the config."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
from astropy.io import fits

SRC_COLUMNS = ["X_IMAGE", "Y_IMAGE", "MAG_APER", "FWHM_IMAGE", "FLAGS", "CLASS_STAR",
               "ELONGATION", "ELLIPTICITY", "A_IMAGE", "B_IMAGE", "THETA_IMAGE"]
_SRC_FORMATS = ["{:11.4f}", "{:11.4f}", "{:9.4f}", "{:8.3f}", "{:4d}", "{:6.3f}", "{:7.3f}",
                "{:7.3f}", "{:8.3f}", "{:8.3f}", "{:7.2f}"]


def write_raw_frame(path: str | os.PathLike, data: np.ndarray, header=None) -> Path:
    """Write a raw frame as the camera would: uint16 data -> BITPIX=16 with BZERO=32768.

    ``header`` is an astropy Header, a dict ``{key: value}`` / ``{key: (value, comment)}``, or
    a list of ``(key, value[, comment])``; its keys are written in order. Float data are
    written as they are (BITPIX=-32/-64). Parent folders are created. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu = fits.PrimaryHDU(data=np.asarray(data))
    if header is not None:
        if isinstance(header, fits.Header):
            items = [(c.keyword, c.value, c.comment) for c in header.cards]
        elif isinstance(header, dict):
            items = [(k, *(v if isinstance(v, tuple) else (v,))) for k, v in header.items()]
        else:
            items = list(header)
        skip = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE"}
        for item in items:
            key = item[0]
            if key in skip or key == "":
                continue
            hdu.header[key] = tuple(item[1:3]) if len(item) > 2 else item[1]
    hdu.writeto(path, overwrite=True, output_verify="silentfix")
    return path


def write_float_image(path: Path, data: np.ndarray, cards=()) -> None:
    hdu = fits.PrimaryHDU(data=np.asarray(data, dtype=np.float32))
    for key, value, comment in cards:
        hdu.header[key] = (value, comment)
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path, overwrite=True)


def write_src(path: str | os.PathLike, table, width: int, height: int, date_obs: str) -> Path:
    """TheSkyX Image Link ``.SRC``: '#' header lines, then 11 columns; CRLF line endings.

    ``table`` has (at least) the :data:`SRC_COLUMNS`, positions 1-based.
    """
    path = Path(path)
    lines = [f"#HEIGHT= {int(height)}", f"#WIDTH = {int(width)}", f"#TIME  = {date_obs}",
             "#" + " ".join(SRC_COLUMNS)]
    cols = [np.asarray(table[c]) for c in SRC_COLUMNS]
    for i in range(len(table)):
        lines.append(" ".join(fmt.format(int(col[i]) if fmt.endswith("d}") else float(col[i]))
                              for fmt, col in zip(_SRC_FORMATS, cols)))
    with open(path, "w", encoding="ascii", newline="") as fh:
        fh.write("\r\n".join(lines) + "\r\n")
    return path


def _cell(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return ""
        return repr(round(value, 10))
    return str(value)


def write_csv(path: Path, columns: list[str], rows) -> None:
    """CSV with a header row; floats as repr (rounded to 1e-10), NaN as an empty cell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in columns])


def write_table_csv(path: Path, table, columns: list[str] | None = None) -> None:
    columns = columns or list(table.colnames)
    cols = {c: table[c] for c in columns}
    rows = ({c: cols[c][i] for c in columns} for i in range(len(table)))
    write_csv(path, columns, rows)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _toml_str(text: str) -> str:
    return json.dumps(str(text))  # a TOML basic string is a JSON string for plain text


def config_text(spec, aperture: float) -> str:
    """A ``clinepipe.toml`` for the simulated night (only keys clinepipe.config knows)."""
    bands = "\n".join(f"{_toml_str(f)} = {_toml_str(spec.band_for(f))}" for f in spec.filters)
    return f"""\
# clinepipe configuration written by `clinepipe simulate`. Relative paths are relative to this file.

[paths]
incoming = "incoming"
archive = "archive"
settle_seconds = 0.0    # the simulated files are complete when written

[database]
url = "sqlite:///clinepipe.db"

[site]                  # degrees, east longitude positive, metres
latitude = {spec.latitude!r}
longitude = {spec.longitude!r}
elevation = {float(spec.elevation)!r}
telescope = ""          # this telescope's name when several telescopes share one database

[camera]
gain = {float(spec.gain)!r}              # e-/ADU
read_noise = {float(spec.read_noise)!r}        # e-
max_ccd_temp = -3.0
saturation = {float(spec.saturation)!r}

[reduction]
mode = "default"

[photometry]
aperture = {aperture!r}          # binned px, ~1.7 x the median simulated FWHM

[catalog]
source = "file"
path = "catalog.csv"
match_radius = 2.0

[catalog.filters]       # FILTER header value -> catalog column
{bands}

[known_variables]
source = "file"
path = "vsx.csv"
"""
