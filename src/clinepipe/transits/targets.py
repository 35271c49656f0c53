"""Transit targets: ``transits.csv`` with the NASA Exoplanet Archive's column names, positions
in degrees or sexagesimal, and the transits of a target that fall in a time window.

Units, as the Archive's Planetary Systems tables give them: ``ra``/``dec`` degrees,
``pl_orbper`` days, ``pl_tranmid`` BJD_TDB (days), ``pl_trandur`` **hours** (the Archive's
"Transit Duration [hours]"; converted to days here), ``pl_orbincl`` and ``pl_orblper``
degrees, ``pl_ratror`` and ``pl_ratdor`` dimensionless, ``st_teff`` K, ``st_logg``
log10(cm/s^2), ``st_met`` dex, ``pl_trandep`` **percent** (the Archive's "Transit Depth
[%]"; a fraction here), ``tic_id`` the TESS Input Catalog number (``123456789`` or
``TIC 123456789``): a target with one also gets the TFOP SG1 package. A CSV downloaded from the Archive starts with ``#`` comment
lines; they are skipped.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clinepipe.errors import BadInput
from clinepipe.headers.coords import parse_dec, parse_position, parse_ra

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "TIC_PATTERN",
    "TransitTarget",
    "parse_dec",
    "parse_position",
    "parse_ra",
    "read_targets",
    "transits_in_window",
]

REQUIRED_COLUMNS = ("pl_name", "ra", "dec", "pl_orbper", "pl_tranmid", "pl_trandur")
OPTIONAL_COLUMNS = ("pl_ratror", "pl_ratdor", "pl_orbincl", "pl_orbeccen", "pl_orblper",
                    "st_teff", "st_logg", "st_met", "pl_trandep", "tic_id")
HOURS_PER_DAY = 24.0
#: a TESS Input Catalog id as transits.csv may give it: ``123456789`` or ``TIC 123456789``
TIC_PATTERN = re.compile(r"^\s*(?:TIC[\s_-]*)?(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class TransitTarget:
    """One planet of ``transits.csv``; optional values are None when the cell is empty.

    Attributes: ``name``; ``ra``, ``dec`` (deg, ICRS); ``period`` (d); ``t0`` (BJD_TDB, d);
    ``duration`` (d, first to fourth contact); ``rprs``; ``ars``; ``inc`` (deg); ``ecc``;
    ``omega`` (deg); ``teff`` (K); ``logg`` (cgs dex); ``feh`` (dex); ``depth`` (fraction,
    the discovery's transit depth); ``tic_id`` (text, as written).
    """

    name: str
    ra: float
    dec: float
    period: float
    t0: float
    duration: float
    rprs: float | None = None
    ars: float | None = None
    inc: float | None = None
    ecc: float | None = None
    omega: float | None = None
    teff: float | None = None
    logg: float | None = None
    feh: float | None = None
    tic_id: str | None = None
    depth: float | None = None

    def mid_time(self, epoch) -> np.ndarray | float:
        """Predicted mid-transit time(s) (BJD_TDB, d) of integer ``epoch`` (0 at ``t0``)."""
        return self.t0 + self.period * np.asarray(epoch)


# --- the table ---------------------------------------------------------------------------

def _number(cell: str, name: str, where: str, *, positive: bool = False) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise BadInput(f"{where}: {name} {cell!r} is not a number.", reason=f"bad {name}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise BadInput(f"{where}: {name} must be a positive finite number, not {cell!r}.",
                       reason=f"bad {name}")
    return value


def read_targets(path: str | Path) -> list[TransitTarget]:
    """Read ``transits.csv`` (see the module docstring for columns and units).

    Parameters
    ----------
    path : path
        A CSV with a header row naming at least :data:`REQUIRED_COLUMNS`; lines starting with
        ``#`` and blank lines are skipped; unknown columns are ignored.

    Returns
    -------
    list of TransitTarget
        In file order; ``duration`` converted from hours to days.

    Raises
    ------
    BadInput
        One sentence naming the file, the line and the problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BadInput(f"{path}: cannot be read ({exc.strerror or exc}).",
                       reason="unreadable transits file") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise BadInput(f"{path}: has no header row (expected {','.join(REQUIRED_COLUMNS)}).",
                       reason="empty transits file")
    rows = list(csv.reader([line for _, line in lines]))
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise BadInput(f"{path} line {lines[0][0]}: the header lacks column(s) "
                       f"{', '.join(missing)}.", reason="transits file lacks columns")
    col = {name: header.index(name) for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS
           if name in header}
    targets = []
    for (lineno, _), row in zip(lines[1:], rows[1:]):
        where = f"{path} line {lineno}"
        if len(row) != len(header):
            raise BadInput(f"{where}: has {len(row)} cells for {len(header)} columns.",
                           reason="bad transits row")
        cell = {name: row[j].strip() for name, j in col.items()}
        for name in REQUIRED_COLUMNS:
            if not cell[name]:
                raise BadInput(f"{where}: {name} is empty.", reason=f"empty {name}")
        try:
            ra, dec = parse_ra(cell["ra"]), parse_dec(cell["dec"])
        except ValueError as exc:
            raise BadInput(f"{where}: {exc}.", reason="bad position") from None
        optional = {}
        for name, field_name in (("pl_ratror", "rprs"), ("pl_ratdor", "ars"),
                                 ("pl_orbincl", "inc"), ("pl_orbeccen", "ecc"),
                                 ("pl_orblper", "omega"), ("st_teff", "teff"),
                                 ("st_logg", "logg"), ("st_met", "feh")):
            if cell.get(name):
                optional[field_name] = _number(cell[name], name, where)
        if cell.get("pl_trandep"):
            optional["depth"] = _number(cell["pl_trandep"], "pl_trandep", where,
                                        positive=True) / 100.0
            if optional["depth"] >= 1.0:
                raise BadInput(f"{where}: pl_trandep {cell['pl_trandep']} is not a depth in "
                               "percent below 100.", reason="bad pl_trandep")
        if cell.get("tic_id") and not TIC_PATTERN.match(cell["tic_id"]):
            raise BadInput(f"{where}: tic_id {cell['tic_id']!r} is not a TIC number (e.g. "
                           "123456789 or TIC 123456789).", reason="bad tic_id")
        targets.append(TransitTarget(
            name=cell["pl_name"], ra=ra, dec=dec,
            period=_number(cell["pl_orbper"], "pl_orbper", where, positive=True),
            t0=_number(cell["pl_tranmid"], "pl_tranmid", where, positive=True),
            duration=_number(cell["pl_trandur"], "pl_trandur", where, positive=True)
            / HOURS_PER_DAY,
            tic_id=cell.get("tic_id") or None, **optional))
        if targets[-1].t0 < 2_400_000.0:
            raise BadInput(f"{where}: pl_tranmid {cell['pl_tranmid']} is not a full BJD_TDB "
                           "(expected about 2450000 or later).", reason="bad pl_tranmid")
    return targets


def transits_in_window(target: TransitTarget, t_start: float, t_end: float) -> np.ndarray:
    """Epochs whose ingress or egress lies in ``[t_start, t_end]``.

    Parameters
    ----------
    target : TransitTarget
    t_start, t_end : float
        The window (BJD_TDB, d), e.g. the first and last frame of a night.

    Returns
    -------
    numpy.ndarray of int
        Epochs ``n`` (mid-time ``t0 + n * period``), ascending; empty when none.
    """
    half = 0.5 * target.duration
    first = math.floor((t_start - half - target.t0) / target.period)
    last = math.ceil((t_end + half - target.t0) / target.period)
    epochs = np.arange(first, last + 1)
    mid = target.mid_time(epochs)
    ingress, egress = mid - half, mid + half
    inside = (((ingress >= t_start) & (ingress <= t_end))
              | ((egress >= t_start) & (egress <= t_end)))
    return epochs[inside]
