"""Large reads as the database driver's plain tuples: a Core ``SELECT`` executed as any other
(parameters bound, in the caller's transaction), its rows fetched from the DBAPI cursor rather
than wrapped one by one in SQLAlchemy's ``Row`` objects.

Used where tens of thousands of rows go straight into numpy or a table: SQLAlchemy's rows cost
about as much as the read itself there (the points of a night's stars over ten years of
archive, 150,000-250,000 rows; the statistics of 20,000 stars).

On PostgreSQL through psycopg the rows come in the server's binary format
(:data:`BINARY_ROWS`, honoured by the engine :func:`clinepipe.store.engines.create_engine_for`
makes): a float8 is 8 bytes copied rather than a decimal text parsed, the same value to the last
bit. 40,000 rows of 9 columns of ``star_stats``: 195 -> 75 ms."""

from __future__ import annotations

#: the execution option asking the engine for rows in the binary format (PostgreSQL, psycopg)
BINARY_ROWS = "clinepipe_binary_rows"


def connection_of(source):
    """``source`` if it is a Core connection, else the connection of a session (whose
    transaction it is); never imports the ORM (``stars`` and ``lc`` run without it)."""
    from sqlalchemy.engine import Connection

    return source if isinstance(source, Connection) else source.connection()


def fetch_tuples(source, stmt) -> list[tuple]:
    """Every row of ``stmt`` as a plain tuple, read through ``source`` (a connection or a
    session). Values are the driver's own: the columns must be of types the driver returns
    as wanted (numbers, text), since SQLAlchemy's result processing is skipped."""
    result = connection_of(source).execute(stmt.execution_options(**{BINARY_ROWS: True}))
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def fetch_column(source, stmt) -> list:
    """The first column of every row of ``stmt`` (:func:`fetch_tuples`)."""
    return [r[0] for r in fetch_tuples(source, stmt)]
