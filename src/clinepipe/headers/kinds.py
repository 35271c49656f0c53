"""What a frame is: light, bias, dark or flat, from its header, its path, or the config."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

__all__ = [
    "FRAME_TYPE_KEYS",
    "FRAME_TYPE_SYNONYMS",
    "KINDS",
    "kind_from_path",
    "kind_of_value",
    "match_kind_by_path",
]

KINDS = ("light", "bias", "dark", "flat")

#: the frame-type keywords, in the order they are read (CALFRAME: Astro Pixel Processor's)
FRAME_TYPE_KEYS = ("IMAGETYP", "FRAME", "OBSTYPE", "FRAMETYP", "IMAGETYPE", "CALFRAME")

#: frame-type value (lower case, blanks collapsed) -> kind; "darkflat" is a dark for the flats
FRAME_TYPE_SYNONYMS = {
    **dict.fromkeys(("light frame", "light", "object", "science", "expose", "standard",
                     "light frame (object)"), "light"),
    **dict.fromkeys(("bias frame", "bias", "zero", "offset"), "bias"),
    **dict.fromkeys(("dark frame", "dark", "dark current"), "dark"),
    **dict.fromkeys(("flat field", "flat frame", "flat", "domeflat", "dome flat", "skyflat",
                     "sky flat", "twilight flat", "lampflat", "lamp flat"), "flat"),
    **dict.fromkeys(("darkflat", "dark flat", "flat dark", "flatdark"), "darkflat"),
}

_MASTER = re.compile(r"^master\s*")


def kind_of_value(value: str) -> tuple[str | None, bool]:
    """The kind a frame-type value names.

    Parameters
    ----------
    value : str
        As written (``'Light Frame'``, ``'LIGHT   '``, ``'zero'``, ``'Master Light'``,
        ``'MasterFlat'``, ``'DARKFLAT'``).

    Returns
    -------
    (str or None, bool)
        One of :data:`KINDS` or ``"darkflat"`` (None when the value names no kind clinepipe
        uses, e.g. ``'Temp'``, ``'focus'``, ``'TEST'``), and whether the value says the
        frame is a master (a stack), not a raw frame.
    """
    key = " ".join(str(value).lower().split())
    master = bool(_MASTER.match(key))
    if master:
        key = _MASTER.sub("", key)
    return FRAME_TYPE_SYNONYMS.get(key), master


# a word of the path naming a kind: "Bias/", "_dark_", "DWARF_DARK", "flat-", "Light_M 31"
_PATH_WORDS = tuple((kind, re.compile(r"(?<![a-z])(?:master[ _-]?)?(?:" + words + r")(?![a-z])"))
                    for kind, words in (
    ("darkflat", r"dark[ _-]?flats?|flat[ _-]?darks?"),
    ("bias", r"bias(?:es)?|zeros?"),
    ("dark", r"darks?"),
    ("flat", r"(?:sky|dome|twilight|lamp)?[ _-]?flats?"),
    ("light", r"lights?|science"),
))


def kind_from_path(relpath: str) -> tuple[str | None, str]:
    """The kind a file's path names, from its last folder inward to its file name.

    Parameters
    ----------
    relpath : str
        The path relative to ``incoming`` (``/``-separated).

    Returns
    -------
    (str or None, str)
        The kind (or ``"darkflat"``) and the word of the path that named it (``"DARK"`` of
        ``DWARF_DARK/``, ``"Flats"``); ``(None, "")`` when no
        part of the path names one. The file name wins over its folders (``darks/flat_1.fit``
        is a flat), a nearer folder over a farther one.
    """
    parts = [p for p in str(relpath).replace("\\", "/").split("/") if p]
    for part in reversed(parts):
        low = part.lower()
        for kind, pattern in _PATH_WORDS:
            if m := pattern.search(low):
                return kind, part[m.start():m.end()]
    return None, ""


def match_kind_by_path(relpath: str, patterns) -> tuple[str | None, str]:
    """The kind of the first ``(glob, kind)`` whose glob matches ``relpath``, case-insensitive.

    ``*`` matches across folders (``"*flat*"`` matches ``night/Flats/a.fit``), and the path is
    also tried with a leading ``/`` so that ``"*/Bias/*"`` matches ``Bias/a.fit`` at the top of
    ``incoming``. Returns ``(kind, glob)`` or ``(None, "")``.
    """
    path = str(relpath).replace("\\", "/").lower()
    for glob, kind in patterns:
        g = glob.lower()
        if fnmatchcase(path, g) or fnmatchcase("/" + path, g):
            return kind, glob
    return None, ""
