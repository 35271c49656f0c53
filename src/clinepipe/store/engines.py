"""Engines for SQLite and PostgreSQL URLs: the URL checked and its password masked in messages,
SQLite in WAL mode with foreign keys, a busy timeout and ``synchronous=NORMAL`` (why: see
:mod:`clinepipe.store.db`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool, StaticPool

from clinepipe.errors import ConfigError

#: how long a SQLite connection waits for another process's write lock (seconds)
SQLITE_BUSY_TIMEOUT = 60.0


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


def is_sqlite(u: URL) -> bool:
    """Whether the URL ``u`` is a SQLite database (file or in memory)."""
    return u.get_backend_name() == "sqlite"


def is_memory(u: URL) -> bool:
    """Whether the URL ``u`` is an in-memory SQLite database (``sqlite://``, ``:memory:``,
    ``file::memory:`` or ``mode=memory``), which needs one shared connection and no migration
    engine of its own."""
    db = u.database or ""
    return is_sqlite(u) and (db in ("", ":memory:") or db.startswith("file::memory:")
                              or u.query.get("mode") == "memory")


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


def create_engine_for(u: URL, *, migration: bool = False, parallel_plans: bool = True) -> Engine:
    """The engine for ``u``; ``migration=True`` gives the SQLite engine whose transactions start
    with ``BEGIN IMMEDIATE`` (the write lock up front, so concurrent upgrades serialize);
    ``parallel_plans=False``, a PostgreSQL engine whose sessions plan no parallel query (the
    run's: see below)."""
    if is_sqlite(u):
        memory = is_memory(u)
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
        # PostgreSQL's JIT compiles any query whose estimated cost is high, and the planner
        # over-estimates the pipeline's correlated index lookups: on ten years of archive a
        # night's star counts spent 393 ms compiling for 440 ms of work. Off for clinepipe's
        # sessions (after any options of the URL, which otherwise stay the user's).
        # The run plans no parallel query: for a join of a night's frames with their
        # measurements the planner's costs favour a parallel scan of every frame over the
        # night's index (ten years, 62,000 frames: the morning report's query 33-190 ms
        # instead of 8 ms, the suspects' 64 ms instead of 11; the run's SQL 1.22 -> 0.85 s),
        # and the workers of a gather take milliseconds to start for a night's or a star's rows
        # read through indexes. Readers keep them: `clinepipe stars` (every star's row) is
        # 0.1-0.2 s faster with them.
        mine = u.query.get("options") or ()
        options = " ".join([*([mine] if isinstance(mine, str) else mine), "-c jit=off",
                            *(() if parallel_plans else
                              ("-c max_parallel_workers_per_gather=0",))])
        connect_args = {"connect_timeout": 10, "application_name": "clinepipe",
                        "options": options}
        engine = create_engine(u, pool_pre_ping=True, connect_args=connect_args,
                               poolclass=NullPool if migration else None)
        if engine.dialect.driver == "psycopg":
            _binary_rows_when_asked(engine)
        return engine
    return create_engine(u, pool_pre_ping=True)


def _binary_rows_when_asked(engine: Engine) -> None:
    """Statements executed with the :data:`~clinepipe.store.fetch.BINARY_ROWS` option get
    their rows in PostgreSQL's binary format (psycopg's ``execute(binary=True)``): the large
    reads of :func:`~clinepipe.store.fetch.fetch_tuples`, tens of thousands of floats parsed
    from text otherwise. SQLAlchemy still compiles, binds and runs the statement in the
    connection's transaction; only the cursor's ``execute`` call is this one."""
    from clinepipe.store.fetch import BINARY_ROWS

    @event.listens_for(engine, "do_execute")
    def _with_params(cursor, statement, parameters, context):
        if context.execution_options.get(BINARY_ROWS):
            cursor.execute(statement, parameters, binary=True)
            return True
        return False

    @event.listens_for(engine, "do_execute_no_params")
    def _without_params(cursor, statement, context):
        if context.execution_options.get(BINARY_ROWS):
            cursor.execute(statement, binary=True)
            return True
        return False
