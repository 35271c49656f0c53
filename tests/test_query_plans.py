"""A run's queries on ``frames`` and ``star_stats`` read the rows they want through an index,
not every frame of the archive (revision 0009). SQLite keeps no statistics here, so its plans
depend on the schema and the query's shape alone: the same on a test database as on ten years
of archive (``bench/bench_archive.py`` measures the time)."""
from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import event

from clinepipe.config import Config, PathsConfig
from clinepipe.run.finishing import frame_states
from clinepipe.run.lights_step import lights_stage
from clinepipe.run.master_nights import candidate_nights
from clinepipe.run.masters_step import _calibration_frames
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame
from clinepipe.variability.star_stats import read_statistics, update_star_stats

#: what a plan says when it walks a table or every frame of a telescope
WALKS = ("SCAN frames", "SCAN star_stats", "sqlite_autoindex_frames_1")


@pytest.fixture
def archive(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with session_scope(engine) as s:
        for night in ("20250101", "20250601", "20260301"):
            for kind in ("bias", "dark", "flat", "light"):
                s.add_all([Frame(raw_path=f"{night}/{kind}_{i}.fit", kind=kind, night=night,
                                 state="ingested" if night == "20260301" else "used",
                                 binning=1, jd_mid=0.0) for i in range(3)])
        s.add(Frame(raw_path="bad.fit", state="failed", stage="ingest", reason="truncated"))
    yield engine
    engine.dispose()


def _plans(engine, call):
    """Run ``call()``; the query plan of each SELECT it sent that reads frames or star_stats."""
    seen = []

    def keep(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and (
                "frames" in statement or "star_stats" in statement):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        result = call()
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    raw = engine.raw_connection()
    try:
        plans = [(sql, [row[-1] for row in raw.cursor().execute("EXPLAIN QUERY PLAN " + sql,
                                                                params).fetchall()])
                 for sql, params in seen]
    finally:
        raw.close()
    assert plans, "no query was seen"
    return result, plans


def _assert_indexed(plans):
    for sql, plan in plans:
        walks = [step for step in plan if any(w in step for w in WALKS)]
        assert not walks, f"{sql}\nwalks the table: {plan}"


def test_the_masters_step_looks_up_its_frames(archive):
    cfg = Config()

    def nights():
        changed: dict = {}
        with session_scope(archive) as s:
            for kind in ("bias", "dark", "flat"):
                changed[kind] = candidate_nights(s, cfg, kind, changed)
        return changed

    changed, plans = _plans(archive, nights)
    _assert_indexed(plans)
    assert changed["bias"] == ["20260301"]

    def frames():
        with session_scope(archive) as s:
            return _calibration_frames(s, "", "dark", ["20260301"])

    found, plans = _plans(archive, frames)
    _assert_indexed(plans)
    assert sorted(f.raw_path for f in found) == [f"20260301/dark_{i}.fit" for i in range(3)]
    with session_scope(archive) as s:  # every night: the states judged by the database
        every = _calibration_frames(s, "", "dark", None)
    assert len(every) == 9


def test_the_pending_lights_and_the_summary_are_looked_up(archive, tmp_path):
    cfg = dataclasses.replace(Config(), paths=PathsConfig(incoming=tmp_path / "in",
                                                          archive=tmp_path / "archive"))
    done, plans = _plans(archive, lambda: lights_stage(cfg, archive, run_id=1))
    _assert_indexed(plans)
    assert done == 0  # the pending lights have no archive copy here: left as they are
    (states, failures), plans = _plans(archive, lambda: frame_states(archive, ""))
    _assert_indexed(plans)
    assert states == {"ingested": 12, "used": 24, "failed": 1}
    assert failures == [("bad.fit", "failed", "ingest", "truncated")]


def test_the_star_statistics_find_rows_of_other_flags_by_index(archive):
    # (reading every row stored for the current flags is what `clinepipe stars` is for)
    for call in (lambda: read_statistics(archive),
                 lambda: update_star_stats(archive, ("clouds",), "", ["20260301"])):
        _, plans = _plans(archive, call)
        other = [p for p in plans if "star_stats.exclude_qc <" in p[0]]
        assert other
        _assert_indexed(other)
