"""Engine, migrations, sessions and the bulk helpers of the pipeline's database.

SQLite (the default, one file beside the config) and PostgreSQL (``postgresql+psycopg://``, for
a shared server) behave the same through this module:

* :func:`open_database` creates the engine and brings the schema to the newest Alembic revision.
  The schema is made only by the migrations in ``clinepipe/migrations`` (never ``create_all``).
  Two processes opening the same fresh database at once is safe: on SQLite the upgrade runs in
  one ``BEGIN IMMEDIATE`` transaction (SQLite's DDL is transactional; the second process waits
  on the busy timeout, then finds the schema current); on PostgreSQL it runs in one transaction
  holding a transaction-level advisory lock (PostgreSQL's DDL is transactional too).
* SQLite connections use WAL journaling (readers such as ``clinepipe serve`` never block the
  writer), ``foreign_keys=ON``, a 60 s busy timeout and ``synchronous=NORMAL``. In WAL mode
  ``NORMAL`` never corrupts the database and loses nothing when *clinepipe* is killed; only an
  operating-system crash or power cut can roll back the last few committed transactions. That
  fits our crash model: each light frame's results are written whole in one transaction
  (:class:`BatchedTransaction` commits up to ten frames at once) and a frame whose
  transaction was lost is still in its earlier state, so the next ``run`` simply redoes it.
  ``FULL`` would cost one fsync per frame for no gain in what ``run`` ends up with.
* :func:`lightcurve`, :func:`insert_measurements` and :func:`delete_frame_results` are the
  fast paths of the pipeline, the CLI and the web (Core statements, no ORM objects).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import operator
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (Engine, create_engine, delete, event, false, func, insert, select,
                        text)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, StaticPool

from clinepipe.errors import ClinepipeError, ConfigError
from clinepipe.store.models import Frame, Measurement, Run, ZeroPoint

__all__ = [
    "LIGHTCURVE_COLUMNS", "MIGRATIONS_DIR", "open_database", "upgrade_database",
    "current_revision", "head_revision", "alembic_config", "session_scope",
    "insert_measurements", "delete_frame_results", "lightcurve", "measurement_select",
    "mask_url", "normalize_url", "several_telescopes", "last_run", "mark_stars_pending",
    "mark_frame_stars_pending",
]

log = logging.getLogger(__name__)

#: the Alembic script folder (env.py, script.py.mako, versions/) shipped inside the package
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

#: how long a SQLite connection waits for another process's write lock (seconds)
SQLITE_BUSY_TIMEOUT = 60.0

#: the PostgreSQL advisory-lock key held while migrating (ASCII "clinepip")
PG_MIGRATION_LOCK_KEY = 0x636C696E65706970

#: the fields of ``clinepipe export --format csv``, of :func:`lightcurve` rows and of the web's
#: ``/api/stars/{id}/lightcurve`` objects, in this order
LIGHTCURVE_COLUMNS = ("star_id", "ra", "dec", "filter", "jd_mid", "bjd_tdb", "mag", "mag_err",
                      "inst_mag", "inst_mag_err", "zero_point", "airmass", "exptime", "frame",
                      "flags")


# ----------------------------------------------------------------------------- URLs

def normalize_url(url: str | URL) -> URL:
    """The URL as SQLAlchemy needs it: ``postgres://`` and ``postgresql://`` use psycopg 3."""
    try:
        u = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise ConfigError(f"database URL {str(url)!r} is not a valid SQLAlchemy URL "
                          f"(e.g. sqlite:///clinepipe.db or postgresql+psycopg://user@host/db).",
                          reason="bad database URL") from exc
    if u.drivername in ("postgres", "postgresql"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def mask_url(url: str | URL) -> str:
    """The URL for messages, its password (if any) replaced by ``***``."""
    try:
        u = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<invalid URL>"
    return u.render_as_string(hide_password=True)


def _is_sqlite(u: URL) -> bool:
    return u.get_backend_name() == "sqlite"


def _is_memory(u: URL) -> bool:
    db = u.database or ""
    return _is_sqlite(u) and (db in ("", ":memory:") or db.startswith("file::memory:")
                              or u.query.get("mode") == "memory")


def _problem(exc: BaseException) -> str:
    """One line describing a driver error (first line of the DBAPI message)."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text_ = str(inner).strip() or type(inner).__name__
    line = text_.splitlines()[0].strip()
    return line.rstrip(".")


# ----------------------------------------------------------------------------- engines

def _ensure_wal(cur) -> None:
    """Switch the database to WAL journaling unless it already is.

    The switch needs the database to itself, and SQLite answers "database is locked" at once,
    without its busy handler, when another process is opening (or switching) the same new
    file at that moment; so retry for up to the busy timeout, re-reading the mode each time
    (the other process has usually switched it meanwhile)."""
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    delay = 0.005
    while True:
        try:
            mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _sqlite_pragmas(dbapi_connection, memory: bool, foreign_keys: bool = True) -> None:
    """The settings of every SQLite connection. ``foreign_keys=False`` is for migrations only:
    a table rebuild (SQLite's way to change a constraint) drops the old table, and with foreign
    keys on that first deletes the rows of every ``ON DELETE CASCADE`` child table."""
    cur = dbapi_connection.cursor()
    try:
        # PRAGMA takes no bound parameters; the value is an integer constant of this module
        cur.execute("PRAGMA busy_timeout = " + str(int(SQLITE_BUSY_TIMEOUT * 1000)))
        cur.execute("PRAGMA foreign_keys = " + ("ON" if foreign_keys else "OFF"))
        if not memory:
            _ensure_wal(cur)
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache per connection
        cur.execute("PRAGMA temp_store = MEMORY")
        if not memory:
            # Every light touches one leaf of the (star, filter, jd) index per star, so each
            # commit rewrites hundreds of index pages: checkpoint the WAL every ~80 MiB instead
            # of every 4 MiB (a page is copied back once per checkpoint however often it
            # changed, and there are fewer fsyncs); keep the WAL file at most 128 MiB.
            cur.execute("PRAGMA wal_autocheckpoint = 20000")
            # reads through a memory map instead of a pread() per page: a night's stars'
            # light curves (10^5 rows on as many pages of a ten-year archive) in a quarter
            # of the time (bench_archive); SQLite caps it at its compile-time limit (2 GiB)
            cur.execute("PRAGMA mmap_size = 2147483648")
            cur.execute("PRAGMA journal_size_limit = 134217728")
    finally:
        cur.close()


def _create_engine(u: URL, *, migration: bool = False) -> Engine:
    """The engine for ``u``; ``migration=True`` gives the SQLite engine whose transactions start
    with ``BEGIN IMMEDIATE`` (the write lock up front, so concurrent upgrades serialize)."""
    if _is_sqlite(u):
        memory = _is_memory(u)
        kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
        if memory:
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
        elif migration:
            kwargs["poolclass"] = NullPool
        else:
            folder = Path(u.database).expanduser().parent
            folder.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised via tests
            if migration:
                dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
            _sqlite_pragmas(dbapi_connection, memory, foreign_keys=not migration)

        if migration:
            @event.listens_for(engine, "begin")
            def _on_begin(conn):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if u.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": 10, "application_name": "clinepipe"}
        return create_engine(u, pool_pre_ping=True, connect_args=connect_args,
                             poolclass=NullPool if migration else None)
    return create_engine(u, pool_pre_ping=True)


def open_database(url: str | URL, *, upgrade: bool = True) -> Engine:
    """An engine on ``url`` (SQLite file or ``postgresql+psycopg://``), upgraded to the newest
    schema unless ``upgrade=False``. The parent folder of a SQLite file is created.

    Raises :class:`~clinepipe.errors.ConfigError` for a malformed URL or unknown backend and
    :class:`~clinepipe.errors.ClinepipeError` (one sentence naming the URL, password masked)
    when the database cannot be reached, opened or upgraded.
    """
    u = normalize_url(url)
    shown = mask_url(u)
    try:
        engine = _create_engine(u)
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"database URL {shown}: unsupported database backend "
                          f"'{u.drivername}' (use sqlite:/// or postgresql+psycopg://).",
                          reason="bad database URL") from exc
    except ArgumentError as exc:
        raise ConfigError(f"database URL {shown} is not usable ({exc}).",
                          reason="bad database URL") from exc
    except OSError as exc:
        raise ClinepipeError(f"cannot open the database {shown}: cannot create its folder "
                             f"({exc.strerror or exc}).", reason="database unreachable") from exc
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ClinepipeError(f"cannot open the database {shown}: {_problem(exc)}.",
                             reason="database unreachable") from exc
    if upgrade and not _at_head(engine):
        from alembic.util import CommandError

        try:
            _upgrade(engine, u)
        except (SQLAlchemyError, CommandError) as exc:
            engine.dispose()
            if isinstance(exc, CommandError) and "Can't locate revision" in str(exc):
                problem = (f"its schema revision {current_revision_safe(u)!r} is newer than "
                           f"this clinepipe {_version()} knows (newest {head_revision()!r}); "
                           f"install the newer clinepipe")
            else:
                problem = _problem(exc)
            raise ClinepipeError(f"cannot upgrade the database {shown} to the newest schema: "
                                 f"{problem}.", reason="database upgrade failed") from exc
    return engine


def _version() -> str:
    from clinepipe import __version__

    return __version__


def current_revision_safe(url: str | URL) -> str | None:
    """The revision stored in the database at ``url``, or None if it cannot be read."""
    try:
        engine = _create_engine(normalize_url(url))
    except Exception:  # noqa: BLE001 - only for a message
        return None
    try:
        return current_revision(engine)
    except Exception:  # noqa: BLE001
        return None
    finally:
        engine.dispose()


def upgrade_database(url: str | URL) -> str | None:
    """``clinepipe db upgrade``: apply every pending migration; returns the revision reached."""
    engine = open_database(url, upgrade=True)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------- migrations

def alembic_config(connection: Connection | None = None, url: str | None = None):
    """The Alembic configuration built in code (no ``alembic.ini``), optionally carrying an open
    connection for ``env.py`` to use (``config.attributes["connection"]``) or a URL for it to
    connect to. To write the next migration (then review it by hand)::

        from alembic import command
        from clinepipe.store.db import alembic_config
        command.revision(alembic_config(url="sqlite:////tmp/dev.db"), "what changes",
                         autogenerate=True, rev_id="0002")

    (the database must be at the current head: ``clinepipe db upgrade`` first).
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url",
                            normalize_url(url).render_as_string(hide_password=False)
                            .replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest revision of the shipped migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine_or_connection: Engine | Connection) -> str | None:
    """The database's Alembic revision (None for a database never migrated)."""
    from alembic.runtime.migration import MigrationContext

    if isinstance(engine_or_connection, Connection):
        return MigrationContext.configure(engine_or_connection).get_current_revision()
    with engine_or_connection.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _migrate(connection: Connection, target: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), target)


def _check_foreign_keys(conn: Connection, u: URL) -> None:
    """Raise (rolling the migration back) if a SQLite migration, run with foreign keys off,
    left a row pointing at a missing one."""
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table, rowid, parent = broken[0][:3]
        raise ClinepipeError(f"cannot upgrade the database {mask_url(u)}: the migration left "
                             f"{len(broken)} row(s) with a broken reference (first: {table} row "
                             f"{rowid} -> {parent}).", reason="database upgrade failed")


def _stored_revisions(engine: Engine) -> list[str] | None:
    """The revisions in the database's ``alembic_version`` table, read with plain SQL (None
    when the table does not exist yet)."""
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    except DBAPIError:
        return None


def _assigned_strings(path: Path) -> dict[str, tuple[str, ...]]:
    """The module-level ``revision`` and ``down_revision`` of a migration script, read from
    its syntax tree (the script is not run): each as a tuple of revision ids."""
    import ast

    out: dict[str, tuple[str, ...]] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                items = value.elts if isinstance(value, (ast.Tuple, ast.List)) else [value]
                if not all(isinstance(i, ast.Constant) and isinstance(i.value, (str, type(None)))
                           for i in items):
                    raise ValueError(f"{path.name}: {target.id} is not a literal")
                out[target.id] = tuple(i.value for i in items if i.value is not None)
    return out


@functools.lru_cache(maxsize=1)
def _head_from_scripts() -> str | None:
    """The single head of the shipped migrations read from the scripts' ``revision`` and
    ``down_revision`` lines, without importing Alembic; None when that is not conclusive
    (several heads, or a script that computes its ids): then Alembic itself is asked."""
    revisions, parents = set(), set()
    try:
        for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
            ids = _assigned_strings(path)
            if "revision" not in ids:
                return None
            revisions.update(ids["revision"])
            parents.update(ids.get("down_revision", ()))
    except (OSError, SyntaxError, ValueError):
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    """Whether the database is surely at the head revision, known without importing Alembic
    (a third of a short command's start-up, e.g. ``clinepipe lc``): one SELECT, and the head
    read from the migration scripts' own revision lines. False means "ask Alembic"."""
    head = _head_from_scripts()
    return head is not None and _stored_revisions(engine) == [head]


def _upgrade(engine: Engine, u: URL) -> None:
    head = head_revision()
    if current_revision(engine) == head:
        return
    backend = u.get_backend_name()
    if backend == "sqlite" and not _is_memory(u):
        mig = _create_engine(u, migration=True)
        try:
            with mig.begin() as conn:  # BEGIN IMMEDIATE: waits for a concurrent upgrade
                _migrate(conn)
                _check_foreign_keys(conn, u)  # they were off for the table rebuilds
        finally:
            mig.dispose()
    elif backend == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                         {"key": PG_MIGRATION_LOCK_KEY})
            _migrate(conn)
    else:
        with engine.begin() as conn:
            _migrate(conn)
    log.info("database %s upgraded to revision %s", mask_url(u), head)


# ----------------------------------------------------------------------------- sessions



@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commits when the block ends normally, rolls back on any exception.
    Loaded objects stay readable after the block (``expire_on_commit=False``)."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    except BaseException:
        _end(session, commit=False)
        raise
    _end(session, commit=True)


def _end(session: Session, *, commit: bool) -> None:
    """Commit (or roll back) the session's transaction and close it; a commit that fails is
    rolled back before the error goes on."""
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class BatchedTransaction:
    """Many units of work (the lights of a run) in few write transactions.

    :meth:`unit` gives the session of the open transaction for one unit; after ``max_units``
    units, or when the oldest uncommitted unit is ``max_seconds`` old, the transaction is
    committed. A unit's rows are never split between transactions, so each unit is stored
    whole or not at all; an exception rolls back the open transaction (the earlier units of
    it too) and is re-raised: those units are still pending and the next run redoes them,
    exactly as after a kill.

    Why: on SQLite every commit writes each index page the transaction touched to the WAL,
    and a light touches one page of the light-curve index per star, so committing ten lights
    at once writes about a tenth of the pages per light (``bench/bench_db.py``).
    """

    def __init__(self, engine: Engine, max_units: int = 10, max_seconds: float = 2.0):
        self.engine = engine
        self.max_units = max(1, int(max_units))
        self.max_seconds = float(max_seconds)
        self._session: Session | None = None
        self._units = 0
        self._opened = 0.0

    @contextlib.contextmanager
    def unit(self) -> Iterator[Session]:
        """The session to write one unit in; commits afterwards when the batch is due."""
        if self._session is None:
            self._session = Session(self.engine, expire_on_commit=False)
            self._opened = time.monotonic()
        try:
            yield self._session
        except BaseException:
            self.rollback()
            raise
        self._units += 1
        if (self._units >= self.max_units
                or time.monotonic() - self._opened >= self.max_seconds):
            self.commit()

    def commit(self) -> None:
        """Commit the open transaction (if any)."""
        self._end(commit=True)

    def rollback(self) -> None:
        """Discard the open transaction (if any)."""
        self._end(commit=False)

    def _end(self, *, commit: bool) -> None:
        session, self._session, self._units = self._session, None, 0
        if session is not None:
            _end(session, commit=commit)

    def __enter__(self) -> "BatchedTransaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


# ----------------------------------------------------------------------------- bulk helpers

_MEASUREMENTS = Measurement.__table__
_FRAMES = Frame.__table__
_ZERO_POINTS = ZeroPoint.__table__


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
    first when redoing a frame."""
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
    fast = conn.dialect.name == "sqlite" or conn.dialect.driver == "psycopg"
    if not fast:
        conn.execute(insert(_MEASUREMENTS), rows)
        return len(rows)
    # The fast paths, in the session's own transaction: SQLite's executemany with plain tuples
    # (no per-row parameter processing by SQLAlchemy: about twice the rate), PostgreSQL's COPY
    # (about ten times the rate of executemany). Defaulted columns are filled as Core would.
    defaults = _measurement_defaults()
    cols = tuple(rows[0])
    unknown = set(cols) - defaults.keys()
    if unknown:
        raise ValueError(f"not columns of measurements: {', '.join(sorted(unknown))}")
    missing = tuple(c for c in ("flags", "in_ensemble") if c not in cols)
    if missing:
        rows = [{**{c: defaults[c] for c in missing}, **r} for r in rows]
        cols = cols + missing
    getter = operator.itemgetter(*cols)
    params = list(map(getter, rows)) if len(cols) > 1 else [(getter(r),) for r in rows]
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
    return len(rows)


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


def mark_stars_pending(session: Session, star_ids) -> None:
    """Mark stars whose measurements change in this transaction: their ``star_stats`` rows are
    recomputed at the end of the run (:mod:`clinepipe.variability.star_stats`), and read from
    the measurements until then. The mark commits or rolls back with the change itself."""
    ids = sorted({int(i) for i in star_ids})
    if ids:
        session.execute(text("INSERT INTO star_stats_pending (star_id) VALUES (:s) "
                             "ON CONFLICT DO NOTHING"), [{"s": i} for i in ids])


def mark_frame_stars_pending(session: Session, frame_ids) -> None:
    """:func:`mark_stars_pending` for every star measured on ``frame_ids``."""
    for i in sorted({int(f) for f in frame_ids}):
        session.execute(text("INSERT INTO star_stats_pending (star_id) SELECT DISTINCT star_id "
                             "FROM measurements WHERE frame_id = :f ON CONFLICT DO NOTHING"),
                        {"f": i})


def last_run(session: Session) -> dict | None:
    """The newest run: ``id``, ``telescope``, ``started_at``, ``finished_at``, ``status`` and
    ``error`` (why it stopped, from ``summary``; "" when it did not), or None before any."""
    row = session.execute(select(Run.id, Run.telescope, Run.started_at, Run.finished_at,
                                 Run.status, Run.summary)
                          .order_by(Run.id.desc()).limit(1)).first()
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
    at the second name found (``DISTINCT … LIMIT 2``) rather than listing them all."""
    stmt = select(_FRAMES.c.telescope).distinct().limit(2)
    if isinstance(source, Engine):
        with source.connect() as conn:
            return len(conn.execute(stmt).all()) > 1
    return len(source.execute(stmt).all()) > 1


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
