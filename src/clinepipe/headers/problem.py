"""One thing wrong or odd about a file's header, with the config line that fixes it."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Problem"]


class Problem(NamedTuple):
    """A problem found in a header.

    ``reason`` is short and named (stored, grouped and counted: ``no frame type``,
    ``DATE-OBS '…' is not a date clinepipe reads``); ``message`` is one sentence for people;
    ``fix`` is the exact config line that fixes it, with its section
    (``[headers] default_kind = "light"``), or ``""`` when no setting can; ``fatal`` means the
    pipeline cannot use the file as it is (it is not classified).
    """

    reason: str
    message: str
    fix: str = ""
    fatal: bool = False
