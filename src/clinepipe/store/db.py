"""Engine, migrations, sessions and the bulk helpers of the pipeline's database.

SQLite (the default, one file beside the config) and PostgreSQL (``postgresql+psycopg://``, for
a shared server) behave the same through this module:

* :func:`open_database` creates the engine and brings the schema to the newest Alembic revision.
  An empty database gets every table of :mod:`clinepipe.store.tables` at once, stamped at the
  head revision (the very schema the migrations make, tested); one that holds the schema is
  upgraded by the migrations in ``clinepipe/migrations``.
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
* engines and their SQLite settings are in :mod:`clinepipe.store.engines`, the Alembic
  side in :mod:`clinepipe.store.schema_version`, the measurements' fast paths in
  :mod:`clinepipe.store.measurement_rows`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import (
    Engine,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from clinepipe.errors import ClinepipeError, ConfigError
from clinepipe.store.engines import create_engine_for, mask_url, normalize_url
from clinepipe.store.schema_version import (
    MigrationFailed,
    at_head,
    current_revision,
    current_revision_safe,
    head_revision,
    upgrade_schema,
)

# sqlalchemy.orm is imported where a session is opened: the commands that only read
# (`clinepipe lc`, `stars`) use Core connections on store.tables and never load it
if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def _problem(exc: BaseException) -> str:
    """One line describing a driver error (first line of the DBAPI message)."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text_ = str(inner).strip() or type(inner).__name__
    line = text_.splitlines()[0].strip()
    return line.rstrip(".")


def open_database(url: str | URL, *, upgrade: bool = True, parallel_plans: bool = True) -> Engine:
    """An engine on ``url`` (SQLite file or ``postgresql+psycopg://``), upgraded to the newest
    schema unless ``upgrade=False``. The parent folder of a SQLite file is created.
    ``parallel_plans=False``: PostgreSQL plans no parallel query in its sessions (the run's,
    :func:`~clinepipe.store.engines.create_engine_for`).

    Raises :class:`~clinepipe.errors.ConfigError` for a malformed URL or unknown backend and
    :class:`~clinepipe.errors.ClinepipeError` (one sentence naming the URL, password masked)
    when the database cannot be reached, opened or upgraded.
    """
    u = normalize_url(url)
    shown = mask_url(u)
    try:
        engine = create_engine_for(u, parallel_plans=parallel_plans)
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
    if upgrade and not at_head(engine):
        try:
            upgrade_schema(engine, u)
        except (SQLAlchemyError, MigrationFailed) as exc:
            engine.dispose()
            if isinstance(exc, MigrationFailed) and "Can't locate revision" in str(exc):
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


def upgrade_database(url: str | URL) -> str | None:
    """``clinepipe db upgrade``: apply every pending migration; returns the revision reached."""
    engine = open_database(url, upgrade=True)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commits when the block ends normally, rolls back on any exception.
    Loaded objects stay readable after the block (``expire_on_commit=False``)."""
    from sqlalchemy.orm import Session

    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    except BaseException:
        end_session(session, commit=False)
        raise
    end_session(session, commit=True)


def end_session(session: Session, *, commit: bool) -> None:
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
            from sqlalchemy.orm import Session

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
            end_session(session, commit=commit)

    def __enter__(self) -> "BatchedTransaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
