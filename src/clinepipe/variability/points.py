"""The points every variability statistic is computed from: the flag-free calibrated
measurements of stars, frames with an excluded QC flag left out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

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

    M, F, S = measurements.c, frames.c, stars.c
    stmt = (select(M.star_id, M.filter, M.bjd_tdb, M.jd_mid, M.mag, M.mag_err, F.qc, S.name,
                   S.var_type)
            .select_from(measurements).join(frames, F.id == M.frame_id)
            .join(stars, S.id == M.star_id)
            .where(M.mag.is_not(None), M.flags == 0))
    if star_ids is not None:
        stmt = stmt.where(M.star_id.in_([int(s) for s in star_ids]))
    stmt = stmt.order_by(M.star_id, M.filter, M.jd_mid)
    if isinstance(engine, Engine):
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
    else:
        rows = engine.execute(stmt).all()
    excluded = set(exclude_qc or ())
    if not rows:
        return VariabilityPoints(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=str),
                                 np.zeros(0), np.zeros(0), np.zeros(0), {}, {})
    # column by column (a run reads the whole light curves of a night's stars: 10^5-10^6 rows);
    # each distinct QC text is judged once
    sid, filt, bjd, jd, mag, err, qc, name, var_type = zip(*rows)
    bad = {q: bool(excluded & set(filter(None, (q or "").split(";")))) for q in set(qc)}
    keep = np.fromiter((not bad[q] for q in qc), dtype=bool, count=len(qc))
    star = np.array(sid, dtype=np.int64)[keep]
    names = dict(zip(star.tolist(), np.array(name, dtype=object)[keep].tolist()))
    types = dict(zip(star.tolist(), np.array(var_type, dtype=object)[keep].tolist()))
    return VariabilityPoints(
        star=star,
        filter=np.array([f or "" for f in filt], dtype=str)[keep],
        t=np.array([b if b is not None else j for b, j in zip(bjd, jd)], dtype=float)[keep],
        mag=np.array(mag, dtype=float)[keep],
        err=np.array([np.nan if e is None else e for e in err], dtype=float)[keep],
        name=names, var_type=types)


def exclude_key(exclude_qc) -> str:
    """The QC flags left out, as stored with each row (sorted, ';'-separated)."""
    return ";".join(sorted(set(exclude_qc or ())))
