"""What the two AAVSO formats share: the :class:`Problem` a validator reports, the AAVSO filter
codes and the mapping of our filter names onto them, the delimiter rule, the observer-code rule,
and the reading of ``#KEY=value`` parameter lines.

Sources: the AAVSO Extended File Format v1.2 (https://www.aavso.org/aavso-extended-file-format)
and the AAVSO Exoplanet Report File Format v0.62
(https://www.aavso.org/aavso-exoplanet-report-file-format), as summarised in issue 21.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from clinepipe.errors import BadInput

__all__ = ["Problem", "AAVSO_FILTER_CODES", "FILTER_NAMES", "aavso_filter_code",
           "parse_delimiter", "obscode_problem", "check_obscode", "parameter",
           "is_blank", "non_ascii", "content_lines", "missing_parameters", "number", "JD_MIN", "JD_MAX"]


@dataclass(frozen=True)
class Problem:
    """One way a file breaks its format: ``line`` (1-based; 0 = the file as a whole), the
    ``rule`` broken (a parameter such as ``#OBSCODE`` or a field such as ``MAGERR``) and one
    sentence for people."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.line}: {self.rule}: {self.message}"


#: the band codes AAVSO accepts (issue 21, from https://www.aavso.org/filters)
AAVSO_FILTER_CODES = frozenset(
    "U B V R I J H K TG TB TR CV CR SZ SU SG SR SI STU STV STB STY STHBW STHBN MA MB MI ZS Y "
    "HA HAC".split())

#: our filter names (compared case-insensitively, blanks squeezed) -> AAVSO code. Johnson U B V,
#: Cousins R I (AAVSO "R" and "I" are Rc, Ic), Sloan (SU SG SR SI SZ), Stromgren, the RGB set of
#: a tricolour wheel (TR TG TB), clear/luminance on V comparison magnitudes (CV), H-alpha. Any
#: other name is refused rather than guessed: a wrong band is worse than no observation.
FILTER_NAMES = {
    **{code.lower(): code for code in AAVSO_FILTER_CODES},
    "rc": "R", "ic": "I", "cousins r": "R", "cousins i": "I",
    "johnson u": "U", "johnson b": "B", "johnson v": "V",
    "u'": "SU", "g'": "SG", "r'": "SR", "i'": "SI", "z'": "SZ",
    "sloan u": "SU", "sloan g": "SG", "sloan r": "SR", "sloan i": "SI", "sloan z": "SZ",
    "stromgren u": "STU", "stromgren v": "STV", "stromgren b": "STB", "stromgren y": "STY",
    "red": "TR", "green": "TG", "blue": "TB",
    "clear": "CV", "c": "CV", "l": "CV", "lum": "CV", "luminance": "CV", "none": "CV",
    "open": "CV", "unfiltered": "CV",
    "halpha": "HA", "h-alpha": "HA", "h alpha": "HA",
}

#: full Julian dates AAVSO can mean (1858 .. 2132): a reduced or modified JD is refused
JD_MIN, JD_MAX = 2400000.0, 2500000.0

#: observer codes that are placeholders, not codes (EXOTIC wrote ``N/A``; the upload tool
#: refuses it)
_PLACEHOLDER_CODES = {"N/A", "NA", "NONE", "NULL", "UNKNOWN", "XXX", "XXXX", "TBD"}
_OBSCODE = re.compile(r"[A-Za-z0-9]{1,10}")
_PARAM = re.compile(r"#\s*([A-Za-z][A-Za-z0-9_\-]*)\s*=(.*)\Z", re.DOTALL)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def aavso_filter_code(name: str | None) -> str:
    """The AAVSO band code of one of our filter names (``"V"``, ``"Rc"``, ``"Clear"`` -> ``CV``,
    ``"Sloan r"``, ``"Red"`` -> ``TR``…), compared case-insensitively.

    Raises
    ------
    BadInput
        when the name has no AAVSO code (reason ``no AAVSO filter code``).
    """
    key = " ".join(str(name or "").lower().split())
    code = FILTER_NAMES.get(key)
    if code is None:
        raise BadInput(f"filter {name!r} has no AAVSO band code (FILTER must be one of "
                       f"{' '.join(sorted(AAVSO_FILTER_CODES))}; clear is CV), so it cannot go "
                       f"into an AAVSO file.", reason="no AAVSO filter code")
    return code


def parse_delimiter(value: str | None) -> tuple[str | None, str | None]:
    """``(delimiter character, None)`` for a ``#DELIM`` value, or ``(None, why)`` when AAVSO
    refuses it. The words ``comma`` and ``tab`` stand for ``,`` and a tab (AAVSO: "use the word
    tab instead of an actual tab character"); otherwise one printable ASCII character (codes
    32-126) that is not ``|`` (our NOTES use it between VMAGINS=…), ``#`` or a space."""
    if value is None:
        return None, "missing"
    word = value.strip()
    if word.lower() == "comma":
        return ",", None
    if word.lower() == "tab":
        return "\t", None
    if value == "\t" or word == "" and "\t" in value:
        return None, "a literal tab: write the word tab"
    if word == "":
        return None, "a space (or nothing): spaces occur inside fields"
    if len(word) != 1 or not 32 <= ord(word) <= 126:
        return None, f"{word!r} is not one printable ASCII character (or the word comma or tab)"
    if word in "|# ":
        return None, f"{word!r} is not allowed (never |, # or a space)"
    return word, None


def obscode_problem(code: str | None) -> str | None:
    """Why ``code`` is not an AAVSO observer code (None when it is one): empty, a placeholder
    such as ``N/A``, or not 1-10 letters and digits."""
    text = (code or "").strip()
    if not text:
        return "empty"
    if text.upper() in _PLACEHOLDER_CODES:
        return f"{text!r}, a placeholder, not a code"
    if not _OBSCODE.fullmatch(text):
        return f"{text!r}, not 1-10 letters and digits"
    return None


def check_obscode(code: str | None) -> str:
    """The observer code, stripped, or :class:`BadInput` (reason ``no AAVSO observer code``)
    when there is none: no file is better than a file the upload tool refuses."""
    why = obscode_problem(code)
    if why == "empty":
        raise BadInput("no AAVSO observer code: set [aavso] obscode.",
                       reason="no AAVSO observer code")
    if why is not None:
        raise BadInput(f"no AAVSO observer code: [aavso] obscode is {why}; set it to the code "
                       f"AAVSO assigned.", reason="no AAVSO observer code")
    return (code or "").strip()


def parameter(line: str) -> tuple[str, str] | None:
    """``(KEY, value)`` of a ``#KEY=value`` parameter line (key as written, value with its line
    end removed but otherwise untouched, so that ``#DELIM= `` keeps its space); None for a
    comment or a data line."""
    match = _PARAM.match(line.rstrip("\r\n"))
    if match is None:
        return None
    return match.group(1), match.group(2)


def is_blank(line: str) -> bool:
    """A line with nothing but white space: AAVSO refuses it unless commented out with ``#``."""
    return not line.strip()


def non_ascii(line: str) -> bool:
    """A character outside printable ASCII (tabs allowed): both formats are plain ASCII."""
    return any(not (32 <= ord(c) <= 126 or c == "\t") for c in line)


def content_lines(text: str, problems: list[Problem]):
    """Each line of ``text`` that is not blank, as ``(line number, line)``, 1-based.

    The rules both formats apply to every line are checked on the way and their breaches
    appended to ``problems``: plain ASCII, and no blank line unless commented out.
    """
    for lineno, line in enumerate(text.splitlines(), start=1):
        if non_ascii(line):
            problems.append(Problem(lineno, "ASCII", "a character outside plain ASCII"))
        if is_blank(line):
            problems.append(Problem(lineno, "blank-line",
                                    "a blank line must be commented out with #"))
            continue
        yield lineno, line


def missing_parameters(lineno: int, keys, seen, where: str = "") -> list[Problem]:
    """A :class:`Problem` for each parameter of ``keys`` not in ``seen``: ``#KEY= is missing``
    followed by ``where`` (e.g. " before the first observation")."""
    return [Problem(lineno, f"#{key}", f"#{key}= is missing{where}")
            for key in keys if key not in seen]


def number(text: str) -> float | None:
    """The finite float a field spells (plain decimal or exponent notation), else None."""
    if not _NUMBER.match(text.strip()):
        return None
    value = float(text)
    return value if math.isfinite(value) else None
