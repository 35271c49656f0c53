"""AAVSO files, right by construction and checked before they are written (issue 21).

Two formats: the AAVSO Extended File Format v1.2 (variable-star observations, WebObs) in
:mod:`.aavso_extended` and the AAVSO Exoplanet Report v0.62 (the Exoplanet Database) in
:mod:`.aavso_exoplanet`; what they share is in :mod:`.aavso_rules`. This module is the door:

* ``validate_extended(text)`` / ``validate_exoplanet(text)`` -> list of :class:`Problem`;
* ``validate_file(path)`` reads a file, tells the format from its ``#TYPE`` line and validates
  it (an unreadable file or one of another type is one Problem, never a traceback);
* ``format_extended(header, rows)`` / ``format_exoplanet(header, rows)`` -> the file's text,
  validated before it is returned;
* ``run_validate(paths)`` is ``clinepipe validate FILE…``: one line ``FILE:LINE: rule: message``
  per problem, exit code 0 when every file is valid, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from clinepipe.products.aavso_exoplanet import (
    DATE_TYPES,
    ExoplanetHeader,
    ExoplanetRow,
    format_exoplanet,
    validate_exoplanet,
)
from clinepipe.products.aavso_extended import (
    FIELDS,
    ExtendedHeader,
    ExtendedRow,
    format_extended,
    validate_extended,
)
from clinepipe.products.aavso_rules import (
    AAVSO_FILTER_CODES,
    Problem,
    aavso_filter_code,
    check_obscode,
    parameter,
)

__all__ = ["Problem", "AAVSO_FILTER_CODES", "FIELDS", "DATE_TYPES", "ExtendedHeader",
           "ExtendedRow", "ExoplanetHeader", "ExoplanetRow", "aavso_filter_code",
           "check_obscode", "validate_extended", "validate_exoplanet", "format_extended",
           "format_exoplanet", "detect_type", "validate_file", "run_validate"]

#: bytes read from a file at most: an AAVSO report is text of a few MB at most
MAX_BYTES = 64 * 1024 * 1024
_VALIDATORS = {"EXTENDED": validate_extended, "EXOPLANET": validate_exoplanet}
_NAMES = {"EXTENDED": "AAVSO Extended", "EXOPLANET": "AAVSO Exoplanet"}


def detect_type(text: str) -> str | None:
    """The value of the first ``#TYPE=`` line, upper case (``EXTENDED``, ``EXOPLANET``,
    ``VISUAL``…), or None when there is none."""
    for line in text.splitlines():
        param = parameter(line) if line.startswith("#") else None
        if param is not None and param[0].upper() == "TYPE":
            return param[1].strip().upper()
    return None


def _read_text(path: Path) -> tuple[str | None, Problem | None]:
    try:
        if path.is_dir():
            return None, Problem(0, "unreadable", "a folder, not a file")
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        return None, Problem(0, "unreadable", f"cannot be read: {exc.strerror or exc}")
    if len(data) > MAX_BYTES:
        return None, Problem(0, "unreadable", f"larger than {MAX_BYTES // 2**20} MB: not an "
                             f"AAVSO report")
    if b"\0" in data:
        return None, Problem(0, "type", "a binary file, not an AAVSO text report")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        # the validators flag the non-ASCII characters line by line
        return data.decode("latin-1"), None


def validate_file(path: str | os.PathLike) -> list[Problem]:
    """The problems of the AAVSO file at ``path`` (empty when it is valid); the format comes
    from its ``#TYPE`` line (EXTENDED or EXOPLANET)."""
    text, problem = _read_text(Path(path))
    if problem is not None:
        return [problem]
    kind = detect_type(text)
    if kind is None:
        return [Problem(0, "type", "no #TYPE= line: not an AAVSO Extended or Exoplanet file")]
    if kind not in _VALIDATORS:
        return [Problem(0, "type", f"#TYPE={kind}: clinepipe validates EXTENDED and EXOPLANET "
                                   f"files only")]
    return _VALIDATORS[kind](text)


def _count(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))


def run_validate(paths: Iterable[str | os.PathLike], out: TextIO | None = None) -> int:
    """``clinepipe validate FILE…``: print ``FILE:LINE: rule: message`` for every problem of
    every file (and ``FILE: valid …`` for a valid one) on ``out`` (standard output by default).

    Returns
    -------
    int
        0 when every file is valid, 1 when one is not.
    """
    out = sys.stdout if out is None else out
    status = 0
    for path in paths:
        problems = validate_file(path)
        for problem in problems:
            print(f"{path}:{problem.line}: {problem.rule}: {problem.message}", file=out)
        if problems:
            status = 1
        else:
            text, _ = _read_text(Path(path))
            kind = detect_type(text)
            print(f"{path}: valid {_NAMES[kind]} file ({_count(text)} data lines)", file=out)
    return status
