"""TheSkyX Image Link `.SRC` source lists: reading them into tables (1-based positions as written)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from astropy.table import Table

from clinepipe.errors import BadInput

log = logging.getLogger(__name__)


#: the eleven columns of a TheSkyX Image Link ``.SRC`` file, in file order
SRC_COLUMNS = ("X_IMAGE", "Y_IMAGE", "MAG_APER", "FWHM_IMAGE", "FLAGS", "CLASS_STAR",
               "ELONGATION", "ELLIPTICITY", "A_IMAGE", "B_IMAGE", "THETA_IMAGE")

_SRC_INT_HEADERS = ("HEIGHT", "WIDTH")

_SRC_HEADER = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*=\s*(.*?)\s*$")

def read_src(path) -> Table:
    """Read a TheSkyX Image Link ``.SRC`` source list.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.SRC`` file: ``#`` header lines (``#HEIGHT= 844``, ``#WIDTH = 1117``,
        ``#TIME  = ...``, perhaps a column-name comment) then one source per line with the
        eleven whitespace-separated columns of :data:`SRC_COLUMNS`. LF, CRLF or mixed line
        endings.

    Returns
    -------
    astropy.table.Table
        The columns as in the file (``X_IMAGE``/``Y_IMAGE`` 1-based pixels, as written;
        ``FLAGS`` int64, the rest float64); ``meta`` holds the ``#KEY = value`` header values
        (``HEIGHT`` and ``WIDTH`` as int, the others as str). No sources is an empty table.

    Raises
    ------
    BadInput
        ``reason="unreadable .SRC"`` when the file cannot be read; ``reason="malformed .SRC"``
        naming the file and line when a line has the wrong number of columns, a
        non-numeric or non-finite position, or a non-integer flag.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot be read ({exc.strerror or exc}).",
                       reason="unreadable .SRC") from exc
    if b"\x00" in raw:
        raise BadInput(f"{path}: is not a text source list (binary data).", reason="malformed .SRC")
    lines = raw.decode("utf-8", errors="replace").splitlines()  # LF, CRLF, CR or mixed

    meta: dict[str, object] = {}
    body: list[list[str]] = []
    line_numbers: list[int] = []
    for number, line in enumerate(lines, start=1):  # one pass over the text, to split it
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            match = _SRC_HEADER.match(text)
            if match:
                meta[match.group(1).upper()] = match.group(2)
            continue
        body.append(text.split())
        line_numbers.append(number)

    for key in _SRC_INT_HEADERS:
        if key in meta:
            try:
                meta[key] = int(float(str(meta[key])))
            except ValueError:
                raise BadInput(f"{path}: header #{key} = {meta[key]!r} is not a whole number "
                               "(malformed .SRC).", reason="malformed .SRC") from None

    ncol = len(SRC_COLUMNS)
    if not body:
        table = Table(names=SRC_COLUMNS,
                      dtype=[np.int64 if c == "FLAGS" else np.float64 for c in SRC_COLUMNS])
        table.meta.update(meta)
        return table

    counts = np.fromiter((len(row) for row in body), dtype=np.intp, count=len(body))
    wrong = np.flatnonzero(counts != ncol)
    if wrong.size:
        i = int(wrong[0])
        raise BadInput(f"{path}: line {line_numbers[i]} has {counts[i]} columns instead of "
                       f"{ncol} (malformed .SRC).", reason="malformed .SRC")
    tokens = np.array(body, dtype=str)
    try:
        values = tokens.astype(np.float64)
    except ValueError:
        i = _first_non_numeric(tokens)
        raise BadInput(f"{path}: line {line_numbers[i]} has a value that is not a number "
                       "(malformed .SRC).", reason="malformed .SRC") from None
    bad = ~np.isfinite(values[:, :2]).all(axis=1)
    flags = values[:, SRC_COLUMNS.index("FLAGS")]
    bad |= ~np.isfinite(flags) | (flags != np.round(flags))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BadInput(f"{path}: line {line_numbers[i]} has a non-finite position or a "
                       "non-integer FLAGS value (malformed .SRC).", reason="malformed .SRC")

    table = Table()
    for j, name in enumerate(SRC_COLUMNS):
        column = values[:, j]
        table[name] = column.astype(np.int64) if name == "FLAGS" else column
    table.meta.update(meta)
    return table


def _first_non_numeric(tokens: np.ndarray) -> int:
    """Row index of the first row holding a token float() rejects (error path only)."""
    def is_number(token: str) -> bool:
        try:
            float(token)
        except ValueError:
            return False
        return True

    ok = np.vectorize(is_number, otypes=[bool])(tokens).all(axis=1)
    return int(np.flatnonzero(~ok)[0])


def src_positions(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """0-based numpy positions of a :func:`read_src` table.

    Returns
    -------
    x0, y0 : numpy.ndarray
        float64 pixels, ``X_IMAGE - 1`` and ``Y_IMAGE - 1`` (FITS 1-based to numpy 0-based).
    """
    x0 = np.asarray(table["X_IMAGE"], dtype=np.float64) - 1.0
    y0 = np.asarray(table["Y_IMAGE"], dtype=np.float64) - 1.0
    return x0, y0


