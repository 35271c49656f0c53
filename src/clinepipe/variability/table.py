"""The variability table: per star and filter, n, rms, reduced chi-squared, period and its
false-alarm probability, computed by :mod:`clinepipe.variability.statistics` from the stored
calibrated points (``clinepipe variables``, ``stars``, the web dashboard)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from clinepipe.store.tables import stars
from clinepipe.variability.points import (
    DEFAULT_EXCLUDE_QC,
    VariabilityPoints,
    variability_points,
)
from clinepipe.variability.statistics import (
    MAX_PERIOD,
    MIN_PERIOD,
    MIN_POINTS,
    LightcurveStatistics,
    lightcurve_statistics,
)


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
    filters) are those of :func:`~clinepipe.variability.statistics.lightcurve_statistics`:
    the statistics read from the ``star_stats`` table (:mod:`clinepipe.variability.star_stats`)
    and the periods of the variable stars from ``star_periods``
    (:mod:`clinepipe.variability.star_periods`; searched in their measurements when not stored
    for their current statistics) when the period range is the default one, else all computed
    from the measurements.
    """
    from clinepipe.variability.star_stats import read_statistics

    if (min_period, max_period) == (MIN_PERIOD, MAX_PERIOD):
        stored = read_statistics(engine, exclude_qc, star_ids=star_ids, min_points=min_points,
                                 find_periods=True)
        g, periods = stored.groups, stored.periods
        listed = sorted({int(s) for s in g.labels[0][g.n >= max(int(min_points), 1)].tolist()})
        with engine.connect() as conn:
            names = {}
            for lo in range(0, len(listed), 2000):
                names.update({r[0]: (r[1], r[2]) for r in conn.execute(
                    select(stars.c.id, stars.c.name, stars.c.var_type)
                    .where(stars.c.id.in_(listed[lo:lo + 2000])))})
        name = {k: v[0] for k, v in names.items()}
        var_type = {k: v[1] for k, v in names.items()}
    else:
        points = variability_points(engine, exclude_qc=exclude_qc, star_ids=star_ids)
        res = points_statistics(points, min_points=min_points, min_period=min_period,
                                max_period=max_period)
        g, periods, name, var_type = res.groups, res.periods, points.name, points.var_type
    out = []
    for i in np.flatnonzero(g.n >= max(int(min_points), 1)).tolist():
        sid = int(g.labels[0][i])
        p = periods.get(sid)
        out.append(VariabilityRow(sid, name.get(sid), str(g.labels[1][i]), int(g.n[i]),
                                  float(g.mean_mag[i]), float(g.rms[i]), float(g.chi2_red[i]),
                                  float(g.stetson_j[i]), p.period if p else None,
                                  p.fap if p else None, var_type.get(sid)))
    out.sort(key=lambda r: -r.chi2_red)
    return out
