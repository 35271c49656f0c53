"""The schema's Alembic revision: where the database is, where the migrations are, and the
upgrade in one transaction (SQLite ``BEGIN IMMEDIATE``, PostgreSQL with an advisory lock) so
that two processes opening a fresh database at once are safe.

A new, empty database is not migrated: :func:`create_schema` makes every table of
:mod:`clinepipe.store.tables` at once and stamps it at the head revision, without importing
Alembic (its import and the seven migrations took 0.4 s of a first ``clinepipe run``, against
0.04 s). ``tests/test_schema_creation.py`` checks that it is the very database the migrations
make. A database that holds the schema already is upgraded by Alembic, as before.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    text,
)
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from clinepipe.errors import ClinepipeError
from clinepipe.store.engines import (
    create_engine_for,
    is_memory,
    mask_url,
    normalize_url,
)

log = logging.getLogger(__name__)


#: the Alembic script folder (env.py, script.py.mako, versions/) shipped inside the package
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


#: the PostgreSQL advisory-lock key held while migrating (ASCII "clinepip")
PG_MIGRATION_LOCK_KEY = 0x636C696E65706970

#: Alembic's own version table, as ``alembic.runtime.migration`` creates it (same name, column,
#: length and primary-key name), for :func:`create_schema` to stamp a new database with
ALEMBIC_VERSION = Table(
    "alembic_version", MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


class MigrationFailed(Exception):
    """Alembic could not upgrade the database (its own error, e.g. an unknown revision, is
    the cause); :func:`clinepipe.store.db.open_database` turns it into one sentence."""


def alembic_config(connection: Connection | None = None, url: str | None = None):
    """The Alembic configuration built in code (no ``alembic.ini``), optionally carrying an open
    connection for ``env.py`` to use (``config.attributes["connection"]``) or a URL for it to
    connect to. To write the next migration (then review it by hand)::

        from alembic import command
        from clinepipe.store.schema_version import alembic_config
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


def current_revision_safe(url: str | URL) -> str | None:
    """The revision stored in the database at ``url``, or None if it cannot be read."""
    try:
        engine = create_engine_for(normalize_url(url))
    except Exception:  # noqa: BLE001 - only for a message
        return None
    try:
        return current_revision(engine)
    except Exception:  # noqa: BLE001
        return None
    finally:
        engine.dispose()


def _migrate(connection: Connection, target: str = "head") -> None:
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(alembic_config(connection), target)
    except CommandError as exc:
        raise MigrationFailed(str(exc)) from exc


def create_schema(connection: Connection, head: str) -> None:
    """Create every table, index and constraint of :mod:`clinepipe.store.tables` on an empty
    database and stamp it at revision ``head``, inside the caller's transaction.

    The tables describe the schema the migrations end at (column order included), so the
    database is the one ``alembic upgrade head`` would make, in a tenth of the time.
    """
    from clinepipe.store.tables import metadata

    metadata.create_all(connection, checkfirst=False)  # the caller found none of them
    ALEMBIC_VERSION.create(connection, checkfirst=True)  # left empty by a downgrade to base
    connection.execute(ALEMBIC_VERSION.insert().values(version_num=head))


def _create_or_migrate(connection: Connection) -> None:
    """Inside the upgrade's transaction (and lock): nothing when the database is at the head
    (another process got there first), :func:`create_schema` when it holds neither a revision
    nor any of our tables, else Alembic's upgrade."""
    from clinepipe.store.tables import metadata

    head = _head_from_scripts()
    names = set(inspect(connection).get_table_names())
    stored = ([r[0] for r in connection.execute(ALEMBIC_VERSION.select())]
              if ALEMBIC_VERSION.name in names else [])
    if head is not None and stored == [head]:
        return
    if head is not None and not stored and not names & set(metadata.tables):
        create_schema(connection, head)
        return
    _migrate(connection)


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


def at_head(engine: Engine) -> bool:
    """Whether the database is surely at the head revision, known without importing Alembic
    (a third of a short command's start-up, e.g. ``clinepipe lc``): one SELECT, and the head
    read from the migration scripts' own revision lines. False means "ask Alembic"."""
    head = _head_from_scripts()
    return head is not None and _stored_revisions(engine) == [head]


def upgrade_schema(engine: Engine, u: URL) -> None:
    """Bring the database of ``engine`` (URL ``u``) to the newest Alembic revision; nothing when
    it is there already. An empty database is created by :func:`create_schema`, one that holds
    the schema is migrated by Alembic.

    Concurrent runs may start together, so the upgrade holds a lock: a SQLite file is migrated in
    a ``BEGIN IMMEDIATE`` transaction on its own engine (foreign keys off for the table rebuilds,
    checked afterwards); PostgreSQL under a transaction-scoped advisory lock; an in-memory
    SQLite on ``engine`` itself (its only connection holds the data).
    """
    if at_head(engine):
        return
    backend = u.get_backend_name()
    if backend == "sqlite" and not is_memory(u):
        mig = create_engine_for(u, migration=True)
        try:
            with mig.begin() as conn:  # BEGIN IMMEDIATE: waits for a concurrent upgrade
                _create_or_migrate(conn)
                _check_foreign_keys(conn, u)  # they were off for the table rebuilds
        finally:
            mig.dispose()
    elif backend == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                         {"key": PG_MIGRATION_LOCK_KEY})
            _create_or_migrate(conn)
    else:
        with engine.begin() as conn:
            _create_or_migrate(conn)
    log.info("database %s upgraded to revision %s", mask_url(u),
             _head_from_scripts() or head_revision())
