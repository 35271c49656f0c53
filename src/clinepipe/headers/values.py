"""Reading one keyword's value the way real headers write it.

Real headers break the FITS rules in small ways (see ``shared/headers/SOURCES.md``): N.I.N.A.
1.9 wrote ``DATE-OBS`` unquoted, PixInsight stores every number as a quoted string, CCDSoft
pads strings to 20 characters, MaxIm leaves blank strings. These helpers turn any of those into
a plain Python value, and never raise: an unreadable card gives its raw text.
"""

from __future__ import annotations

import re
import sys
from decimal import Decimal, InvalidOperation

from clinepipe.finite import finite_or_none

__all__ = ["FastHeader", "comment", "decimal_step", "first", "number", "raw", "text"]



def _undefined(value) -> bool:
    """astropy's placeholder for a keyword without a value. astropy is not imported for it:
    a header that holds one was read by astropy, which is then loaded (``clinepipe lc`` and
    the other commands that read the configuration only never import it)."""
    card = sys.modules.get("astropy.io.fits.card")
    return card is not None and isinstance(value, card.Undefined)


def _card_text(header, key: str) -> str:
    """The value field of a card astropy cannot parse (``DATE-OBS= 2020-01-21T20:29:08.357``)."""
    try:
        image = header.cards[key].image
    except (KeyError, IndexError, ValueError):
        return ""
    body = image[10:] if image[8:10] == "= " else image[8:].lstrip("= ")
    return body.split(" /", 1)[0].strip().strip("'").strip()


def raw(header, key: str):
    """The value of ``key`` (strings stripped), None when absent, blank or undefined."""
    if key not in header:
        return None
    try:
        value = header[key]
    except Exception:  # noqa: BLE001 - astropy's VerifyError/ValueError for an illegal card
        value = _card_text(header, key)
    if _undefined(value):
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def text(header, key: str) -> str | None:
    """``key`` as a stripped string (numbers formatted), None when absent or blank."""
    value = raw(header, key)
    if value is None or isinstance(value, bool):
        return None
    return str(value)


def number(header, key: str) -> float | None:
    """``key`` as a finite float (quoted numbers accepted), None when absent or not a number."""
    value = raw(header, key)
    return None if isinstance(value, bool) else finite_or_none(value)


def comment(header, key: str) -> str:
    """The comment of ``key`` ('' when none)."""
    try:
        return str(header.comments[key] or "")
    except (KeyError, IndexError, ValueError):
        return ""


def first(header, keys) -> tuple[str | None, object]:
    """``(keyword, value)`` of the first of ``keys`` that has a value, else ``(None, None)``."""
    for key in keys:
        value = raw(header, key)
        if value is not None:
            return key, value
    return None, None


def decimal_step(header, key: str) -> float | None:
    """The value of the last written digit of a numeric card (``58353.367708333`` -> 1e-9),
    from the card as written, so that the precision of an MJD or JD can be stated."""
    try:
        image = header.cards[key].image
    except (KeyError, IndexError, ValueError):
        return None
    body = image[10:].split("/", 1)[0].strip().strip("'").strip()
    try:
        exponent = Decimal(body.replace("D", "E")).as_tuple().exponent
    except InvalidOperation:
        return None
    return 10.0 ** int(exponent) if isinstance(exponent, int) else None


class _Card:
    __slots__ = ("image",)

    def __init__(self, image: str):
        self.image = image


_INT = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?$")


def _parse_card(image: str):
    """``(key, value, comment)`` of one 80-column card; value None when undefined, the raw
    text when it is not a legal FITS value (an unquoted date)."""
    if image[:8] == "HIERARCH":
        key, _, rest = image[9:].partition("=")
        key, body = key.strip(), rest
    else:
        key = image[:8].strip()
        if image[8:10] != "= ":
            return key, None, ""
        body = image[10:]
    body = body.strip()
    if body.startswith("'"):
        # a string: '' inside is a quote; the comment follows the closing quote
        i, out = 1, []
        while i < len(body):
            ch = body[i]
            if ch == "'":
                if body[i + 1:i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(ch)
            i += 1
        rest = body[i + 1:]
        return key, "".join(out).rstrip(), rest.partition("/")[2].strip()
    value_text, _, comment_text = body.partition("/")
    token = value_text.strip()
    if token == "":
        return key, None, comment_text.strip()
    if token in ("T", "F"):
        return key, token == "T", comment_text.strip()
    if _INT.match(token):
        return key, int(token), comment_text.strip()
    if _NUMBER.match(token):
        return key, float(token.replace("D", "E").replace("d", "e")), comment_text.strip()
    return key, token, comment_text.strip()


class FastHeader:
    """The cards of a header read straight from its bytes: what :func:`raw`, :func:`comment`
    and :func:`decimal_step` need, ~30x faster than astropy's ``Header`` (which verifies every
    card and checks it for record-valued keywords on first access). The first card of a
    repeated keyword wins, as in astropy; COMMENT/HISTORY/blank cards are not kept."""

    def __init__(self, images):
        self._values: dict = {}
        self.comments: dict = {}
        self.cards: dict = {}
        for image in images:
            if image[:8] in ("COMMENT ", "HISTORY ", "        ", "CONTINUE") or image[:3] == "END" \
                    and not image[3:].strip():
                continue
            key, value, note = _parse_card(image)
            if not key or key in self._values:
                continue
            self._values[key] = value
            self.comments[key] = note
            self.cards[key] = _Card(image)

    @classmethod
    def from_bytes(cls, data: bytes) -> FastHeader:
        """A header from its raw 2880-byte blocks (up to and including the END card)."""
        text = data.decode("ascii", "replace")
        return cls(text[i:i + 80] for i in range(0, len(text), 80))

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def __getitem__(self, key: str):
        return self._values[key]

    def get(self, key: str, default=None):
        value = self._values.get(key, default)
        return default if value is None else value

    def keys(self):
        return self._values.keys()
