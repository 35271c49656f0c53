"""The fast paths of the pipeline, the CLI and the web (Core statements, no ORM objects):
measurements inserted in bulk and a frame's results deleted, a light curve read, the last
run and whether the archive holds several telescopes.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Engine,
    delete,
    false,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from clinepipe.store.tables import frames, measurements, runs, zero_points

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: the fields of ``clinepipe export --format csv``, of :func:`lightcurve` rows and of the web's
#: ``/api/stars/{id}/lightcurve`` objects, in this order
LIGHTCURVE_COLUMNS = ("star_id", "ra", "dec", "filter", "jd_mid", "bjd_tdb", "mag", "mag_err",
                      "inst_mag", "inst_mag_err", "zero_point", "airmass", "exptime", "frame",
                      "flags")


_MEASUREMENTS = measurements


_FRAMES = frames


_ZERO_POINTS = zero_points


@functools.lru_cache(maxsize=1)
def _measurement_defaults() -> dict[str, Any]:
    out = {}
    for col in _MEASUREMENTS.columns:
        if col.primary_key:
            continue
        default = col.default
        out[col.name] = default.arg if default is not None and default.is_scalar else None
    return out


def insert_measurements(session: Session, rows: list[dict]) -> int:
    """Insert many measurements in one executemany (Core ``INSERT``, no ORM objects) inside the
    session's transaction; returns the number of rows. Each dict has column names of
    ``measurements`` as keys (NaN should be given as None); keys missing from some rows get the
    column default (``flags`` 0, ``in_ensemble`` False, else NULL). A row repeating a
    (frame_id, star_id) pair raises ``IntegrityError``: call :func:`delete_frame_results`
    first when redoing a frame. :func:`insert_measurement_columns` takes the rows column-wise."""
    if not rows:
        return 0
    mark_stars_pending(session, {r["star_id"] for r in rows})
    n_keys = len(rows[0])
    if any(len(r) != n_keys for r in rows):
        defaults = _measurement_defaults()
        keys = set().union(*(r.keys() for r in rows))
        fill = {k: defaults.get(k) for k in keys}
        rows = [{**fill, **r} for r in rows]
    conn = session.connection()
    if not _fast(conn):
        conn.execute(insert(_MEASUREMENTS), rows)
        return len(rows)
    cols = tuple(rows[0])
    getter = operator.itemgetter(*cols)
    params = list(map(getter, rows)) if len(cols) > 1 else [(getter(r),) for r in rows]
    return _insert_tuples(conn, cols, params)


def insert_measurement_columns(session: Session, columns: dict[str, list]) -> int:
    """:func:`insert_measurements` of rows given column by column: ``columns`` maps column
    names of ``measurements`` to lists of one value per row (None for NULL), all of one length
    and one of them ``star_id``; a column left out gets its default. No dict or object per row:
    the rows go to the driver as the tuples ``zip`` makes. Returns the number of rows."""
    n = len(columns["star_id"])
    if n == 0:
        return 0
    mark_stars_pending(session, columns["star_id"])
    conn = session.connection()
    if not _fast(conn):
        keys = list(columns)
        conn.execute(insert(_MEASUREMENTS), [dict(zip(keys, row))
                                             for row in zip(*columns.values())])
        return n
    return _insert_tuples(conn, tuple(columns), list(zip(*columns.values())))


def _fast(conn: Connection) -> bool:
    """Whether :func:`_insert_tuples` serves this connection's driver."""
    return conn.dialect.name == "sqlite" or conn.dialect.driver == "psycopg"


def _insert_tuples(conn: Connection, cols: tuple[str, ...], params: list[tuple]) -> int:
    """Insert measurement rows given as tuples of the columns ``cols``, in the connection's
    transaction (SQLite or psycopg only: :func:`_fast`)."""
    # The fast paths, in the session's own transaction: SQLite's executemany with plain tuples
    # (no per-row parameter processing by SQLAlchemy: about twice the rate), PostgreSQL's COPY
    # (about ten times the rate of executemany). Defaulted columns are filled as Core would.
    defaults = _measurement_defaults()
    unknown = set(cols) - defaults.keys()
    if unknown:
        raise ValueError(f"not columns of measurements: {', '.join(sorted(unknown))}")
    missing = tuple(c for c in ("flags", "in_ensemble") if c not in cols)
    if missing:
        fill = tuple(defaults[c] for c in missing)
        params = [row + fill for row in params]
        cols = cols + missing
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_sqlite_insert_sql(cols), params)
    else:
        raw = conn.connection.driver_connection  # psycopg.Connection, inside our transaction
        sql = _pg_copy_sql(cols)
        dbapi = conn.dialect.loaded_dbapi
        try:
            with raw.cursor() as cur, cur.copy(sql) as copy:
                for values in params:
                    copy.write_row(values)
        except dbapi.Error as exc:  # the same exception classes as every other statement
            raise DBAPIError.instance(sql, None, exc, dbapi.Error,
                                      dialect=conn.dialect) from exc
    return len(params)


@functools.lru_cache(maxsize=16)
def _sqlite_insert_sql(cols: tuple[str, ...]) -> str:
    return (f"INSERT INTO measurements ({', '.join(cols)}) "
            f"VALUES ({', '.join('?' * len(cols))})")


@functools.lru_cache(maxsize=16)
def _pg_copy_sql(cols: tuple[str, ...]) -> str:
    return f"COPY measurements ({', '.join(cols)}) FROM STDIN"


def delete_frame_results(session: Session, frame_id: int) -> int:
    """Remove a frame's measurements and zero point (``run --reprocess``, or before storing a
    frame's new results); returns the number of measurements deleted."""
    mark_frame_stars_pending(session, [frame_id])
    result = session.execute(delete(_MEASUREMENTS).where(_MEASUREMENTS.c.frame_id == frame_id))
    session.execute(delete(_ZERO_POINTS).where(_ZERO_POINTS.c.frame_id == frame_id))
    return max(result.rowcount or 0, 0)


#: a star marked again gets a new version: the run's ``star_stats`` step, which computed its
#: rows from what it read before, then leaves the mark for the change it did not see
_MARK_AGAIN = ("ON CONFLICT (star_id) DO UPDATE "
               "SET version = star_stats_pending.version + 1")


def mark_stars_pending(session: Session, star_ids) -> None:
    """Mark stars whose measurements change in this transaction: their ``star_stats`` rows are
    recomputed at the end of the run (:mod:`clinepipe.variability.star_stats`), and read from
    the measurements until then. The mark commits or rolls back with the change itself."""
    ids = sorted({int(i) for i in star_ids})
    if not ids:
        return
    conn = session.connection()
    if conn.dialect.name == "sqlite":  # plain tuples: a fifth of the CPU of Core's executemany
        conn.exec_driver_sql("INSERT INTO star_stats_pending (star_id) VALUES (?) "
                             + _MARK_AGAIN, [(i,) for i in ids])
    elif conn.dialect.driver == "psycopg":  # one statement, the ids as one array
        conn.exec_driver_sql("INSERT INTO star_stats_pending (star_id) "
                             "SELECT unnest(%s::integer[]) " + _MARK_AGAIN, (ids,))
    else:
        conn.execute(text("INSERT INTO star_stats_pending (star_id) VALUES (:s) "
                          + _MARK_AGAIN), [{"s": i} for i in ids])


def mark_frame_stars_pending(session: Session, frame_ids) -> None:
    """:func:`mark_stars_pending` for every star measured on ``frame_ids``."""
    for i in sorted({int(f) for f in frame_ids}):
        session.execute(text("INSERT INTO star_stats_pending (star_id) SELECT DISTINCT star_id "
                             "FROM measurements WHERE frame_id = :f " + _MARK_AGAIN),
                        {"f": i})


def last_run(session: Session) -> dict | None:
    """The newest run: ``id``, ``telescope``, ``started_at``, ``finished_at``, ``status`` and
    ``error`` (why it stopped, from ``summary``; "" when it did not), or None before any."""
    r = runs.c
    row = session.execute(select(r.id, r.telescope, r.started_at, r.finished_at, r.status,
                                 r.summary).order_by(r.id.desc()).limit(1)).first()
    if row is None:
        return None
    run = dict(row._mapping)
    try:
        run["error"] = json.loads(run.pop("summary") or "{}").get("error", "")
    except (ValueError, AttributeError):  # a summary of frame counts, or not JSON at all
        run["error"] = ""
    return run


def several_telescopes(source: Session | Connection | Engine) -> bool:
    """Whether frames of more than one telescope share the database: listings, exports and
    the web then name each row's telescope, and a lone telescope's keep their columns. Stops
    at the second name found, through the ``(telescope, raw_path)`` index
    (:func:`~clinepipe.store.distinct.distinct_values`), rather than reading every frame."""
    from clinepipe.store.distinct import distinct_values

    if isinstance(source, Engine):
        with source.connect() as conn:
            return len(distinct_values(conn, _FRAMES.c.telescope, limit=2)) > 1
    return len(distinct_values(source, _FRAMES.c.telescope, limit=2)) > 1


def measurement_select(star_ids: Iterable[int] | None = None, filter: str | None = None,
                       since: float | None = None, until: float | None = None, *,
                       order: str = "star", telescope: bool = False):
    """The Core ``SELECT`` behind :func:`lightcurve` and the CSV/VOTable exports: one row per
    measurement with :data:`LIGHTCURVE_COLUMNS` (joined to its frame for ``exptime`` and the raw
    path, and to the frame's zero point). ``ra``/``dec`` are the position measured on that
    frame; ``airmass`` is the star's own, else the frame's. ``order`` is ``"star"``
    (star_id, jd_mid, frame_id) or ``"time"`` (jd_mid, star_id, frame_id). ``telescope=True``
    adds the frame's telescope as a last column (``frame`` is relative to its incoming)."""
    m, f, z = _MEASUREMENTS.c, _FRAMES.c, _ZERO_POINTS.c
    extra = [f.telescope] if telescope else []
    stmt = (select(m.star_id, m.ra, m.dec, m.filter, m.jd_mid, m.bjd_tdb, m.mag, m.mag_err,
                   m.inst_mag, m.inst_mag_err, z.value.label("zero_point"),
                   func.coalesce(m.airmass, f.airmass).label("airmass"), f.exptime,
                   f.raw_path.label("frame"), m.flags, *extra)
            .select_from(_MEASUREMENTS.join(_FRAMES, f.id == m.frame_id)
                         .outerjoin(_ZERO_POINTS, z.frame_id == m.frame_id)))
    if star_ids is not None:
        ids = sorted({int(s) for s in star_ids})
        if not ids:
            stmt = stmt.where(false())
        elif len(ids) == 1:
            stmt = stmt.where(m.star_id == ids[0])
        else:
            stmt = stmt.where(m.star_id.in_(ids))
    if filter is not None:
        stmt = stmt.where(m.filter == filter)
    if since is not None:
        stmt = stmt.where(m.jd_mid >= float(since))
    if until is not None:
        stmt = stmt.where(m.jd_mid <= float(until))
    if order == "time":
        return stmt.order_by(m.jd_mid, m.star_id, m.frame_id)
    return stmt.order_by(m.star_id, m.jd_mid, m.frame_id)


def lightcurve(source: Session | Connection | Engine, star_id: int, filter: str | None = None,
               since: float | None = None, until: float | None = None, *,
               telescope: bool = False) -> list[dict]:
    """A star's measurements as dicts with exactly :data:`LIGHTCURVE_COLUMNS` (the
    ``export --format csv`` fields), sorted by ``jd_mid``; ``since``/``until`` bound ``jd_mid``
    (inclusive); ``telescope=True`` adds each point's ``telescope``. Served by the
    ``(star_id, filter, jd_mid)`` index. ``source`` is an engine, a connection or a session."""
    stmt = measurement_select([star_id], filter, since, until, order="star", telescope=telescope)
    if isinstance(source, Engine):
        with source.connect() as conn:
            rows = conn.execute(stmt).all()
    else:
        rows = source.execute(stmt).all()
    cols = LIGHTCURVE_COLUMNS + (("telescope",) if telescope else ())
    return [dict(zip(cols, row)) for row in rows]
