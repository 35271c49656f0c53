"""A new database is created from ``store/tables.py`` in one go and stamped at the head
(:func:`clinepipe.store.schema_version.create_schema`) instead of running every migration: it
must be the very database the migrations make, on SQLite and PostgreSQL, and behave as one
(Alembic sees it at the head, upgrades it as a no-op, can migrate it down and up again)."""

from __future__ import annotations

import re

import pytest
from alembic import command
from sqlalchemy import inspect, text

from clinepipe.store.db import open_database
from clinepipe.store.schema_version import (
    alembic_config,
    current_revision,
    head_revision,
)
from clinepipe.store.tables import metadata

#: every table of a current database (ours and Alembic's)
ALL_TABLES = set(metadata.tables) | {"alembic_version"}


def _migrated(url: str):
    """An engine on ``url`` brought to the head by running every migration (the old way)."""
    engine = open_database(url, upgrade=False)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    return engine


def _created(url: str):
    """An engine on ``url`` as ``clinepipe run`` makes a new database now."""
    return open_database(url)


# ---------------------------------------------------------------- the schema, seen two ways

def _inspected(engine) -> dict:
    """Every table's columns (in order: name, type, nullability, server default, autoincrement),
    primary key, foreign keys, unique constraints and indexes, as SQLAlchemy reflects them."""
    insp = inspect(engine)
    out = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"),
                         c.get("autoincrement")) for c in insp.get_columns(table)],
            "pk": insp.get_pk_constraint(table),
            "fks": sorted((fk["name"], tuple(fk["constrained_columns"]), fk["referred_table"],
                           tuple(fk["referred_columns"]), tuple(sorted(fk["options"].items())))
                          for fk in insp.get_foreign_keys(table)),
            "unique": sorted((u["name"], tuple(u["column_names"]))
                             for u in insp.get_unique_constraints(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(table)),
        }
    return out


def _split_top_level(body: str) -> list[str]:
    """The comma-separated items of a CREATE TABLE's body (commas inside parentheses kept)."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    return [" ".join(item.split()) for item in items]


def _normalised_sql(sql: str | None):
    """A ``sqlite_master`` statement with what carries no meaning taken out: whitespace,
    identifier quotes (a table rebuilt by Alembic's batch mode is named ``"frames"``) and, in a
    CREATE TABLE, the order of the table constraints (SQLite keeps the text of the statement
    that made the table last; the order of its constraints changes nothing). Column definitions
    keep their order."""
    if sql is None:
        return None
    sql = " ".join(sql.replace('"', "").split())
    m = re.fullmatch(r"CREATE TABLE (\w+) \((.*)\)", sql)
    if m is None:
        return sql
    items = _split_top_level(m.group(2))
    is_constraint = re.compile(r"(CONSTRAINT|PRIMARY KEY|UNIQUE|FOREIGN KEY|CHECK)\b")
    return (m.group(1), [i for i in items if not is_constraint.match(i)],
            sorted(i for i in items if is_constraint.match(i)))


def _sqlite_catalog(engine) -> dict:
    """The SQLite catalog: each object's normalised SQL, and the PRAGMAs describing every column
    (order, type, NOT NULL, default, key), index (columns, order, collation, uniqueness, origin)
    and foreign key (columns, target, actions)."""
    out = {}
    with engine.connect() as conn:
        objects = conn.exec_driver_sql(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").all()
        for kind, name, table, sql in objects:
            entry = {"table": table, "sql": _normalised_sql(sql)}
            if kind == "table":
                entry["columns"] = conn.exec_driver_sql(f"PRAGMA table_xinfo('{name}')").all()
                fks = conn.exec_driver_sql(f"PRAGMA foreign_key_list('{name}')").all()
                by_id: dict = {}
                for fk_id, seq, *rest in fks:  # ids number the keys in no meaningful order
                    by_id.setdefault(fk_id, []).append((seq, *rest))
                entry["foreign_keys"] = sorted(tuple(sorted(v)) for v in by_id.values())
                entry["indexes"] = sorted(tuple(r)[1:] for r in conn.exec_driver_sql(
                    f"PRAGMA index_list('{name}')"))
            elif kind == "index":
                entry["columns"] = conn.exec_driver_sql(f"PRAGMA index_xinfo('{name}')").all()
            out[(kind, name)] = entry
    return out


def _postgres_catalog(engine) -> dict:
    """The PostgreSQL catalog of the database's schema: columns in order with their types,
    defaults and nullability, every constraint's definition, every index's definition and every
    sequence with the column owning it."""
    with engine.connect() as conn:
        # the columns' order, not their attnum (a column dropped by a downgrade leaves a gap)
        columns = conn.execute(text(
            "SELECT table_name, column_name, data_type, "
            "character_maximum_length, numeric_precision, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "ORDER BY table_name, ordinal_position")).all()
        constraints = conn.execute(text(
            "SELECT cl.relname, co.conname, co.contype, pg_get_constraintdef(co.oid) "
            "FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid "
            "JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE n.nspname = current_schema() "
            "ORDER BY 1, 2")).all()
        indexes = conn.execute(text(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = current_schema() ORDER BY 1, 2")).all()
        sequences = conn.execute(text(
            "SELECT s.relname, t.relname, a.attname FROM pg_class s "
            "JOIN pg_depend d ON d.objid = s.oid AND d.deptype = 'a' "
            "JOIN pg_class t ON t.oid = d.refobjid "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid "
            "JOIN pg_namespace n ON n.oid = s.relnamespace "
            "WHERE s.relkind = 'S' AND n.nspname = current_schema() ORDER BY 1")).all()
    return {"columns": columns, "constraints": constraints, "indexes": indexes,
            "sequences": sequences}


def _catalog(engine) -> dict:
    if engine.dialect.name == "sqlite":
        return _sqlite_catalog(engine)
    return _postgres_catalog(engine)


def _revisions(engine) -> list:
    with engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]


# ---------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_new_database_is_exactly_the_migrated_schema(kind, new_database_url):
    migrated, created = _migrated(new_database_url(kind)), _created(new_database_url(kind))
    try:
        assert set(inspect(created).get_table_names()) == ALL_TABLES
        assert _inspected(created) == _inspected(migrated)
        assert _catalog(created) == _catalog(migrated)
        assert _revisions(created) == _revisions(migrated) == [head_revision()]
    finally:
        migrated.dispose()
        created.dispose()


def test_the_comparison_sees_a_column_out_of_place_or_an_index_missing(new_database_url):
    """The check above can fail: the same columns in another order differ, as does an index
    less."""
    migrated = _migrated(new_database_url("sqlite"))
    other = _created(new_database_url("sqlite"))
    try:
        with other.begin() as conn:  # frames.object moved to the end, otherwise the same
            conn.exec_driver_sql("ALTER TABLE frames DROP COLUMN object")
            conn.exec_driver_sql("ALTER TABLE frames ADD COLUMN object VARCHAR(128)")
        got, want = _inspected(other)["frames"], _inspected(migrated)["frames"]
        assert set(got["columns"]) == set(want["columns"]) and got != want
        assert _sqlite_catalog(other) != _sqlite_catalog(migrated)
        with other.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_stars_var_type")
        assert _inspected(other)["stars"] != _inspected(migrated)["stars"]
    finally:
        migrated.dispose()
        other.dispose()


def test_column_order_counts_in_the_sqlite_comparison():
    a = "CREATE TABLE t (\n\tid INTEGER NOT NULL, \n\tx TEXT, \n\tCONSTRAINT pk_t PRIMARY KEY (id))"
    b = 'CREATE TABLE "t" (id INTEGER NOT NULL, x TEXT, CONSTRAINT pk_t PRIMARY KEY (id))'
    c = "CREATE TABLE t (x TEXT, id INTEGER NOT NULL, CONSTRAINT pk_t PRIMARY KEY (id))"
    assert _normalised_sql(a) == _normalised_sql(b) != _normalised_sql(c)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_new_database_behaves_as_a_migrated_one(kind, new_database_url):
    """Alembic finds it at the head and has nothing to do; migrated down to revision 0001 (every
    downgrade addresses constraints by name) and up again, it is the same database again."""
    url = new_database_url(kind)
    created = _created(url)
    try:
        before = (_inspected(created), _catalog(created))
        assert current_revision(created) == head_revision()
        with created.begin() as conn:
            command.upgrade(alembic_config(conn), "head")  # nothing to do
        assert (_inspected(created), _catalog(created)) == before
        with created.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
        assert current_revision(created) == "0001"
        assert "star_stats" not in inspect(created).get_table_names()
    finally:
        created.dispose()
    again = open_database(url)  # what the next `clinepipe run` does: Alembic upgrades it
    try:
        assert current_revision(again) == head_revision()
        assert (_inspected(again), _catalog(again)) == before
    finally:
        again.dispose()


def test_a_database_emptied_by_a_downgrade_is_created_again(tmp_path):
    """Downgraded to base, a database keeps Alembic's empty version table: it counts as new."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = _created(url)
    before = _sqlite_catalog(engine)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    assert _revisions(engine) == []
    engine.dispose()
    engine = open_database(url)
    try:
        assert _sqlite_catalog(engine) == before
        assert _revisions(engine) == [head_revision()]
    finally:
        engine.dispose()


def test_a_database_holding_some_of_our_tables_is_left_to_alembic(tmp_path):
    """Not new (a table of ours without a revision): not created over, Alembic's error stands."""
    from clinepipe.errors import ClinepipeError

    url = f"sqlite:///{tmp_path / 'odd.db'}"
    engine = open_database(url, upgrade=False)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE runs (id INTEGER PRIMARY KEY)")
    engine.dispose()
    with pytest.raises(ClinepipeError, match="cannot upgrade the database .*runs"):
        open_database(url)
