"""The variability table: per star and filter, n, rms, reduced chi-squared, period and its
false-alarm probability, computed by :mod:`clinepipe.variability.statistics` from the stored
calibrated points (``clinepipe variables``, ``stars``, the web dashboard)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from clinepipe.store.models import Frame, Measurement, Star
from clinepipe.variability.statistics import (
    MAX_PERIOD,
    MIN_PERIOD,
    MIN_POINTS,
    LightcurveStatistics,
    lightcurve_statistics,
)

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
    """The points every variability statistic is computed from (all stars, or ``star_ids``)."""
    from clinepipe.store.db import session_scope

    M = Measurement
    stmt = (select(M.star_id, M.filter, M.bjd_tdb, M.jd_mid, M.mag, M.mag_err, Frame.qc, Star.name,
                   Star.var_type)
            .join(Frame, Frame.id == M.frame_id).join(Star, Star.id == M.star_id)
            .where(M.mag.is_not(None), M.flags == 0))
    if star_ids is not None:
        stmt = stmt.where(M.star_id.in_([int(s) for s in star_ids]))
    with session_scope(engine) as s:
        rows = s.execute(stmt.order_by(M.star_id, M.filter, M.jd_mid)).all()
    excluded = set(exclude_qc or ())
    keep = [r for r in rows if not (excluded & set(filter(None, (r[6] or "").split(";"))))]
    return VariabilityPoints(
        star=np.array([r[0] for r in keep], dtype=np.int64),
        filter=np.array([r[1] or "" for r in keep], dtype=str),
        t=np.array([r[2] if r[2] is not None else r[3] for r in keep], dtype=float),
        mag=np.array([r[4] for r in keep], dtype=float),
        err=np.array([np.nan if r[5] is None else r[5] for r in keep], dtype=float),
        name={r[0]: r[7] for r in keep}, var_type={r[0]: r[8] for r in keep})


def points_statistics(points: VariabilityPoints, **kwargs) -> LightcurveStatistics:
    """:func:`~clinepipe.variability.statistics.lightcurve_statistics` of ``points``."""
    return lightcurve_statistics(points.star, points.filter, points.t, points.mag, points.err,
                                 **kwargs)


@dataclass(frozen=True)
class VariabilityRow:
    """One star and filter of :func:`variability_table`: its light curve's statistics over all
    nights, and its period.

    Attributes
    ----------
    star_id : int
        The star's id in the ``stars`` table.
    name : str or None
        Its known-variable name, if it has one.
    filter : str
        The filter these statistics are for.
    n : int
        Calibrated points used.
    mean_mag : float
        Error-weighted mean magnitude (mag).
    rms : float
        Sample standard deviation of the magnitudes (mag).
    chi2_red : float
        Reduced chi-square about the weighted mean (dimensionless; ~1 for a constant star with
        honest errors).
    stetson_j : float
        Stetson's J index from consecutive pairs in time.
    period_days : float or None
        Best period (days), one per star from all its filters; None when the star does not
        vary enough for a search (its largest reduced chi-square is below the threshold of
        :func:`~clinepipe.variability.statistics.lightcurve_statistics`) or none was found.
    fap : float or None
        Lomb-Scargle false-alarm probability of that period's peak.
    var_type : str or None
        The known variable's type (e.g. ``EA``), ``"suspected"`` for a suspected new variable.
    """
    star_id: int
    name: str | None
    filter: str
    n: int
    mean_mag: float
    rms: float
    chi2_red: float
    stetson_j: float
    period_days: float | None
    fap: float | None
    #: the known variable's type (e.g. ``EA``), ``"suspected"`` for a suspected new variable
    var_type: str | None = None


def variability_table(engine, *, min_points: int = MIN_POINTS,
                      exclude_qc=DEFAULT_EXCLUDE_QC, min_period: float = MIN_PERIOD,
                      max_period: float = MAX_PERIOD, star_ids=None) -> list[VariabilityRow]:
    """Every star (or ``star_ids``) with enough calibrated points, ranked by reduced chi-square
    (most variable first).

    Frames whose QC flags include ``exclude_qc`` are left out; the statistics and the period
    (days, searched between ``min_period`` and ``max_period``, one per star from all its
    filters) are those of :func:`~clinepipe.variability.statistics.lightcurve_statistics`.
    """
    points = variability_points(engine, exclude_qc=exclude_qc, star_ids=star_ids)
    res = points_statistics(points, min_points=min_points, min_period=min_period,
                            max_period=max_period)
    g = res.groups
    out = []
    for i in range(g.n.size):
        sid = int(g.labels[0][i])
        p = res.periods.get(sid)
        out.append(VariabilityRow(sid, points.name.get(sid), str(g.labels[1][i]), int(g.n[i]),
                                  float(g.mean_mag[i]), float(g.rms[i]), float(g.chi2_red[i]),
                                  float(g.stetson_j[i]), p.period if p else None,
                                  p.fap if p else None, points.var_type.get(sid)))
    out.sort(key=lambda r: -r.chi2_red)
    return out
