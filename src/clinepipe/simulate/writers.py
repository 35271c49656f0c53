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


def write_styled_frame(path: str | os.PathLike, data: np.ndarray, cards) -> Path:
    """Write a raw frame whose header cards are :class:`astropy.io.fits.Card` objects,
    kept exactly as formatted (value layout, comment column, padding), after the
    mandatory cards and BZERO/BSCALE that astropy writes for uint16 data.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu = fits.PrimaryHDU(data=np.asarray(data))
    for card in cards:
        hdu.header.append(card, end=True)
    hdu.writeto(path, overwrite=True, output_verify="silentfix")
    return path


def card(key: str, value_text: str, comment: str = "", sep: str = " / ") -> fits.Card:
    """One 80-column card with the value text right-justified in columns 11-30, as most
    acquisition programs write numbers; ``sep`` is what stands between value and comment
    (MaxIm DL writes ``' /'`` with no space after the slash)."""
    text = f"{key:<8}= {value_text:>20}"
    if comment or sep.strip() == "/":
        text += f"{sep}{comment}"
    return fits.Card.fromstring(f"{text[:80]:<80}")


def scard(key: str, value: str, comment: str = "", pad: int = 8, sep: str = " / ",
          width: int = 20) -> fits.Card:
    """A string card: ``'value'`` padded inside the quotes to ``pad`` characters (8 = the
    FITS minimum many programs keep; 0 = unpadded, N.I.N.A.) and left-justified in a field
    of ``width`` characters before the comment."""
    quoted = "'" + str(value).replace("'", "''").ljust(pad) + "'"
    text = f"{key:<8}= {quoted:<{width}}"
    if comment or sep.strip() == "/":
        text += f"{sep}{comment}"
    return fits.Card.fromstring(f"{text[:80]:<80}")


def fcard(key: str, value: float, fmt: str, comment: str = "", sep: str = " / ") -> fits.Card:
    """A number card formatted with ``fmt``: ``'{:.2f}'``, ``'{:.11E}'``; a format of
    ``'dot'`` writes an integral float as ``120.`` (TheSkyX, ZWO), ``'maxim'`` as MaxIm DL's
    17-significant-digit ``-35.000000000000000``."""
    if fmt == "dot":
        text = f"{value:.0f}." if float(value).is_integer() else repr(float(value))
    elif fmt == "maxim":
        text = _maxim_digits(float(value))
    else:
        text = fmt.format(value)
    return card(key, text, comment, sep)


def _maxim_digits(value: float) -> str:
    """MaxIm DL prints doubles with 17 significant digits: 300.00000000000000."""
    if value == 0:
        return "0.00000000000000000"
    digits = 17 - (int(math.floor(math.log10(abs(value)))) + 1)
    return f"{value:.{max(digits, 1)}f}"


def write_float_image(path: Path, data: np.ndarray, cards=()) -> None:
    """Write ``data`` as a float32 primary-HDU FITS image at ``path`` (folder created, file
    overwritten), with ``cards`` as (keyword, value, comment) triples: the simulation's truth
    images (bias in ADU, dark in ADU/s, flats)."""
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
    """Write an astropy ``table`` (its ``columns``, default all) as CSV with :func:`write_csv`."""
    columns = columns or list(table.colnames)
    cols = {c: table[c] for c in columns}
    rows = ({c: cols[c][i] for c in columns} for i in range(len(table)))
    write_csv(path, columns, rows)


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as indented JSON with sorted keys (a stable file for the same truth)."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _toml_str(text: str) -> str:
    return json.dumps(str(text))  # a TOML basic string is a JSON string for plain text


def _headers_section(headers: dict) -> str:
    """``[headers]`` (+ ``kind_by_path``, ``filter_aliases``) for a style's files."""
    lines = ["", "[headers]", 'profile = "auto"']
    if headers.get("default_kind"):
        lines.append(f"default_kind = {_toml_str(headers['default_kind'])}")
    if headers.get("default_filter"):
        lines.append(f"default_filter = {_toml_str(headers['default_filter'])}")
    for table in ("kind_by_path", "filter_aliases"):
        if headers.get(table):
            lines += ["", f"[headers.{table}]"]
            lines += [f"{_toml_str(k)} = {_toml_str(v)}" for k, v in headers[table].items()]
    return "\n".join(lines) + "\n"


def config_text(spec, aperture: float, headers: dict | None = None,
                measure_without_masters: bool = False) -> str:
    """A ``clinepipe.toml`` for the simulated night.

    Without ``headers`` and ``measure_without_masters`` only keys today's clinepipe.config
    knows are written; ``headers`` (see :func:`clinepipe.simulate.styles.headers_config`)
    adds the ``[headers]`` section a style needs, ``measure_without_masters`` sets
    ``[reduction] without_masters = "measure"`` for a night without calibration frames.
    """
    text = _config_text(spec, aperture)
    if measure_without_masters:
        text = text.replace('mode = "default"\n',
                            'mode = "default"\nwithout_masters = "measure"\n', 1)
    if headers:
        text += _headers_section(headers)
    return text


def _config_text(spec, aperture: float) -> str:
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
""" + (_AAVSO_SECTION if spec.variables else "")


# the simulated eclipsing binary (named in vsx.csv) is the AAVSO target, so a run shows what a
# nightly AAVSO file is; the observer code stays empty: a code is the observer's own, and
# without one the run says that no AAVSO file was written and why
_AAVSO_SECTION = """
[aavso]
obscode = ""            # your AAVSO observer code: without one no AAVSO file is written
targets = ["V0001 Sim"] # the simulated eclipsing binary: archive/aavso/<night>/V0001_Sim.txt
"""
