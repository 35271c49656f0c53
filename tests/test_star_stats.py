"""The stored per star and filter statistics (``star_stats``) equal those the statistics module
computes from the measurements, after each of several runs (a new night, a reprocess), through
every reader (``variables``, ``stars``, ``lc``), and after a rebuild (the migration's fill); the
stored periods (``star_periods``) give ``variables`` byte for byte the output of the search."""
import shutil
from contextlib import contextmanager

import numpy as np
import pytest
from run_snapshots import copy_database, copy_night
from sqlalchemy import func, select, update

from clinepipe.config import load_config
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import (
    Frame,
    Measurement,
    StarPeriod,
    StarStat,
    StarStatPending,
)
from clinepipe.variability.points import variability_points
from clinepipe.variability.star_stats import (
    count_measurements,
    read_statistics,
    rebuild_star_stats,
)
from clinepipe.variability.statistics import MIN_POINTS
from clinepipe.variability.table import points_statistics, variability_table

TOL = 1e-9


def _scan(engine, exclude_qc=("clouds", "trailed"), min_points=MIN_POINTS):
    """The statistics as before the table: one scan of every measurement."""
    points = variability_points(engine, exclude_qc=exclude_qc)
    groups = points_statistics(points, min_points=1, find_periods=False).groups
    periods = points_statistics(points, min_points=min_points).periods
    return groups, periods


def _stored_rows(engine) -> dict:
    with session_scope(engine) as s:
        return {(r.star_id, r.filter): r for r in s.scalars(select(StarStat))}


def assert_table_matches_scan(engine):
    groups, _ = _scan(engine)
    rows = _stored_rows(engine)
    assert groups.n.size > 50  # the night's stars, in two filters
    for i, (sid, f) in enumerate(zip(groups.labels[0].tolist(), groups.labels[1].tolist())):
        r = rows[(sid, f)]
        assert r.n == groups.n[i]
        for name in ("mean_mag", "rms", "chi2_red", "stetson_j"):
            want = float(getattr(groups, name)[i])
            got = np.nan if getattr(r, name) is None else getattr(r, name)
            assert got == pytest.approx(want, abs=TOL, nan_ok=True), (sid, f, name)
    used = {k for k, r in rows.items() if r.n > 0}
    assert used == set(zip(groups.labels[0].tolist(), groups.labels[1].tolist()))
    with session_scope(engine) as s:
        n_all = dict(s.execute(select(Measurement.star_id, func.count())
                               .group_by(Measurement.star_id)).all())
        assert s.scalar(select(func.count()).select_from(StarStatPending)) == 0
    stored = {}
    for (sid, _), r in rows.items():
        stored[sid] = stored.get(sid, 0) + r.n_all
    assert stored == n_all


def assert_readers_match_scan(engine, exclude_qc=("clouds", "trailed"), min_points=MIN_POINTS):
    groups, periods = _scan(engine, exclude_qc, min_points)
    got = read_statistics(engine, exclude_qc, min_points=min_points, find_periods=True)
    for a, b in zip(got.groups.labels, groups.labels):
        assert a.tolist() == b.tolist()
    for name in ("n", "mean_mag", "rms", "chi2_red", "stetson_j"):
        np.testing.assert_allclose(getattr(got.groups, name), getattr(groups, name),
                                   rtol=0, atol=TOL, equal_nan=True)
    keep = got.groups.n >= min_points
    searched = {s: p for s, p in periods.items() if p is not None}
    assert {s: round(p.period, 9) for s, p in got.periods.items()
            if s in set(got.groups.labels[0][keep].tolist())} == \
        {s: round(p.period, 9) for s, p in searched.items()}
    table = variability_table(engine, exclude_qc=exclude_qc, min_points=min_points)
    assert len(table) == int(keep.sum())


@contextmanager
def _count_searches():
    """Count the stars the period search is run on (``searched[0]``) while inside; with
    ``searched.on_the_fly()`` the stored periods are ignored: every reader searches, as
    before ``star_periods`` existed."""
    from clinepipe.variability import star_periods

    searched = [0]
    search, stored = star_periods.search_periods, star_periods.stored_periods

    def counting(conn, stars, *args, **kwargs):
        searched[0] += len(stars)
        return search(conn, stars, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(star_periods, "search_periods", counting)

        def on_the_fly():
            mp.setattr(star_periods, "stored_periods", lambda conn, keys: {})
        yield searched, on_the_fly
        mp.setattr(star_periods, "stored_periods", stored)


def _variables(cfg_path, *args) -> tuple[str, int]:
    """``clinepipe variables`` stdout and the number of stars whose period it searched."""
    from typer.testing import CliRunner

    from clinepipe.cli import app

    with _count_searches() as (searched, _):
        r = CliRunner().invoke(app, ["--config", str(cfg_path), "variables", *args])
    assert r.exit_code == 0, r.output
    return r.stdout, searched[0]


def _variables_on_the_fly(cfg_path, *args) -> str:
    """``clinepipe variables`` stdout with every period searched (the stored ones ignored)."""
    from typer.testing import CliRunner

    from clinepipe.cli import app

    with _count_searches() as (_searched, on_the_fly):
        on_the_fly()
        r = CliRunner().invoke(app, ["--config", str(cfg_path), "variables", *args])
    assert r.exit_code == 0, r.output
    return r.stdout


def _stored_periods(engine) -> dict:
    with session_scope(engine) as s:
        return {r.star_id: (r.points_key, r.period, r.fap) for r in s.scalars(select(StarPeriod))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Night 1 alone, then night 2 added, then ``run --reprocess``: the table after each. Six
    lights per filter and night: after two nights a star has the points for a period search."""
    from clinepipe.simulate import simulate_night

    folder = tmp_path_factory.mktemp("star_stats")
    two_nights = simulate_night(folder / "sim", seed=12, nights=2, width=256, height=256,
                                n_stars=100, lights_per_filter=6)
    cfg_path = copy_night(two_nights, folder / "n")
    later = folder / "later"
    shutil.move(str(cfg_path.parent / "incoming" / two_nights.nights[1]), later)
    cfg = load_config(cfg_path)
    engine = open_database(cfg.database.url)
    after, variables = {}, {}

    def record(name):
        after[name] = (_stored_rows(engine), _scan(engine))
        variables[name] = (*_variables(cfg_path), _variables_on_the_fly(cfg_path),
                           _stored_periods(engine))

    run_pipeline(cfg, settle_seconds=0)
    record("night 1")
    shutil.move(str(later), cfg_path.parent / "incoming" / two_nights.nights[1])
    run_pipeline(cfg, settle_seconds=0)
    record("night 2")
    run_pipeline(cfg, reprocess=True, settle_seconds=0)
    record("reprocess")
    yield cfg, engine, after, variables
    engine.dispose()


def test_the_table_equals_the_statistics_of_the_measurements_after_each_run(runs):
    _cfg, engine, after, _ = runs
    assert_table_matches_scan(engine)
    rows1, _ = after["night 1"]
    rows2, _ = after["night 2"]
    # the second night changed the rows of the stars it measured: n grew
    grew = [k for k in rows1 if k in rows2 and rows2[k].n > rows1[k].n]
    assert len(grew) > 50
    # and the reprocess (same frames again) gives the same rows as before it
    rows3 = _stored_rows(engine)
    assert rows3.keys() == rows2.keys()
    for k, r in rows3.items():
        assert r.n == rows2[k].n
        assert (r.mean_mag is None) == (rows2[k].mean_mag is None)
        if r.mean_mag is not None:
            assert r.mean_mag == pytest.approx(rows2[k].mean_mag, abs=TOL)


def test_readers_equal_a_scan_of_the_measurements(runs):
    _cfg, engine, _, _ = runs
    assert_readers_match_scan(engine)
    # other --min-points and other QC flags than the stored rows': computed, still equal
    assert_readers_match_scan(engine, min_points=3)
    assert_readers_match_scan(engine, exclude_qc=())


def test_a_change_without_a_run_is_seen_by_readers_until_the_run_recomputes(runs, tmp_path):
    cfg, _engine, _, _ = runs
    _, copy = copy_database(cfg, tmp_path / "copy.db")
    from clinepipe.store.measurement_rows import delete_frame_results

    with session_scope(copy) as s:
        frame_id = s.scalar(select(Frame.id).where(Frame.kind == "light").order_by(Frame.id))
        on_frame = s.scalar(select(func.count(Measurement.star_id.distinct()))
                            .where(Measurement.frame_id == frame_id))
        delete_frame_results(s, frame_id)  # marks the frame's stars
        assert s.scalar(select(func.count()).select_from(StarStatPending)) == on_frame > 20
    assert_readers_match_scan(copy)
    with session_scope(copy) as s:  # a QC flag the statistics leave out, and a rebuild
        s.execute(update(Frame).where(Frame.id == frame_id + 1).values(qc="clouds"))
        rebuild_star_stats(s)
    assert_table_matches_scan(copy)
    assert_readers_match_scan(copy)
    copy.dispose()


def test_the_measurement_count_from_the_table_equals_a_count_of_the_measurements(
        runs, tmp_path):
    cfg, engine, _, _ = runs

    def counted(db):
        with session_scope(db) as s:
            return count_measurements(s), s.scalar(select(func.count()).select_from(Measurement))

    got, truth = counted(engine)
    assert got == truth > 1000
    _, copy = copy_database(cfg, tmp_path / "copy.db")
    from clinepipe.store.measurement_rows import delete_frame_results

    with session_scope(copy) as s:  # stale rows (pending stars) and stars without rows
        frame_id = s.scalar(select(Frame.id).where(Frame.kind == "light").order_by(Frame.id))
        delete_frame_results(s, frame_id)
        assert s.scalar(select(func.count()).select_from(StarStatPending)) > 20
        s.execute(StarStat.__table__.delete().where(StarStat.star_id <= 10))
    got, truth = counted(copy)
    assert got == truth < counted(engine)[1]
    copy.dispose()


def test_the_known_variable_gets_its_period_from_the_table_readers(runs):
    """The simulated field's eclipsing binary: ``variables`` finds the period a scan finds."""
    _cfg, engine, _, _ = runs
    _, periods = _scan(engine)
    periods = {s: p for s, p in periods.items() if p is not None}
    assert periods
    table = {r.star_id: r.period_days for r in variability_table(engine)}
    for sid, p in periods.items():
        assert table[sid] == pytest.approx(p.period, abs=TOL)


def test_variables_reads_the_stored_periods_and_prints_what_the_search_prints(runs):
    """After each run (a new night, then a reprocess) ``variables`` searches no star, and its
    output, periods and false-alarm probabilities included, is byte for byte that of the search
    made at every call (the same function on the same points: no tolerance)."""
    _cfg, engine, _, variables = runs
    for name, (stored, searched, on_the_fly, _rows) in variables.items():
        assert searched == 0, name
        assert stored == on_the_fly, name
    _, _, _, rows = variables["reprocess"]
    _, periods = _scan(engine)
    # a row for each star the search calls variable (the simulated binary among them), with
    # the period and false-alarm probability of the search
    assert any(p is not None for p in periods.values())
    assert set(rows) == set(periods)
    for sid, p in periods.items():
        assert (rows[sid][1], rows[sid][2]) == ((p.period, p.fap) if p else (None, None))
    # the reprocess measured the same frames again: the same points, the same periods
    night2 = variables["night 2"][3]
    assert {s: r[1:] for s, r in night2.items()} == {s: r[1:] for s, r in rows.items()}
    assert variables["night 2"][0].count("\n") > 10


def test_a_star_whose_points_change_gets_a_new_period(runs, tmp_path):
    """A light's results deleted: readers search the changed variable stars (not the stored
    periods) until the run's step recomputes them; then the stored periods are those of the
    search on the new points, and ``variables`` searches nothing again."""
    from clinepipe.store.measurement_rows import delete_frame_results
    from clinepipe.variability.star_stats import update_star_stats

    cfg, _engine, _, _ = runs
    _, copy = copy_database(cfg, tmp_path / "copy.db")
    before = _stored_periods(copy)
    variable = sorted(s for s, r in before.items() if r[1] is not None)
    assert variable
    with session_scope(copy) as s:
        frame_id = s.scalar(select(Frame.id).where(Frame.kind == "light")
                            .join(Measurement, Measurement.frame_id == Frame.id)
                            .where(Measurement.star_id == variable[0]).order_by(Frame.id))
        delete_frame_results(s, frame_id)
    exclude = tuple(cfg.qc.exclude_from_variability)
    with _count_searches() as (searched, _):
        assert_readers_match_scan(copy, exclude)
        assert searched[0] >= 1  # the pending star is searched, not read
        update_star_stats(copy, exclude, cfg.site.telescope, [])
    after = _stored_periods(copy)
    _, periods = _scan(copy, exclude)
    assert set(after) == set(periods)
    for sid, p in periods.items():
        assert (after[sid][1], after[sid][2]) == ((p.period, p.fap) if p else (None, None))
    # the changed star has a new digest and a new period (a point fewer: not the same search)
    assert after[variable[0]][0] != before[variable[0]][0]
    assert after[variable[0]][1:] != before[variable[0]][1:]
    with _count_searches() as (searched, _):
        assert_readers_match_scan(copy, exclude)
        assert searched[0] == 0
    copy.dispose()


def test_without_stored_periods_readers_search_and_say_so_and_the_run_stores_them(
        runs, tmp_path, caplog):
    """Right after the upgrade to revision 0007 the table is empty: ``variables`` searches
    (and logs that it does) with the same result; the next run's step stores every variable
    star's period once, and nothing the night after."""
    import logging

    from sqlalchemy import delete

    from clinepipe.variability.star_stats import update_star_periods

    cfg, engine, _, variables = runs
    _, copy = copy_database(cfg, tmp_path / "copy.db")
    with session_scope(copy) as s:
        s.execute(delete(StarPeriod))
    exclude = tuple(cfg.qc.exclude_from_variability)
    with _count_searches() as (searched, _), caplog.at_level(logging.WARNING):
        want = variability_table(engine, exclude_qc=exclude)
        assert variability_table(copy, exclude_qc=exclude) == want
        n = searched[0]
        assert n == len(variables["reprocess"][3]) > 0
        assert "without a period stored" in caplog.text
        assert update_star_periods(copy, exclude) == n
        assert update_star_periods(copy, exclude) == 0
    assert _stored_periods(copy) == _stored_periods(engine)
    copy.dispose()


def test_a_change_marked_while_the_rows_are_computed_keeps_its_mark(runs, tmp_path):
    """The run computes the rows beside its later steps and stores them at its end: a star
    marked again in between (another program's change the rows may not hold) stays pending,
    and the next update recomputes it; the others' marks are cleared."""
    from clinepipe.store.measurement_rows import (
        delete_frame_results,
        mark_stars_pending,
    )
    from clinepipe.variability.star_stats import (
        compute_update,
        stars_to_update,
        store_update,
        update_star_stats,
    )

    cfg, _engine, _, _ = runs
    _, copy = copy_database(cfg, tmp_path / "copy.db")
    exclude = tuple(cfg.qc.exclude_from_variability)
    with session_scope(copy) as s:
        frame_id = s.scalar(select(Frame.id).where(Frame.kind == "light").order_by(Frame.id))
        delete_frame_results(s, frame_id)
    update = stars_to_update(copy, exclude, cfg.site.telescope, [])
    assert len(update.marks) > 10 and set(update.marks) == set(update.ids)
    with copy.connect() as conn:
        result = compute_update(conn, update)
    again = sorted(update.marks)[:2]
    with session_scope(copy) as s:  # committed after the read, before the store
        mark_stars_pending(s, again)
    store_update(copy, update, result)
    with session_scope(copy) as s:
        left = dict(s.execute(select(StarStatPending.star_id, StarStatPending.version)).all())
    assert left == {sid: update.marks[sid] + 1 for sid in again}
    assert_readers_match_scan(copy, exclude)  # the marked stars are read live meanwhile
    update_star_stats(copy, exclude, cfg.site.telescope, [])
    assert_table_matches_scan(copy)  # (and no mark left)
    copy.dispose()
