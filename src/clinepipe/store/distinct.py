"""The distinct values of an indexed column, read by walking its index from value to value (a
"loose index scan") rather than by reading every row.

Neither PostgreSQL (before 18) nor SQLite without ``ANALYZE`` statistics skips through an index
for ``SELECT DISTINCT``: on ten years of archive both read all 62,000 frames to find the two
states or the one telescope, 50 ms on PostgreSQL for each of the nights page's questions. A
recursive query asks the index for the smallest value above the last one instead: one probe
per distinct value (the states: 50 -> 0.4 ms; the 3,000 nights: 47 -> 28 ms)."""

from __future__ import annotations

from sqlalchemy import exists, func, select


def distinct_values(conn, column, *, limit: int | None = None) -> list:
    """The distinct values of ``column`` (a table column with an index that leads with it),
    ascending, NULL last when some row has it; at most ``limit`` of them. ``conn``: a
    connection or session, read in its transaction."""
    inner = column.table.alias()
    same = inner.c[column.name]
    seed = select(func.min(column).label("v")).cte("loose", recursive=True)
    step = (select(select(func.min(same)).where(same > seed.c.v).scalar_subquery())
            .where(seed.c.v.is_not(None)))
    loose = seed.union_all(step)
    stmt = select(loose.c.v).where(loose.c.v.is_not(None))
    if limit is not None:
        stmt = stmt.limit(limit)
    values = list(conn.execute(stmt).scalars())
    if column.nullable and (limit is None or len(values) < limit):
        if conn.execute(select(exists().where(column.is_(None)))).scalar():
            values.append(None)
    return values
