"""The variability statistics of every star and filter kept in the database (``star_stats``), so
that ``clinepipe stars``, ``variables``, ``lc`` and the web read one row per star and filter
instead of scanning every measurement of a ten-year archive.

The rows are what :func:`~clinepipe.variability.statistics.lightcurve_statistics` (the one
implementation of each statistic) gives for the star's points: the isolated-outlier filter and
the exclusion of frames by QC flag make them functions of a star's whole light curve, not sums
a new point could be added to, so a star's rows are *recomputed* from its own measurements
whenever they change, and never cost more than that star's light curve:

* every change to a star's measurements (:func:`clinepipe.store.db.insert_measurements`,
  :func:`~clinepipe.store.db.delete_frame_results`) marks the star in ``star_stats_pending``
  in the same transaction (a star marked already gets its mark's ``version`` raised), so a
  killed run leaves its marks exactly with its measurements;
* the run's step (after the suspects and QC steps, which change magnitudes and flags of the
  nights the run touched) recomputes the marked stars and those measured in the touched nights
  (:func:`stars_to_update`, :func:`compute_update`, which only reads, beside the run's last
  steps: :mod:`clinepipe.run.star_stats_step`) and stores their rows in one transaction that
  clears the marks it read, unless marked again since (:func:`store_update`);
* readers (:func:`read_statistics`) take the stored rows and compute the still-marked stars
  (a run in progress, a legacy import) from their measurements, so what they show is always
  what a scan of the measurements would show.

:func:`rebuild_star_stats` recomputes the whole table (revision 0006 fills it with it). The
variable stars' periods are kept beside the rows (:mod:`clinepipe.variability.star_periods`):
the run's step forgets those of the stars it recomputes and searches them again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, func, insert, select, tuple_

from clinepipe.store.fetch import fetch_column, fetch_tuples
from clinepipe.store.tables import (
    frames,
    measurements,
    star_stats,
    star_stats_pending,
    stars,
)
from clinepipe.variability.points import (
    DEFAULT_EXCLUDE_QC,
    exclude_key,
    variability_points,
)
from clinepipe.variability.statistics import (
    MIN_POINTS,
    VARIABLE_CHI2,
    GroupStatistics,
    _codes,
    lightcurve_statistics,
)

__all__ = ["StatsRows", "StatsUpdate", "StoredStatistics", "compute_update", "count_measurements",
           "read_statistics", "rebuild_star_stats", "refresh_star_stats", "store_update",
           "stars_to_update", "update_star_periods", "update_star_stats"]

#: stars read and computed at once (bounds the memory of a rebuild of a large archive)
CHUNK_STARS = 2000
_T = star_stats
_PENDING = star_stats_pending.c
_STAT_COLUMNS = ("n", "mean_mag", "rms", "chi2_red", "stetson_j")
#: read too for the digest a stored period must match (star_periods)
_EXTRA_COLUMNS = ("mag_min", "mag_max", "t_first", "t_last")
log = logging.getLogger(__name__)


def _other_flags(key: str):
    """``star_stats`` rows stored for QC flags other than ``key``: ``exclude_qc != key`` as two
    range searches of ``ix_star_stats_exclude_qc`` (a ``!=`` is a scan of every row)."""
    return (_T.c.exclude_qc < key) | (_T.c.exclude_qc > key)


def _none(v):
    v = float(v)
    return v if np.isfinite(v) else None


def _row_dtype(cols) -> np.dtype:
    """The numpy record of a ``star_stats`` row of ``cols``."""
    kinds = {"star_id": np.int64, "filter": object, "n_all": np.int64, "n": np.int64}
    return np.dtype([(c, kinds.get(c, float)) for c in cols])


def _variable_stars(groups: GroupStatistics, min_points: int) -> set:
    """Stars whose period ``variables --min-points min_points`` searches: largest reduced
    chi-square over their filters with ``min_points`` points above :data:`VARIABLE_CHI2`."""
    kept = (groups.n >= max(int(min_points), 1)) & np.isfinite(groups.chi2_red)
    return {int(s) for s in np.unique(groups.labels[0][kept & (groups.chi2_red > VARIABLE_CHI2)])}


def compute_rows(conn, star_ids, exclude_qc=DEFAULT_EXCLUDE_QC) -> list[dict]:
    """``star_stats`` rows of ``star_ids`` from their measurements, read through ``conn`` (a
    connection or session)."""
    ids = sorted({int(s) for s in star_ids})
    if not ids:
        return []
    points = variability_points(conn, exclude_qc=exclude_qc, star_ids=ids)
    res = lightcurve_statistics(points.star, points.filter, points.t, points.mag, points.err,
                                min_points=1, find_periods=False)
    g = res.groups
    idx = np.flatnonzero(res.used)
    extremes: dict = {}
    if idx.size:
        code, n_groups = _codes((points.star[idx], points.filter[idx]))
        first = np.full(n_groups, -1)
        first[code[::-1]] = np.arange(code.size)[::-1]
        lo, hi = np.full(n_groups, np.inf), np.full(n_groups, -np.inf)
        t_lo, t_hi = lo.copy(), hi.copy()
        np.minimum.at(lo, code, points.mag[idx])
        np.maximum.at(hi, code, points.mag[idx])
        np.minimum.at(t_lo, code, points.t[idx])
        np.maximum.at(t_hi, code, points.t[idx])
        keys = zip(points.star[idx][first].tolist(), points.filter[idx][first].tolist())
        extremes = dict(zip(keys, zip(lo.tolist(), hi.tolist(), t_lo.tolist(), t_hi.tolist())))
    stats = {(int(s), str(f)): i for i, (s, f) in enumerate(zip(g.labels[0].tolist(),
                                                                g.labels[1].tolist()))}
    M = measurements.c
    counts = conn.execute(select(M.star_id, M.filter, func.count()).where(M.star_id.in_(ids))
                          .group_by(M.star_id, M.filter)).all()
    key = exclude_key(exclude_qc)
    rows = []
    for sid, filt, n_all in counts:
        filt = filt or ""
        i = stats.get((sid, filt))
        row = {"star_id": sid, "filter": filt, "n_all": int(n_all), "n": 0, "mean_mag": None,
               "rms": None, "chi2_red": None, "stetson_j": None, "mag_min": None,
               "mag_max": None, "t_first": None, "t_last": None, "exclude_qc": key}
        if i is not None:
            row.update(n=int(g.n[i]), mean_mag=_none(g.mean_mag[i]), rms=_none(g.rms[i]),
                       chi2_red=_none(g.chi2_red[i]), stetson_j=_none(g.stetson_j[i]))
            lo, hi, t_lo, t_hi = extremes[(sid, filt)]
            row.update(mag_min=float(lo), mag_max=float(hi), t_first=float(t_lo),
                       t_last=float(t_hi))
        rows.append(row)
    return rows


def refresh_star_stats(session, star_ids, exclude_qc=DEFAULT_EXCLUDE_QC) -> int:
    """Recompute the rows of ``star_ids`` and clear their pending marks, in the caller's
    transaction (``session``: a session or connection); returns the number of stars."""
    ids = sorted({int(s) for s in star_ids})
    for lo in range(0, len(ids), CHUNK_STARS):
        chunk = ids[lo:lo + CHUNK_STARS]
        # the marks go first: a change another run commits meanwhile marks the star again
        session.execute(delete(star_stats_pending).where(_PENDING.star_id.in_(chunk)))
        _replace_rows(session, chunk, compute_rows(session, chunk, exclude_qc))
    return len(ids)


def _replace_rows(session, star_ids, rows) -> None:
    """The ``star_stats`` rows of ``star_ids`` become ``rows``, in the caller's transaction."""
    ids = list(star_ids)
    for lo in range(0, len(ids), CHUNK_STARS):
        session.execute(delete(_T).where(_T.c.star_id.in_(ids[lo:lo + CHUNK_STARS])))
    if rows:
        session.execute(insert(_T), rows)


def rebuild_star_stats(conn, exclude_qc=DEFAULT_EXCLUDE_QC) -> int:
    """The whole ``star_stats`` table again from every measurement (``conn``: a connection or
    session, in its transaction); returns the number of stars."""
    conn.execute(delete(_T))
    conn.execute(delete(star_stats_pending))
    ids = conn.scalars(select(stars.c.id).order_by(stars.c.id)).all()
    return refresh_star_stats(conn, ids, exclude_qc)


def count_measurements(conn) -> int:
    """The number of rows of ``measurements``, from ``star_stats`` (``n_all``: every
    measurement of a star in a filter) instead of a count of the table: PostgreSQL scans
    10 M measurements for a count (~2 s), this reads one row per star and filter. Exact: the
    stars whose rows may be stale (pending) or that have none are counted in ``measurements``
    itself, through its star index. ``conn``: a connection or session."""
    ids = set(conn.scalars(select(_PENDING.star_id)).all())
    ids |= set(conn.scalars(select(stars.c.id).where(
        stars.c.id.not_in(select(_T.c.star_id)))).all())
    stored = conn.scalar(select(func.coalesce(func.sum(_T.c.n_all), 0))
                         .where(_T.c.star_id.not_in(select(_PENDING.star_id)))) or 0
    live = 0
    ids = sorted(ids)
    for lo in range(0, len(ids), CHUNK_STARS):
        live += conn.scalar(select(func.count()).select_from(measurements).where(
            measurements.c.star_id.in_(ids[lo:lo + CHUNK_STARS]))) or 0
    return int(stored) + int(live)


@dataclass(frozen=True)
class StatsUpdate:
    """The stars whose rows the run's step recomputes (``ids``), with the version of each one's
    pending mark as it was read (``marks``: ``{star: version}``), and the QC flags left out."""

    ids: tuple
    marks: dict
    exclude_qc: tuple


@dataclass(frozen=True)
class StatsRows:
    """What :func:`compute_update` gives: the ``star_stats`` rows of the update's stars, the
    periods searched for those of them ``variables`` calls variable (``{star: StoredPeriod or
    None}``) and their digests (``{star: points_key}``)."""

    rows: list
    periods: dict
    keys: dict


def stars_to_update(engine, exclude_qc, telescope: str, nights) -> StatsUpdate:
    """The stars the run's step recomputes: those marked pending, those measured on this
    telescope's frames of ``nights`` (the nights the run changed: their magnitudes and QC
    flags moved after the lights were stored) and any computed with other ``exclude_qc``
    flags; read in one transaction."""
    from clinepipe.store.db import session_scope

    key = exclude_key(exclude_qc)
    with session_scope(engine) as s:
        marks = dict(s.execute(select(_PENDING.star_id, _PENDING.version)).all())
        ids = set(marks)
        # (no DISTINCT: with it SQLite walks every row in star order instead of the index)
        ids |= set(s.scalars(select(_T.c.star_id).where(_other_flags(key))).all())
        nights = sorted(n for n in nights if n)
        for lo in range(0, len(nights), 100):
            ids |= set(s.scalars(
                select(measurements.c.star_id).distinct()
                .join(frames, frames.c.id == measurements.c.frame_id)
                .where(frames.c.telescope == telescope,
                       frames.c.night.in_(nights[lo:lo + 100]))).all())
    return StatsUpdate(tuple(sorted(ids)), marks, tuple(exclude_qc or ()))


def compute_update(conn, update: StatsUpdate) -> StatsRows:
    """The rows of ``update``'s stars from their measurements, and the period of each that
    they make variable, read through ``conn`` (a connection, or a session); writes nothing, so
    it may run beside the run's later steps (:mod:`clinepipe.run.star_stats_step`)."""
    from clinepipe.variability.star_periods import points_keys, search_periods

    key = exclude_key(update.exclude_qc)
    rows: list = []
    for lo in range(0, len(update.ids), CHUNK_STARS):
        rows += compute_rows(conn, update.ids[lo:lo + CHUNK_STARS], update.exclude_qc)
    # the variable stars among them, as update_star_periods finds them in the stored rows
    variable = {r["star_id"] for r in rows if r["n"] >= MIN_POINTS
                and r["chi2_red"] is not None and r["chi2_red"] > VARIABLE_CHI2}
    cols = ("star_id", "filter", "n_all", *_STAT_COLUMNS, *_EXTRA_COLUMNS)
    keys = points_keys([tuple(r[c] for c in cols) for r in rows if r["star_id"] in variable],
                       variable, key, MIN_POINTS)
    periods = search_periods(conn, variable, update.exclude_qc, MIN_POINTS)
    return StatsRows(rows, periods, keys)


def store_update(engine, update: StatsUpdate, result: StatsRows) -> int:
    """Store ``result`` in one transaction: the stars' rows replace theirs, their periods are
    those searched (the others forgotten: their points changed), and the pending marks read by
    :func:`stars_to_update` are cleared, unless marked again since (a change the rows may not
    hold keeps its mark). Returns the number of stars."""
    from clinepipe.store.db import session_scope
    from clinepipe.variability.star_periods import forget_periods, write_periods

    ids = list(update.ids)
    with session_scope(engine) as s:
        marks = sorted(update.marks.items())
        for lo in range(0, len(marks), CHUNK_STARS):
            s.execute(delete(star_stats_pending).where(
                tuple_(_PENDING.star_id, _PENDING.version).in_(marks[lo:lo + CHUNK_STARS])))
        forget_periods(s, ids)
        _replace_rows(s, ids, result.rows)
        if result.periods:
            write_periods(s, result.periods, result.keys)
    return len(ids)


def update_star_stats(engine, exclude_qc, telescope: str, nights) -> int:
    """The run's step, all at once: :func:`stars_to_update`, :func:`compute_update`,
    :func:`store_update`; then the period of any other variable star without one
    (:func:`update_star_periods`). Returns the number of stars recomputed.
    (:mod:`clinepipe.run.star_stats_step` does the same with the computation beside the
    run's later steps.)"""
    update = stars_to_update(engine, exclude_qc, telescope, nights)
    with engine.connect() as conn:
        result = compute_update(conn, update)
    n = store_update(engine, update, result)
    searched = update_star_periods(engine, exclude_qc)
    log.info("periods of %d variable star(s) searched", len(result.periods) + searched)
    return n


@dataclass(frozen=True)
class StoredStatistics:
    """Every (star, filter) with at least one usable point (``groups``, ordered by star and
    filter, as :func:`lightcurve_statistics` with ``min_points=1`` gives them), the periods
    ``variables --min-points`` finds (``periods[star]``; empty unless asked for) and every
    star's measurement count (``n_all[star]``, flagged points included); with periods, those
    searched here rather than read from ``star_periods`` (``searched[star]``: a
    :class:`StoredPeriod` or None) and the digests a stored period must match (``keys[star]``,
    :func:`~clinepipe.variability.star_periods.points_keys`)."""

    groups: GroupStatistics
    periods: dict
    n_all: dict
    searched: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)


def read_statistics(engine, exclude_qc=DEFAULT_EXCLUDE_QC, *, star_ids=None,
                    min_points: int = MIN_POINTS, find_periods: bool = False,
                    quiet: bool = False) -> StoredStatistics:
    """The statistics of every star (or of ``star_ids``) from ``star_stats``; stars marked
    pending, stored with other ``exclude_qc`` flags, or without a row (never measured, or
    measured by a writer that did not mark them) are computed from their measurements, so the
    result is always that of a scan of the measurements.

    ``find_periods``: also the period of each star whose largest reduced chi-square over its
    filters with ``min_points`` points exceeds :data:`VARIABLE_CHI2`: read from
    ``star_periods`` when stored for exactly these statistics
    (:mod:`clinepipe.variability.star_periods`), else searched in its measurements (seconds per
    star on a long light curve; logged unless ``quiet``, the run's own search)."""
    from clinepipe.variability.star_periods import (
        points_keys,
        search_periods,
        stored_periods,
    )

    key = exclude_key(exclude_qc)
    ids = None if star_ids is None else sorted({int(s) for s in star_ids})
    # the extremes only make the digests of the stored periods: not read without periods
    # (a third fewer values to fetch for `clinepipe stars`, 20,000 stars x 2 filters)
    cols = ("star_id", "filter", "n_all", *_STAT_COLUMNS,
            *(_EXTRA_COLUMNS if find_periods else ()))
    with engine.connect() as conn:
        # the rows stored for these QC flags; the stars to compute (pending, stored for other
        # flags, or without a row) found by the database, a few ids, not 40,000 rows' texts
        stmt = select(*(_T.c[c] for c in cols)).where(_T.c.exclude_qc == key)
        live_stmts = [select(_PENDING.star_id),
                      select(_T.c.star_id).where(_other_flags(key)),
                      select(stars.c.id).where(stars.c.id.not_in(select(_T.c.star_id)))]
        if ids is not None:
            stmt = stmt.where(_T.c.star_id.in_(ids))
            live_stmts = [q.where(q.selected_columns[0].in_(ids)) for q in live_stmts]
        # the driver's plain tuples (star, filter, n_all, n, mean, rms, chi2, J[, extremes])
        # into one structured array (None becomes NaN): 40,000 rows without a SQLAlchemy row,
        # nor a Python loop over them, each
        stored = fetch_tuples(conn, stmt)
        a = np.array(stored, dtype=_row_dtype(cols))
        live = sorted({s for q in live_stmts for s in fetch_column(conn, q)})
        computed = []
        for lo in range(0, len(live), CHUNK_STARS):
            computed += [tuple(r[c] for c in cols)
                         for r in compute_rows(conn, live[lo:lo + CHUNK_STARS], exclude_qc)]
        table = np.concatenate([a[~np.isin(a["star_id"], live)],
                                np.array(computed, dtype=a.dtype)])
        # by (star, filter), as Python orders the pairs (the filters' codes in str order)
        code, _ = _codes((table["star_id"], table["filter"]))
        table = table[np.argsort(code)]
        first = np.flatnonzero(np.r_[True, table["star_id"][1:] != table["star_id"][:-1]]) \
            if table.size else np.zeros(0, dtype=np.intp)
        n_all = dict(zip(table["star_id"][first].tolist(),
                         np.add.reduceat(table["n_all"], first).tolist() if first.size else []))
        used = table[table["n"] > 0]
        groups = GroupStatistics(
            (used["star_id"], used["filter"].astype(str)), used["n"].astype(int),
            *(used[c].astype(float) for c in _STAT_COLUMNS[1:]))
        periods, searched, keys = {}, {}, {}
        if find_periods:
            search = _variable_stars(groups, min_points)
            # the digests from the rows' values as the driver gave them (None is not NaN)
            live_set = set(live)
            rows = [r for r in stored if r[0] in search and r[0] not in live_set] + \
                [r for r in computed if r[0] in search]
            keys = points_keys(rows, search, key, min_points)
            periods = stored_periods(conn, {s: k for s, k in keys.items()
                                            if s not in live_set})
            missing = sorted(search - set(periods))
            if missing and not quiet:
                log.warning("%d variable star(s) without a period stored for their current "
                            "points: searching them now (seconds each; `clinepipe run` "
                            "stores them)", len(missing))
            searched = search_periods(conn, missing, exclude_qc, min_points)
            periods.update(searched)
            periods = {s: p for s, p in periods.items() if p is not None}
    return StoredStatistics(groups, periods, n_all, searched, keys)


def update_star_periods(engine, exclude_qc) -> int:
    """The run's step after ``star_stats``: search and store the period of every star
    ``variables`` calls variable that has none stored: those whose points changed (the
    ``star_stats`` step forgot their periods), and after the upgrade to revision 0007 (or a
    change of ``[qc] exclude_from_variability``) each variable star once. The candidates come
    from ``star_stats`` alone (one row per star and filter, no measurement read), so a night's
    run searches only its changed variable stars. Returns the number of stars searched."""
    from clinepipe.store.db import session_scope
    from clinepipe.variability.star_periods import write_periods

    key = exclude_key(exclude_qc)
    with session_scope(engine) as s:
        # the stars the stored statistics call variable: one pass over star_stats (a row per
        # star and filter, no measurement read); read_statistics reads their stored periods
        # and searches those missing or stored for other statistics
        variable = s.scalars(select(_T.c.star_id).distinct().where(
            _T.c.exclude_qc == key, _T.c.n >= MIN_POINTS,
            _T.c.chi2_red > VARIABLE_CHI2)).all()
    if not variable:
        return 0
    stored = read_statistics(engine, exclude_qc, star_ids=variable, min_points=MIN_POINTS,
                             find_periods=True, quiet=True)
    if stored.searched:
        with session_scope(engine) as s:
            write_periods(s, stored.searched, stored.keys)
    return len(stored.searched)
