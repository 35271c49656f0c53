"""The periods of the variable stars kept in the database (``star_periods``), so that
``clinepipe variables``, ``lc`` and the web star page read them instead of searching each
variable star's light curve at every call (seconds per star on ten years of points).

A period is searched once, by the run, for each star whose points changed and that
``variables`` calls variable (largest reduced chi-square over its filters with
:data:`~clinepipe.variability.statistics.MIN_POINTS` points above
:data:`~clinepipe.variability.statistics.VARIABLE_CHI2`: :func:`update_star_periods`, after
the ``star_stats`` rows are recomputed). Each row carries ``points_key``: a digest of the
star's ``star_stats`` rows (every filter's counts, statistics, extreme magnitudes and times),
of the excluded QC flags, of ``min_points`` and of the search's version
(:data:`~clinepipe.variability.periods.SEARCH_VERSION`: a period found by an older search is
searched again, once, by the next run). A reader uses a stored period only when the
star is not pending and the digest of the statistics it reads is the stored one; otherwise it
searches the star from its measurements as before (and logs that it did), so what
``variables`` shows never depends on whether the period was stored.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from sqlalchemy import delete, insert, select

from clinepipe.store.tables import star_periods
from clinepipe.variability.periods import SEARCH_VERSION
from clinepipe.variability.points import variability_points
from clinepipe.variability.statistics import (
    lightcurve_statistics,
)

__all__ = ["StoredPeriod", "forget_periods", "points_keys", "search_periods", "stored_periods",
           "write_periods"]

log = logging.getLogger(__name__)

_T = star_periods
#: stars read at once (bounds the SQL ``IN`` lists and the memory of the points read)
CHUNK_STARS = 2000


@dataclass(frozen=True)
class StoredPeriod:
    """A star's period (days) and its false-alarm probability, as ``variables`` reports them."""

    period: float
    fap: float


def _exact(v) -> str:
    """A value as text that tells apart any two different values (floats in hex)."""
    if v is None or isinstance(v, str):
        return repr(v)
    return float(v).hex()


def points_keys(rows, stars, exclude_key: str, min_points: int) -> dict:
    """``{star: digest}`` of each of ``stars`` from its ``star_stats`` rows ``rows`` (tuples
    starting with star id and filter, in any order; the same columns for every reader), the
    excluded QC flags ``exclude_key``, ``min_points`` and the period search's version: equal
    digests mean equal statistics in every filter, so (bar a change that moves no statistic,
    extreme or count) equal points, searched the same way."""
    wanted = {int(s) for s in stars}
    by_star: dict = {}
    for r in rows:
        if r[0] in wanted:
            by_star.setdefault(int(r[0]), []).append(";".join(_exact(v) for v in r))
    return {s: hashlib.sha256("|".join([exclude_key, str(int(min_points)), SEARCH_VERSION,
                                        *sorted(by_star.get(s, []))]).encode()).hexdigest()
            for s in wanted}


def stored_periods(conn, keys: dict) -> dict:
    """``{star: StoredPeriod or None}`` for the stars of ``keys`` (``{star: digest}``) whose
    stored row has that digest (None: searched, no period found); stars without such a row are
    left out."""
    ids = sorted(keys)
    out: dict = {}
    for lo in range(0, len(ids), CHUNK_STARS):
        for sid, key, period, fap in conn.execute(
                select(_T.c.star_id, _T.c.points_key, _T.c.period, _T.c.fap)
                .where(_T.c.star_id.in_(ids[lo:lo + CHUNK_STARS]))):
            if key == keys[sid]:
                out[sid] = None if period is None else StoredPeriod(float(period), float(fap))
    return out


def search_periods(conn, stars, exclude_qc, min_points: int) -> dict:
    """``{star: StoredPeriod or None}``: the period search of ``variables --min-points`` on each
    of ``stars`` (those it calls variable get one; None when the data cannot constrain one)."""
    ids = sorted({int(s) for s in stars})
    out: dict = {}
    for lo in range(0, len(ids), CHUNK_STARS):
        chunk = ids[lo:lo + CHUNK_STARS]
        points = variability_points(conn, exclude_qc=exclude_qc, star_ids=chunk)
        res = lightcurve_statistics(points.star, points.filter, points.t, points.mag,
                                    points.err, min_points=min_points)
        out.update({s: None for s in chunk})
        out.update({int(k): StoredPeriod(p.period, p.fap) if p else None
                    for k, p in res.periods.items()})
    return out


def write_periods(conn, found: dict, keys: dict) -> None:
    """Store ``found`` (``{star: StoredPeriod or None}``) with each star's digest from ``keys``,
    replacing the stars' rows, in the caller's transaction."""
    ids = sorted(found)
    for lo in range(0, len(ids), CHUNK_STARS):
        chunk = ids[lo:lo + CHUNK_STARS]
        conn.execute(delete(_T).where(_T.c.star_id.in_(chunk)))
        conn.execute(insert(_T), [
            {"star_id": s, "points_key": keys[s],
             "period": None if found[s] is None else found[s].period,
             "fap": None if found[s] is None else found[s].fap} for s in chunk])


def forget_periods(conn, star_ids) -> None:
    """Delete the stored periods of ``star_ids`` (their points changed), in the caller's
    transaction."""
    ids = sorted({int(s) for s in star_ids})
    for lo in range(0, len(ids), CHUNK_STARS):
        conn.execute(delete(_T).where(_T.c.star_id.in_(ids[lo:lo + CHUNK_STARS])))
