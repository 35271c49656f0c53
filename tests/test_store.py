"""The database layer: migrations, constraints, sessions, bulk helpers, light curves and the
2018 sources.csv import, on SQLite and PostgreSQL alike (the ``db_url`` fixture)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from clinepipe.errors import ClinepipeError, ConfigError
from clinepipe.store.db import (
    BatchedTransaction,
    open_database,
    session_scope,
    upgrade_database,
)
from clinepipe.store.engines import mask_url
from clinepipe.store.legacy import LEGACY_CATALOG, import_sources_csv
from clinepipe.store.measurement_rows import (
    LIGHTCURVE_COLUMNS,
    delete_frame_results,
    insert_measurements,
    lightcurve,
)
from clinepipe.store.models import (
    Base,
    CatalogMatch,
    Frame,
    Measurement,
    Run,
    Star,
    ZeroPoint,
)
from clinepipe.store.schema_version import current_revision, head_revision

TABLES = {"runs", "frames", "masters", "stars", "catalog_matches", "zero_points", "measurements"}


@pytest.fixture
def engine(db_url):
    eng = open_database(db_url)
    yield eng
    eng.dispose()


def _measurement(frame_id, star_id, **extra):
    row = {"frame_id": frame_id, "star_id": star_id, "filter": "V", "jd_mid": 2460000.5,
           "bjd_tdb": None, "x": 10.0, "y": 20.0, "ra": 150.0, "dec": 20.0, "flux": 100.0,
           "flux_err": 5.0, "background": 10.0, "inst_mag": -5.0, "inst_mag_err": 0.05,
           "mag": 15.0, "mag_err": 0.05, "fwhm": 3.0, "airmass": 1.1, "flags": 0,
           "in_ensemble": False}
    row.update(extra)
    return row


def _frame_and_star(engine, raw_path="a/light.fits"):
    with session_scope(engine) as s:
        frame = Frame(raw_path=raw_path, kind="light", filter="V", jd_mid=2460000.5,
                      state="calibrated")
        star = Star(ra=150.0, dec=20.0)
        s.add_all([frame, star])
        s.flush()
        return frame.id, star.id


# ----------------------------------------------------------------------------- migrations

def _schema_diff(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "compare_server_default": True})
        return compare_metadata(ctx, Base.metadata)


def test_migrations_create_exactly_the_models_schema(engine):
    assert current_revision(engine) == head_revision() == "0010_pending_version"
    assert TABLES <= set(inspect(engine).get_table_names())
    assert _schema_diff(engine) == []


def _fill_0001_database(url: str) -> None:
    """A database at revision 0001 holding a run, a master, two frames with measurements and
    a zero point (plain SQL: the models describe the newest schema)."""
    from alembic import command
    from sqlalchemy import text

    from clinepipe.store.schema_version import alembic_config

    eng = open_database(url, upgrade=False)
    with eng.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        t = {"t": "2026-03-15 08:00:00"}
        run = conn.execute(text(
            "INSERT INTO runs (started_at, software_version, config_text, config_sha256, "
            "host, pid, status, summary) VALUES (:t, 'old', '', '', 'h', 1, 'finished', '') "
            "RETURNING id"), t).scalar()
        master = conn.execute(text(
            "INSERT INTO masters (kind, binning, night, jd, shape_y, shape_x, path, mode, "
            "n_frames, inputs, input_key, software_version, run_id, created_at) VALUES "
            "('bias', 1, '20260314', 2460000.5, 4, 4, 'masters/b.fits', 'default', 3, '[]', "
            "'k1', 'old', :run, :t) RETURNING id"), {**t, "run": run}).scalar()
        frames = [conn.execute(text(
            "INSERT INTO frames (raw_path, kind, filter, jd_mid, xorg, yorg, state, qc, "
            "bias_master_id, run_id) VALUES (:p, 'light', 'V', 2460000.5, 0, 0, "
            "'calibrated', '', :master, :run) RETURNING id"),
            {"p": f"20260314/Light_00{i}.fit", "master": master, "run": run}).scalar()
            for i in (1, 2)]
        star = conn.execute(text("INSERT INTO stars (ra, dec, n_measurements) "
                                 "VALUES (150.0, 20.0, 2) RETURNING id")).scalar()
        for fid in frames:
            conn.execute(text(
                "INSERT INTO measurements (frame_id, star_id, filter, jd_mid, mag, flags, "
                "in_ensemble) VALUES (:f, :s, 'V', 2460000.5, 15.0, 0, :e)"),
                {"f": fid, "s": star, "e": False})
        conn.execute(text(
            "INSERT INTO zero_points (frame_id, filter, catalog_band, value, error, n_used, "
            "n_candidates, scatter) VALUES (:f, 'V', 'V', 20.0, 0.01, 5, 6, 0.02)"),
            {"f": frames[0]})
    eng.dispose()


def test_upgrade_from_0001_keeps_every_row_and_allows_one_path_per_telescope(db_url):
    _fill_0001_database(db_url)
    eng = open_database(db_url)  # what `clinepipe run` / `db upgrade` do
    try:
        assert current_revision(eng) == head_revision()
        assert _schema_diff(eng) == []
        with session_scope(eng) as s:
            frames = s.execute(select(Frame.telescope, Frame.raw_path, Frame.run_id.is_not(None),
                                      Frame.bias_master_id.is_not(None))
                               .order_by(Frame.id)).all()
            assert [tuple(f) for f in frames] == [("", "20260314/Light_001.fit", True, True),
                                                  ("", "20260314/Light_002.fit", True, True)]
            assert s.scalar(select(func.count()).select_from(Measurement)) == 2
            assert s.scalar(select(func.count()).select_from(ZeroPoint)) == 1
            assert s.scalars(select(Run.telescope)).all() == [""]
            from clinepipe.store.models import Master

            assert s.scalars(select(Master.telescope)).all() == [""]
        with session_scope(eng) as s:  # another telescope's file of the same name
            s.add(Frame(telescope="scope-b", raw_path="20260314/Light_001.fit",
                        state="ingested"))
        with pytest.raises(IntegrityError):  # the same telescope's file twice
            with session_scope(eng) as s:
                s.add(Frame(telescope="scope-b", raw_path="20260314/Light_001.fit",
                            state="ingested"))
        with session_scope(eng) as s:  # foreign keys still enforced after the rebuild
            assert s.scalar(select(func.count()).select_from(Frame)) == 3
        with pytest.raises(IntegrityError):
            with session_scope(eng) as s:
                insert_measurements(s, [_measurement(10**6, 1)])
    finally:
        eng.dispose()


def test_0002_refuses_a_cascading_rebuild_on_sqlite(tmp_path):
    """With foreign keys on, rebuilding `frames` would delete every measurement: refused."""
    from alembic import command

    from clinepipe.store.schema_version import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    _fill_0001_database(url)
    eng = open_database(url, upgrade=False)  # an ordinary connection: foreign keys on
    try:
        with pytest.raises(RuntimeError, match="foreign_keys=OFF"):
            with eng.begin() as conn:
                command.upgrade(alembic_config(conn), "head")
        with session_scope(eng) as s:
            assert s.scalar(select(func.count()).select_from(Measurement)) == 2
        assert current_revision(eng) == "0001"
    finally:
        eng.dispose()


def test_migration_downgrades_to_empty_and_upgrades_again(engine):
    from alembic import command

    from clinepipe.store.schema_version import alembic_config

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert not (TABLES & set(inspect(engine).get_table_names()))
    assert current_revision(engine) is None
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert TABLES <= set(inspect(engine).get_table_names())


def test_autogenerate_finds_nothing_to_add(engine, tmp_path):
    """A developer's `alembic revision --autogenerate` against a current database is empty."""
    from alembic.autogenerate import produce_migrations

    with engine.connect() as conn:
        script = produce_migrations(MigrationContext.configure(conn), Base.metadata)
    assert script.upgrade_ops.is_empty()


def test_reopening_is_a_no_op_and_db_upgrade_reports_head(db_url):
    open_database(db_url).dispose()
    assert upgrade_database(db_url) == head_revision()
    eng = open_database(db_url, upgrade=False)
    assert current_revision(eng) == head_revision()
    eng.dispose()


def test_database_from_a_newer_clinepipe_is_refused_clearly(db_url):
    eng = open_database(db_url)
    with eng.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    eng.dispose()
    with pytest.raises(ClinepipeError, match="'9999' is newer than this clinepipe"):
        open_database(db_url)


def test_open_without_upgrade_leaves_database_empty(db_url):
    eng = open_database(db_url, upgrade=False)
    assert current_revision(eng) is None
    assert not (TABLES & set(inspect(eng).get_table_names()))
    eng.dispose()


def _open_in_child(url: str, barrier, results) -> None:
    from clinepipe.store.db import open_database
    from clinepipe.store.schema_version import current_revision

    try:
        barrier.wait(60)  # every process imported: now open the fresh database at once
        eng = open_database(url)
        results.put(current_revision(eng))
        eng.dispose()
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        results.put(f"error: {exc!r}")


def test_concurrent_first_open_is_safe(db_url):
    ctx = multiprocessing.get_context("spawn")
    n = 3
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_in_child, args=(db_url, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert got == [head_revision()] * n
    eng = open_database(db_url, upgrade=False)
    with eng.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    eng.dispose()


def test_sqlite_settings_and_parent_folder(tmp_path):
    path = tmp_path / "deep" / "er" / "clinepipe.db"
    eng = open_database(f"sqlite:///{path}")
    assert path.is_file()
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    eng.dispose()


@pytest.mark.postgres
def test_postgresql_sessions_run_without_jit_and_keep_the_urls_own_options(new_database_url):
    """JIT compilation costs short index lookups more than they take (393 ms for an 800 ms
    update on ten years of archive): clinepipe's sessions have it off; options given in the
    URL stay in force beside it."""
    url = new_database_url("postgres")
    eng = open_database(url)
    with eng.connect() as conn:
        assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
    eng.dispose()
    mine = make_url(url).update_query_dict({"options": "-c statement_timeout=4321"})
    eng = open_database(mine.render_as_string(hide_password=False))
    with eng.connect() as conn:
        assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "4321ms"
    eng.dispose()
    both = make_url(url).update_query_dict(
        {"options": ["-c statement_timeout=4321", "-c lock_timeout=1234"]})
    eng = open_database(both.render_as_string(hide_password=False))
    with eng.connect() as conn:
        assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "4321ms"
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "1234ms"
    eng.dispose()


def test_fetched_tuples_are_the_rows_sqlalchemy_gives_and_binary_on_postgresql(db_url):
    """``fetch_tuples`` (the driver's tuples; PostgreSQL's binary format through psycopg) gives
    exactly the values of SQLAlchemy's own rows: floats to the last bit (a text round trip of
    a float8 would be the one place for a difference), NULLs, text, integers, a count; the
    bound parameters of an IN list and a literal; inside a session's transaction it sees the
    session's uncommitted rows. On PostgreSQL the rows really came in the binary format."""
    import math

    from sqlalchemy import event, literal

    from clinepipe.store.fetch import fetch_tuples

    eng = open_database(db_url)
    fid, sid = _frame_and_star(eng)
    values = [math.pi, 1 / 3, 2.0 ** -1074, 1e300, -2.5e-17, 0.1 + 0.2, None]
    formats = []
    if eng.dialect.name == "postgresql":
        @event.listens_for(eng, "after_cursor_execute")
        def _format(conn, cursor, statement, parameters, context, executemany):
            formats.append(cursor.pgresult.fformat(0))
    M = Measurement.__table__.c
    stmt = (select(M.id, M.star_id, M.mag, M.mag_err, M.filter, func.coalesce(M.filter, literal("")),
                   M.in_ensemble)
            .where(M.frame_id.in_([fid, fid + 1000])).order_by(M.id))
    with session_scope(eng) as s:
        stars = [Star(ra=150.0 + i, dec=20.0) for i in range(len(values))]
        s.add_all(stars)
        s.flush()
        insert_measurements(s, [_measurement(fid, st.id, mag=v, mag_err=v, filter=f)
                                for st, v, f in zip(stars, values, ["V", "R"] * 4)])
        formats.clear()
        got = fetch_tuples(s, stmt)  # the session's rows, not yet committed
        if eng.dialect.name == "postgresql":
            import psycopg

            assert formats == [psycopg.pq.Format.BINARY]
        want = [tuple(r) for r in s.execute(stmt).all()]
    assert len(got) == len(values) and got == want
    assert [r[2] for r in got][:-1] == values[:-1] and got[-1][2] is None and got[-1][3] is None
    with eng.connect() as conn:
        assert fetch_tuples(conn, select(func.count()).select_from(Measurement.__table__)) \
            == [(len(values),)]
    eng.dispose()


def test_distinct_values_walk_the_index_and_give_what_select_distinct_gives(db_url):
    """``distinct_values`` (a recursive walk from value to value) against ``SELECT DISTINCT``:
    nights with gaps and frames without a night (NULL last), states, one or two telescopes,
    a limit, an empty table; inside a session, its uncommitted frames."""
    from clinepipe.store.distinct import distinct_values
    from clinepipe.store.tables import frames

    eng = open_database(db_url)
    F = frames.c
    with eng.connect() as conn:
        assert distinct_values(conn, F.night) == [] and distinct_values(conn, F.state) == []
    nights = ["20260101", None, "20251231", "20260101", "20260315", None, "20260102"]
    with session_scope(eng) as s:
        s.add_all(Frame(raw_path=f"n/{i}.fits", kind="light", night=n,
                        state=("failed", "calibrated", "ingested")[i % 3])
                  for i, n in enumerate(nights))
        s.flush()
        assert distinct_values(s, F.night) == ["20251231", "20260101", "20260102", "20260315",
                                               None]
        assert distinct_values(s, F.night, limit=2) == ["20251231", "20260101"]
        assert distinct_values(s, F.telescope, limit=2) == [""]
        s.add(Frame(raw_path="n/east.fits", kind="light", telescope="east", state="failed"))
        s.flush()
        for col in (F.night, F.state, F.telescope):
            want = sorted(s.execute(select(col).distinct()).scalars(),
                          key=lambda v: (v is None, v or ""))
            assert distinct_values(s, col) == want
        assert distinct_values(s, F.telescope, limit=2) == ["", "east"]
        assert distinct_values(s, F.night, limit=5)[-1] is None
    eng.dispose()


def test_in_memory_sqlite_works(tmp_path):
    eng = open_database("sqlite://")
    assert current_revision(eng) == head_revision()
    fid, sid = _frame_and_star(eng)
    with session_scope(eng) as s:
        insert_measurements(s, [_measurement(fid, sid)])
    assert len(lightcurve(eng, sid)) == 1
    eng.dispose()


def test_unreachable_database_is_one_sentence_with_masked_password():
    url = "postgresql+psycopg://astro:s3cret@127.0.0.1:1/clinepipe"
    with pytest.raises(ClinepipeError) as err:
        open_database(url)
    message = err.value.message
    assert "s3cret" not in message and "astro:***@127.0.0.1:1/clinepipe" in message
    assert "\n" not in message and message.endswith(".")
    assert mask_url(url) == "postgresql+psycopg://astro:***@127.0.0.1:1/clinepipe"


def test_unusable_sqlite_path_and_bad_urls(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ClinepipeError, match="cannot open the database"):
        open_database(f"sqlite:///{blocker}/sub/x.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ClinepipeError, match="garbage.db"):
        open_database(f"sqlite:///{garbage}")
    with pytest.raises(ConfigError):
        open_database("not a url")
    with pytest.raises(ConfigError, match="unsupported"):
        open_database("oracle+nothing://u:p@h/db")


# ----------------------------------------------------------------------------- constraints

def test_unique_constraints_refuse_duplicates(engine):
    fid, sid = _frame_and_star(engine)
    with session_scope(engine) as s:
        insert_measurements(s, [_measurement(fid, sid)])
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            insert_measurements(s, [_measurement(fid, sid, mag=16.0)])
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add(Frame(raw_path="a/light.fits", state="ingested"))
    with session_scope(engine) as s:  # the same path on another telescope is another file
        s.add(Frame(telescope="scope-b", raw_path="a/light.fits", state="ingested"))
    with session_scope(engine) as s:
        s.add(ZeroPoint(frame_id=fid, filter="V", catalog_band="V", value=20.0, error=0.01,
                        n_used=5, n_candidates=6, scatter=0.02))
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add(ZeroPoint(frame_id=fid, filter="V", catalog_band="V", value=21.0, error=0.01,
                            n_used=5, n_candidates=6, scatter=0.02))
    with pytest.raises(IntegrityError):  # foreign keys are enforced (SQLite too)
        with session_scope(engine) as s:
            insert_measurements(s, [_measurement(fid, sid + 1000)])
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Measurement)) == 1
        assert s.scalar(select(Measurement.mag)) == 15.0


def test_reprocess_replaces_a_frames_results(engine):
    fid, sid = _frame_and_star(engine)
    with session_scope(engine) as s:
        other = Star(ra=150.1, dec=20.1)
        s.add(other)
        s.flush()
        sid2 = other.id
    for attempt in range(3):  # store, then redo twice as `run --reprocess` does
        with session_scope(engine) as s:
            deleted = delete_frame_results(s, fid)
            assert deleted == (0 if attempt == 0 else 2)
            n = insert_measurements(s, [_measurement(fid, sid, mag=15.0 + attempt),
                                        _measurement(fid, sid2)])
            s.add(ZeroPoint(frame_id=fid, filter="V", catalog_band="V", value=20.0 + attempt,
                            error=0.01, n_used=5, n_candidates=6, scatter=0.02))
            assert n == 2
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Measurement)) == 2
        assert s.scalar(select(func.count()).select_from(ZeroPoint)) == 1
        assert s.scalar(select(Measurement.mag).where(Measurement.star_id == sid)) == 17.0


def test_deleting_a_frame_cascades(engine):
    fid, sid = _frame_and_star(engine)
    with session_scope(engine) as s:
        insert_measurements(s, [_measurement(fid, sid)])
        s.add(ZeroPoint(frame_id=fid, filter="V", catalog_band="V", value=20.0, error=0.01,
                        n_used=5, n_candidates=6, scatter=0.02))
    with session_scope(engine) as s:
        s.execute(delete(Frame).where(Frame.id == fid))
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Measurement)) == 0
        assert s.scalar(select(func.count()).select_from(ZeroPoint)) == 0


def test_insert_measurements_fills_keys_missing_from_some_rows(engine):
    fid, sid = _frame_and_star(engine)
    with session_scope(engine) as s:
        other = Star(ra=150.1, dec=20.1)
        s.add(other)
        s.flush()
        minimal = {k: v for k, v in _measurement(fid, other.id).items()
                   if k not in ("flags", "in_ensemble", "bjd_tdb", "fwhm")}
        assert insert_measurements(s, [_measurement(fid, sid, flags=4), minimal]) == 2
        assert insert_measurements(s, []) == 0
    with session_scope(engine) as s:
        got = dict(s.execute(select(Measurement.star_id, Measurement.flags)).all())
    assert got == {sid: 4, other.id: 0}


def test_session_scope_commits_or_rolls_back(engine):
    with pytest.raises(RuntimeError):
        with session_scope(engine) as s:
            s.add(Run(started_at=__import__("datetime").datetime(2024, 1, 1),
                      software_version="x"))
            s.flush()
            raise RuntimeError("boom")
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 0
        run = Run(started_at=__import__("datetime").datetime(2024, 1, 1), software_version="x")
        s.add(run)
    assert run.id is not None and run.software_version == "x"  # readable after commit


def _runs_seen_by_another_connection(url) -> int:
    other = open_database(url, upgrade=False)
    try:
        with session_scope(other) as s:
            return s.scalar(select(func.count()).select_from(Run))
    finally:
        other.dispose()


def test_batched_transaction_commits_whole_units(db_url):
    """Units become visible together every max_units; a failure discards only the open batch
    (its units are redone by the next run), never part of a unit."""
    import datetime

    engine = open_database(db_url)
    started = datetime.datetime(2024, 1, 1)
    try:
        with BatchedTransaction(engine, max_units=3, max_seconds=3600) as batch:
            for k in range(2):
                with batch.unit() as s:
                    s.add(Run(started_at=started, software_version=f"u{k}"))
            assert _runs_seen_by_another_connection(db_url) == 0  # not committed yet
            with batch.unit() as s:
                s.add(Run(started_at=started, software_version="u2"))
            assert _runs_seen_by_another_connection(db_url) == 3  # the batch is due
            with batch.unit() as s:
                s.add(Run(started_at=started, software_version="u3"))
            with pytest.raises(RuntimeError):
                with batch.unit() as s:
                    s.add(Run(started_at=started, software_version="half"))
                    s.flush()
                    raise RuntimeError("boom")
            assert _runs_seen_by_another_connection(db_url) == 3  # u3 went with the failure
            with batch.unit() as s:
                s.add(Run(started_at=started, software_version="u4"))
        # leaving the block commits what is open
        with session_scope(engine) as s:
            versions = sorted(s.scalars(select(Run.software_version)))
        assert versions == ["u0", "u1", "u2", "u4"]

        with BatchedTransaction(engine, max_units=100, max_seconds=0.0) as batch:
            with batch.unit() as s:  # max_seconds 0: every unit commits at once
                s.add(Run(started_at=started, software_version="u5"))
            assert _runs_seen_by_another_connection(db_url) == 5
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------- light curves

def test_lightcurve_rows(small_store):
    engine, ids = small_store
    star1, star2, star3, star4 = ids["stars"]
    f1, f2, f3, f4, f5, _bias = ids["frames"]
    rows = lightcurve(engine, star1)
    assert [list(r) for r in rows] == [list(LIGHTCURVE_COLUMNS)] * 5
    assert [r["jd_mid"] for r in rows] == sorted(r["jd_mid"] for r in rows)
    assert [r["frame"] for r in rows] == ["night1/lights/v_001.fits", "night1/lights/r_001.fits",
                                          "night1/lights/v_002.fits",
                                          "night2/lights/red_001.fits", "night2/lights/v_003.fits"]
    first = rows[0]
    assert first == {"star_id": star1, "ra": 150.0, "dec": 20.0, "filter": "V",
                     "jd_mid": 2460000.60, "bjd_tdb": 2460000.60 + 0.004, "mag": 12.0,
                     "mag_err": 0.015, "inst_mag": -8.0, "inst_mag_err": 0.01,
                     "zero_point": 20.0, "airmass": 1.25, "exptime": 60.0,
                     "frame": "night1/lights/v_001.fits", "flags": 0}
    assert rows[-1]["zero_point"] is None and rows[-1]["mag"] is None
    # star 3 has no airmass of its own: the frame's is used
    assert lightcurve(engine, star3)[1]["airmass"] == pytest.approx(1.21)
    assert [r["flags"] for r in lightcurve(engine, star3)] == [1, 0, 0, 0, 0]  # saturated once
    assert [r["filter"] for r in lightcurve(engine, star1, filter="V")] == ["V"] * 3
    window = lightcurve(engine, star1, since=2460000.605, until=2460001.6)
    assert [r["frame"].rsplit("/", 1)[1] for r in window] == ["r_001.fits", "v_002.fits",
                                                               "red_001.fits"]
    assert lightcurve(engine, star4) == [] and lightcurve(engine, 999999) == []
    with session_scope(engine) as s:
        assert lightcurve(s, star1) == rows
    with engine.connect() as conn:
        assert lightcurve(conn, star1) == rows


def test_lightcurve_uses_the_star_points_index(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    from clinepipe.store.measurement_rows import measurement_select

    stmt = measurement_select([1], "V", order="star")
    with engine.connect() as conn:
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = " ".join(str(r) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "ix_measurements_star_points" in plan
    engine.dispose()


# ----------------------------------------------------------------------------- legacy import

LEGACY_ROWS = [
    # id, RA_C, DEC_C, RA_M, DEC_M, DIF, MAG_R, MAG_V, MAG_B, MAG_err, CMAG_R, CMAG_V, CMAG_B,
    # DATETIME, IMGNAME
    "UCAC4 456-000001,150.000000,20.000000,150.000100,20.000050,0.4,11.80,12.10,12.90,0.020,,12.050,,2018-03-15T03:22:11.000,light_V_001.fit",
    "UCAC4 456-000002,150.010000,20.010000,150.010100,20.010000,0.3,10.70,11.00,11.60,0.010,,10.980,,2018-03-15T03:22:11.000,light_V_001.fit",
    "UCAC4 456-000001,150.000000,20.000000,150.000080,20.000020,0.3,11.80,12.10,12.90,0.025,11.750,nan,,2018-03-15 03:30:00,light_R_001.fit",
    "UCAC4 456-000002,150.010000,20.010000,150.010050,20.010010,0.2,10.70,11.00,11.60,0.012,10.660,,,2018-03-15 03:30:00,light_R_001.fit",
    ",,,150.020000,19.990000,,,,,0.050,13.100,,,2018-03-15 03:30:00,light_R_001.fit",
    "UCAC4 456-000001,150.000000,20.000000,150.000090,20.000040,0.3,11.80,12.10,12.90,0.030,,,12.950,2018-03-16T02:00:00Z,light_B_001.fit",
]


def _write_legacy(path: Path) -> Path:
    r = LEGACY_ROWS
    body = (r[0] + "\r\n" + r[1] + "\n" + r[0] + "\r"            # CRLF, LF, CR; r[0] repeated
            + "\r\n"                                               # a blank line
            + r[2] + "\r\n" + "garbage,line,with,too,few\n"        # a malformed line
            + r[3] + "\r" + r[4] + "\n"
            + "UCAC4 456-000009,1.0,2.0,3.0,4.0,0.1,1,2,3,0.1,,x12,,2018-03-15T03:22:11,bad.fit\n"
            + r[5] + "\r\n" + r[2] + "\n" + "   \r\n")             # duplicate again, blank line
    path.write_bytes(body.encode())
    return path


def _counts(engine) -> dict:
    with session_scope(engine) as s:
        return {name: s.scalar(select(func.count()).select_from(model))
                for name, model in (("frames", Frame), ("stars", Star),
                                    ("measurements", Measurement), ("matches", CatalogMatch))}


def test_legacy_import_mixed_endings_duplicates_bad_lines_and_twice(engine, tmp_path):
    path = _write_legacy(tmp_path / "sources.csv")
    first = import_sources_csv(engine, path)
    assert (first.rows_read, first.rows_imported, first.duplicates_skipped, first.bad_lines) == (
        10, 6, 2, 2)
    assert first.frames_created == 3 and first.stars_created == 3
    counts = _counts(engine)
    assert counts == {"frames": 3, "stars": 3, "measurements": 6, "matches": 2}

    second = import_sources_csv(engine, path)
    assert (second.rows_read, second.rows_imported, second.duplicates_skipped,
            second.bad_lines) == (10, 0, 8, 2)
    assert _counts(engine) == counts
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 2
        assert set(s.scalars(select(Run.status))) == {"finished"}
        frames = {f.raw_path: f for f in s.scalars(select(Frame))}
        assert set(frames) == {"legacy/light_V_001.fit", "legacy/light_R_001.fit",
                               "legacy/light_B_001.fit"}
        v = frames["legacy/light_V_001.fit"]
        assert (v.filter, v.kind, v.state, v.night) == ("V", "light", "calibrated", "20180314")
        assert v.jd_mid == pytest.approx(2458192.640405, abs=1e-6)
        assert frames["legacy/light_B_001.fit"].filter == "B"
        assert frames["legacy/light_R_001.fit"].filter == "R"
        star = s.scalars(select(Star).where(Star.catalog_id == "UCAC4 456-000001")).one()
        assert star.n_measurements == 3
        match = s.scalars(select(CatalogMatch).where(CatalogMatch.star_id == star.id)).one()
        assert match.catalog == LEGACY_CATALOG and match.separation == pytest.approx(0.4, abs=0.1)
    rows = lightcurve(engine, star.id)
    assert [(r["filter"], r["mag"]) for r in rows] == [("V", 12.05), ("R", 11.75), ("B", 12.95)]
    assert rows[1]["frame"] == "legacy/light_R_001.fit" and rows[1]["ra"] == 150.00008


def test_legacy_import_matches_existing_stars_by_position(engine, tmp_path):
    with session_scope(engine) as s:
        s.add(Star(ra=150.0000, dec=20.0001, catalog_id="file-17"))  # 0.36" from the catalog
    path = tmp_path / "s.csv"
    path.write_text(LEGACY_ROWS[0] + "\n"
                    + ",,,150.020000,19.990000,,,,,0.050,,13.100,,2018-03-15T03:22:11,"
                      "light_V_001.fit\n")
    summary = import_sources_csv(engine, path)
    assert (summary.rows_imported, summary.stars_created) == (2, 1)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Star)) == 2
        assert s.scalar(select(Star.catalog_id).where(Star.ra == 150.0)) == "file-17"


def test_legacy_import_never_crashes_on_junk(engine, tmp_path):
    path = tmp_path / "junk.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\r\n,,,,\n\"unclosed,quote\n" + b"1," * 40 + b"\n")
    summary = import_sources_csv(engine, path)
    assert summary.rows_imported == 0 and summary.bad_lines == summary.rows_read
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert import_sources_csv(engine, empty).rows_read == 0



@pytest.mark.parametrize("typed", ["150.0 20.0", "10 00 00 +20 00 00", "10:00:00.0 +20:00:00",
                                   "10h00m00s +20d00m00s", "10 00 00.2, +20 00 01"])
def test_a_star_is_found_by_a_position_in_degrees_or_sexagesimal(small_store, typed):
    """RA 150 deg = 10 h: every way a user types a position finds star 1 (issue 19, item 12)."""
    from clinepipe.store.db import session_scope
    from clinepipe.store.queries import resolve_star

    engine, ids = small_store
    with session_scope(engine) as s:
        assert resolve_star(s, typed) == ids["stars"][0]


def test_a_position_with_no_star_names_the_position(small_store):
    from clinepipe.errors import UsageError
    from clinepipe.store.db import session_scope
    from clinepipe.store.queries import resolve_star

    engine, _ = small_store
    with session_scope(engine) as s, pytest.raises(UsageError, match=r"RA 165\.00000 Dec \+21"):
        resolve_star(s, "11 00 00 +21 00 00")


@pytest.mark.postgres
def test_the_run_plans_no_parallel_query_on_postgresql_and_readers_may(new_database_url):
    """The run's engine plans no parallel query (a night's rows are read through indexes, where
    the planner's costs choose parallel scans of whole tables); readers keep the server's
    setting; JIT is off for both."""
    url = new_database_url("postgres")
    for parallel, want in ((False, "0"), (True, None)):
        engine = open_database(url, parallel_plans=parallel)
        try:
            with engine.connect() as conn:
                got = conn.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar()
                assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
        finally:
            engine.dispose()
        assert got == want if want is not None else got != "0"
