"""AAVSO comparison sequences saved from the Variable Star Plotter (VSP): ``[aavso.sequences]``.

A sequence is the photometry table of a VSP chart: for each comparison star its AUID, position,
chart label and magnitudes (with errors) in AAVSO's bands, and the chart id. Two file forms
are read:

- JSON, as the VSP API writes it (``https://app.aavso.org/vsp/api/chart/?star=...&format=json``):
  ``{"chartid": "X12345ABC", "star": ..., "photometry": [{"auid": "000-BBB-123",
  "ra": "10:47:59.10", "dec": "+30:03:58.4", "label": "110", "bands": [{"band": "V",
  "mag": 11.02, "error": 0.03}, ...], "comments": ...}, ...]}``;
- a table (CSV, or the ``|``-delimited form of AAVSO's "GET API access to the Variable Star
  Database"): a header row with ``AUID``, ``RA``, ``Dec`` (or ``Declination``), ``Label`` (or
  ``Chart Label``), per band a magnitude column (``V``, ``V magnitude`` or ``V mag``) and an
  optional error column (``V error``, ``V mag error``, ``e_V``, ``Verr``), optionally ``Chart
  ID``; a cell may also hold VSP's photometry-table text ``11.020 (0.030)``. Without a chart id
  column, a file stem that looks like a chart id (``X12345ABC``) is the chart id.

Positions are sexagesimal (RA in hours) or degrees, read by :mod:`clinepipe.headers.coords`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clinepipe.errors import ConfigError, UsageError
from clinepipe.headers.coords import parse_dec, parse_ra

__all__ = ["Sequence", "SequenceStar", "load_sequence", "sequence_band", "sequence_for"]

#: an AAVSO chart id (e.g. ``X12345ABC``)
_CHART_ID = re.compile(r"X\d{4,6}[A-Z]{1,5}\Z")
#: VSP's photometry-table cell: ``11.020 (0.030)``
_MAG_CELL = re.compile(r"\s*([+-]?\d+(?:\.\d*)?)\s*(?:\(\s*(\d*\.?\d+)\s*\))?\s*\Z")

#: the VSP band names to try, in order, for an AAVSO filter code: Rc/Ic are VSP's names of
#: R and I; unfiltered (CV) and green-channel (TG) observations are reduced with V
#: magnitudes, TB with B, TR with Rc, as AAVSO's CCD/DSLR manuals prescribe
_VSP_BANDS = {"R": ("Rc", "R"), "I": ("Ic", "I"), "CV": ("V",), "TG": ("V",), "TB": ("B",),
              "TR": ("Rc", "R"), "CR": ("Rc", "R"), "CBB": ("V",),
              "SU": ("SU", "u'", "u"), "SG": ("SG", "g'", "g"), "SR": ("SR", "r'", "r"),
              "SI": ("SI", "i'", "i"), "SZ": ("SZ", "z'", "z")}


@dataclass(frozen=True)
class SequenceStar:
    """One comparison star: ``auid`` (may be empty), chart ``label``, ICRS ``ra``/``dec``
    (degrees) and ``mags`` ``{VSP band: (mag, error or NaN)}`` (mag)."""

    auid: str
    label: str
    ra: float
    dec: float
    mags: dict

    @property
    def name(self) -> str:
        """What AAVSO files call it (CNAME/KNAME): the AUID, else the chart label."""
        return self.auid or self.label


@dataclass(frozen=True)
class Sequence:
    """A comparison sequence: ``chart_id`` (``"na"`` when unknown), the ``stars``, and where
    it came from (``path``, and the config ``key`` that named it, for messages)."""

    chart_id: str
    stars: tuple[SequenceStar, ...]
    path: Path
    key: str

    @property
    def where(self) -> str:
        return f"{self.path} ([aavso.sequences] \"{self.key}\")"

    def bands(self) -> list[str]:
        return sorted({b for s in self.stars for b in s.mags})

    def magnitudes(self, band: str) -> tuple[np.ndarray, np.ndarray]:
        """(mag, error) of every star in ``band`` (NaN where the star has none), mag."""
        pairs = [s.mags.get(band, (math.nan, math.nan)) for s in self.stars]
        return (np.array([p[0] for p in pairs], float), np.array([p[1] for p in pairs], float))


def sequence_for(cfg, target: str | None) -> Sequence | None:
    """The sequence ``[aavso.sequences]`` gives for ``target`` (the text that names it in
    ``[aavso] targets`` or ``--star``, compared without case and extra blanks), read now;
    None when there is none."""
    if not target:
        return None
    want = " ".join(str(target).split()).lower()
    for key, path in cfg.aavso.sequences.items():
        if " ".join(key.split()).lower() == want:
            return load_sequence(path, key)
    return None


def load_sequence(path: str | Path, key: str = "") -> Sequence:
    """Read a VSP sequence file (JSON or CSV, see the module docstring).

    Raises
    ------
    ConfigError
        when the file is missing or unreadable, or holds no comparison star with a position
        and a magnitude; the message names the file and the ``[aavso.sequences]`` key.
    """
    path = Path(path)
    where = f"{path} ([aavso.sequences] \"{key}\")"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{where}: the comparison sequence file does not exist.",
                          reason="no sequence file") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"{where}: the comparison sequence file cannot be read ({why}).",
                          reason="sequence unreadable") from None
    try:
        if text.lstrip().startswith("{"):
            chart, stars = _from_json(text)
        else:
            chart, stars = _from_table(text)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{where}: is not a VSP photometry table ({exc}).",
                          reason="sequence unreadable") from None
    stars = tuple(s for s in stars if s.mags and math.isfinite(s.ra) and math.isfinite(s.dec))
    if not stars:
        raise ConfigError(f"{where}: holds no comparison star with a position and a magnitude.",
                          reason="sequence empty")
    if not chart and _CHART_ID.match(path.stem.upper()):
        chart = path.stem.upper()
    return Sequence(chart or "na", stars, path, key)


def sequence_band(sequence: Sequence, code: str, filter_name: str | None = None) -> str:
    """The sequence's band for an AAVSO filter ``code`` (``V``, ``R``, ``CV``...: see
    :func:`clinepipe.products.aavso_rules.aavso_filter_code`), trying VSP's names of it;
    ``filter_name`` (our name of the filter) is for the message.

    Raises
    ------
    UsageError
        when the sequence has no magnitudes in that band (the file, key and its bands named).
    """
    filter_name = code if filter_name is None else filter_name
    have = sequence.bands()
    lowered = {b.lower(): b for b in have}
    for band in _VSP_BANDS.get(code, (code,)):
        if band.lower() in lowered:
            return lowered[band.lower()]
    raise UsageError(f"{sequence.where}: has no {code} magnitudes for filter {filter_name!r} "
                     f"(its bands: {', '.join(have)}).", reason="band not in sequence")


# -- readers -------------------------------------------------------------------------------------

def _number(value) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _position(ra, dec) -> tuple[float, float]:
    """Degrees from VSP's ``"10:47:59.10"``/``"+30:03:58.4"`` (RA in hours) or numbers."""
    if isinstance(ra, (int, float)) and isinstance(dec, (int, float)):
        return float(ra), float(dec)
    return parse_ra(str(ra)), parse_dec(str(dec))


def _from_json(text: str) -> tuple[str, list[SequenceStar]]:
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("photometry"), list):
        raise ValueError("no 'photometry' list")
    stars = []
    for row in data["photometry"]:
        mags = {}
        for b in row.get("bands") or ():
            mag = _number(b.get("mag"))
            if b.get("band") and math.isfinite(mag):
                mags[str(b["band"]).strip()] = (mag, _number(b.get("error")))
        ra, dec = _position(row["ra"], row["dec"])
        stars.append(SequenceStar(str(row.get("auid") or "").strip(),
                                  str(row.get("label") or "").strip(), ra, dec, mags))
    return str(data.get("chartid") or "").strip(), stars


#: an AAVSO unique identifier (AUID), e.g. ``000-BBB-123``
_AUID = re.compile(r"\d{3}-[A-Z]{3}-\d{3}\Z")
#: the fields of AAVSO's "GET API access to the Variable Star Database" (``delimited=yes``),
#: which has no header row
_VSD_COLUMNS = (("AUID", "RA", "Dec", "Label")
                + tuple(f"{b} {kind}" for b in ("U", "B", "V", "Rc", "Ic", "J", "H", "K", "SU",
                                                "SG", "SR", "SI", "SZ")
                        for kind in ("magnitude", "mag error", "mag source"))
                + ("Comments", "Chart ID"))

_ID_COLUMNS = {"auid": "auid", "ra": "ra", "dec": "dec", "declination": "dec", "label": "label",
               "chart label": "label", "chart id": "chart", "chartid": "chart",
               "comments": "comments"}


def _band_column(name: str) -> tuple[str, str] | None:
    """(band, "mag" | "err" | "source") of a band column's header, None for another column."""
    low = " ".join(name.split()).lower()
    for suffix, kind in ((" mag error", "err"), (" error", "err"), (" err", "err"),
                         ("err", "err"), (" mag source", "source"), (" source", "source"),
                         (" magnitude", "mag"), (" mag", "mag")):
        if low.endswith(suffix) and len(low) > len(suffix):
            return name.strip()[:len(low) - len(suffix)].strip(), kind
    if low.startswith("e_") and len(low) > 2:
        return name.strip()[2:], "err"
    return (name.strip(), "mag") if name.strip() else None


def _from_table(text: str) -> tuple[str, list[SequenceStar]]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
             and not ln.strip().lower().startswith("count=")]
    if not lines:
        raise ValueError("no rows")
    delim = max(",|;\t", key=lines[0].count)
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
    if rows[0] and _AUID.match(rows[0][0].strip()):  # no header: the VSD API's column order
        rows.insert(0, list(_VSD_COLUMNS))
    header = rows[0]
    ident, bands = {}, {}
    for i, name in enumerate(header):
        key = _ID_COLUMNS.get(" ".join(name.split()).lower())
        if key is not None:
            ident[key] = i
            continue
        found = _band_column(name)
        if found is not None and found[1] != "source":
            bands.setdefault(found[0], {})[found[1]] = i
    missing = [k for k in ("ra", "dec") if k not in ident]
    if missing or not any("mag" in b for b in bands.values()):
        raise ValueError("a header row with RA, Dec and band columns is needed, found "
                         + ", ".join(header))
    stars, chart = [], ""

    def cell(row, i):
        return row[i].strip() if i is not None and i < len(row) else ""

    for row in rows[1:]:
        mags = {}
        for band, cols in bands.items():
            m = _MAG_CELL.match(cell(row, cols.get("mag")))
            if not m:
                continue
            err = _number(m.group(2)) if m.group(2) else _number(cell(row, cols.get("err")))
            mags[band] = (float(m.group(1)), err)
        ra, dec = _position(cell(row, ident["ra"]), cell(row, ident["dec"]))
        stars.append(SequenceStar(cell(row, ident.get("auid")), cell(row, ident.get("label")),
                                  ra, dec, mags))
        chart = chart or cell(row, ident.get("chart"))
    return chart, stars
