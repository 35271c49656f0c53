"""The points every variability statistic is computed from: the flag-free calibrated
measurements of stars, frames with an excluded QC flag left out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select

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


#: frames whose QC text is read by id (more: every frame with a QC text is read at once)
QC_BY_ID = 5000
#: ids in one SQL ``IN`` list
ID_CHUNK = 1000


def _points(conn, exclude_qc, star_ids) -> VariabilityPoints:
    # the measurements alone: the frames' QC texts and the stars' names are read once per
    # frame and per star, not joined to every point (a run reads the whole light curves of a
    # night's stars, 10^5-10^6 points: the joins were a third of the read)
    M = measurements.c
    # the time (BJD_TDB, else JD UTC) and the filter's "" for none chosen by the database, so
    # that every column converts to numpy in one call
    stmt = (select(M.star_id, func.coalesce(M.filter, ""), func.coalesce(M.bjd_tdb, M.jd_mid),
                   M.mag, M.mag_err, M.frame_id)
            .where(M.mag.is_not(None), M.flags == 0))
    if star_ids is not None:
        stmt = stmt.where(M.star_id.in_([int(s) for s in star_ids]))
    rows = conn.execute(stmt.order_by(M.star_id, M.filter, M.jd_mid)).all()
    if not rows:
        return VariabilityPoints(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=str),
                                 np.zeros(0), np.zeros(0), np.zeros(0), {}, {})
    # column by column; each frame's QC text judged once
    sid, filt, t, mag, err, fid = zip(*rows)
    fid = np.array(fid, dtype=np.int64)
    excluded = set(exclude_qc or ())
    bad = [i for i, q in _frame_qc(conn, np.unique(fid)).items()
           if excluded & set(filter(None, q.split(";")))]
    keep = ~np.isin(fid, np.array(bad, dtype=np.int64))
    star = np.array(sid, dtype=np.int64)[keep]
    names, types = _star_names(conn, np.unique(star))
    return VariabilityPoints(
        star=star,
        filter=np.array(filt, dtype=str)[keep],
        t=np.array(t, dtype=float)[keep],
        mag=np.array(mag, dtype=float)[keep],
        err=np.array(err, dtype=float)[keep],  # None (no error) becomes NaN
        name=names, var_type=types)


def _frame_qc(conn, frame_ids: np.ndarray) -> dict:
    """``{frame id: QC text}`` of those of ``frame_ids`` that have one."""
    F = frames.c
    has_qc = (F.qc.is_not(None), F.qc != "")
    if frame_ids.size > QC_BY_ID:
        return dict(conn.execute(select(F.id, F.qc).where(*has_qc)).all())
    ids = frame_ids.tolist()
    out: dict = {}
    for lo in range(0, len(ids), ID_CHUNK):
        out.update(conn.execute(select(F.id, F.qc).where(F.id.in_(ids[lo:lo + ID_CHUNK]),
                                                         *has_qc)).all())
    return out


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
