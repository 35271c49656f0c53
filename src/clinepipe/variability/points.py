"""The points every variability statistic is computed from: the flag-free calibrated
measurements of stars, frames with an excluded QC flag left out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, literal, or_, select

from clinepipe.store.fetch import connection_of, fetch_tuples
from clinepipe.store.tables import frames, measurements, stars

#: QC flags whose frames are left out of variability statistics unless the caller says otherwise
DEFAULT_EXCLUDE_QC = ("clouds", "trailed")


@dataclass(frozen=True)
class VariabilityPoints:
    """Flag-free calibrated points (arrays of one value per point), frames with an excluded QC
    flag left out: ``star`` id, ``filter``, ``t`` (days: BJD_TDB, else JD UTC), ``mag`` and
    ``err`` (mag), ``name`` {star id: known-variable name or None} and ``var_type`` {star id:
    the known variable's type, ``"suspected"`` for a suspected new variable, or None}."""

    star: np.ndarray
    filter: np.ndarray
    t: np.ndarray
    mag: np.ndarray
    err: np.ndarray
    name: dict
    var_type: dict = field(default_factory=dict)


def variability_points(engine, *, exclude_qc=DEFAULT_EXCLUDE_QC,
                       star_ids=None) -> VariabilityPoints:
    """The points every variability statistic is computed from (all stars, or ``star_ids``);
    ``engine`` may also be an open connection or session (read inside its transaction)."""
    from sqlalchemy.engine import Engine

    if isinstance(engine, Engine):
        with engine.connect() as conn:
            return _points(conn, exclude_qc, star_ids)
    return _points(engine, exclude_qc, star_ids)


#: ids in one SQL ``IN`` list
ID_CHUNK = 1000

#: the points' columns as numpy reads the fetched tuples, in one call (None becomes NaN)
_ROW_DTYPE = np.dtype([("star", np.int64), ("filter", object), ("t", float), ("mag", float),
                       ("err", float)])


def _points(conn, exclude_qc, star_ids) -> VariabilityPoints:
    # the measurements alone: the frames' QC flags are judged by the database (a subquery run
    # once), the stars' names are read once per star; neither is joined to every point (a run
    # reads the whole light curves of a night's stars, 10^5-10^6 points)
    conn = connection_of(conn)
    M = measurements.c
    # the time (BJD_TDB, else JD UTC) and the filter's "" for none chosen by the database, and
    # the rows fetched as the driver's plain tuples into one structured array: on ten years of
    # archive (245,000 points of 500 stars) SQLAlchemy's row objects and a column-wise zip took
    # longer than the read itself
    stmt = (select(M.star_id, func.coalesce(M.filter, ""), func.coalesce(M.bjd_tdb, M.jd_mid),
                   M.mag, M.mag_err)
            .where(M.mag.is_not(None), M.flags == 0))
    flags = sorted(set(exclude_qc or ()) - {""})  # (no frame has the empty flag)
    if flags:
        stmt = stmt.where(M.frame_id.not_in(_flagged_frames(conn, flags)))
    if star_ids is not None:
        stmt = stmt.where(M.star_id.in_([int(s) for s in star_ids]))
    rows = fetch_tuples(conn, stmt.order_by(M.star_id, M.filter, M.jd_mid))
    if not rows:
        return VariabilityPoints(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=str),
                                 np.zeros(0), np.zeros(0), np.zeros(0), {}, {})
    a = np.array(rows, dtype=_ROW_DTYPE)
    star = a["star"].copy()
    names, types = _star_names(conn, np.unique(star))
    return VariabilityPoints(
        star=star, filter=a["filter"].astype(str), t=a["t"].copy(), mag=a["mag"].copy(),
        err=a["err"].copy(),  # None (no error) became NaN
        name=names, var_type=types)


def _flagged_frames(conn, flags):
    """A subquery of the ids of frames whose QC text (flags separated by ``;``) holds any of
    ``flags``, each matched as a whole flag, case-sensitively (``instr``/``strpos``, not
    ``LIKE``, which SQLite folds to one case and where ``_`` matches any character): the rule
    ``suspects._qc_bad`` applies to a text in Python."""
    F = frames.c
    find = func.strpos if conn.dialect.name == "postgresql" else func.instr
    wrapped = literal(";") + F.qc + literal(";")
    return select(F.id).where(F.qc.is_not(None), F.qc != "",
                              or_(*(find(wrapped, f";{q};") > 0 for q in flags)))


def _star_names(conn, star_ids: np.ndarray) -> tuple[dict, dict]:
    """``{star id: known-variable name or None}`` and ``{star id: var_type or None}``."""
    S = stars.c
    ids = star_ids.tolist()
    names: dict = {}
    types: dict = {}
    for lo in range(0, len(ids), ID_CHUNK):
        for i, name, var_type in conn.execute(select(S.id, S.name, S.var_type)
                                              .where(S.id.in_(ids[lo:lo + ID_CHUNK]))):
            names[i], types[i] = name, var_type
    return names, types


def exclude_key(exclude_qc) -> str:
    """The QC flags left out, as stored with each row (sorted, ';'-separated)."""
    return ";".join(sorted(set(exclude_qc or ())))
