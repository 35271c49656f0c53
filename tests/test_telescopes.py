"""Several telescopes, one database: two simulated telescopes whose cameras write the same
relative file names into their own incoming folders, with their own archives and configs,
sharing one SQLite database. Checked against the simulator's truth."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from clinepipe.config import config_from_dict, load_config
from clinepipe.run.pipeline import adopt_untagged_rows, run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Master, Measurement, Run, Star, ZeroPoint

A, B = "scope-a", "scope-b"
CLOUDY = 3  # the 4th light of the night on telescope A only
#: telescope B is a smaller instrument: every zero point this much fainter than A's. Over one
#: mixed night all of B's frames would sit far below A's extinction line ("clouds").
B_FAINTER = 0.8


def _configure(sim, telescope: str, db: Path) -> Path:
    """The simulator's config with this telescope's name and the shared database."""
    text = sim.config_path.read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///clinepipe.db"', f'url = "sqlite:///{db.as_posix()}"')
    assert 'telescope = ""' in text  # the simulator names the key, empty
    text = text.replace('telescope = ""', f'telescope = "{telescope}"', 1)
    sim.config_path.write_text(text, encoding="utf-8")
    return sim.config_path


@pytest.fixture(scope="module")
def scopes(tmp_path_factory):
    """Both telescopes' night (same seed: same field, times and file names; B another camera
    (bias level) with fainter zero points, A with one cloudy light), each run once into one
    database."""
    from clinepipe.simulate import simulate_night
    from clinepipe.simulate.spec import SimulationSpec

    root = tmp_path_factory.mktemp("telescopes")
    small = dict(seed=41, width=160, height=160, n_stars=70, lights_per_filter=5, n_bias=3,
                 n_dark=3, n_flat=3)
    sim_a = simulate_night(root / "a", cloudy_frames=(CLOUDY,), **small)
    fainter = {f: z - B_FAINTER for f, z in SimulationSpec().zp0.items()}
    sim_b = simulate_night(root / "b", zp0=fainter, bias_level=1100.0, **small)
    db = root / "shared.db"
    cfg_a = load_config(_configure(sim_a, A, db))
    cfg_b = load_config(_configure(sim_b, B, db))
    summaries = {A: run_pipeline(cfg_a), B: run_pipeline(cfg_b)}
    engine = open_database(cfg_a.database.url)
    yield {"sim": {A: sim_a, B: sim_b}, "cfg": {A: cfg_a, B: cfg_b}, "engine": engine,
           "summary": summaries}
    engine.dispose()


def _frames(engine, telescope: str, **where) -> list[Frame]:
    with session_scope(engine) as s:
        q = select(Frame).where(Frame.telescope == telescope,
                                *[getattr(Frame, k) == v for k, v in where.items()])
        return list(s.scalars(q.order_by(Frame.raw_path)))


def _counts(engine) -> dict:
    with session_scope(engine) as s:
        return {m.__name__: s.scalar(select(func.count()).select_from(m))
                for m in (Frame, Master, Star, Measurement, ZeroPoint)}


def test_same_file_names_on_both_telescopes_are_two_files_each(scopes):
    engine, sims = scopes["engine"], scopes["sim"]
    names = {t: sorted(p.relative_to(sim.incoming).as_posix()
                       for p in sim.incoming.rglob("*.fit")) for t, sim in sims.items()}
    assert names[A] == names[B] and names[A]  # the cameras' names collide
    for t in (A, B):
        frames = _frames(engine, t)
        assert [f.raw_path for f in frames] == names[t]
        assert not [f.raw_path for f in frames if f.state in ("duplicate", "failed")]
        # each archive copy is in the telescope's own archive, under the same relative name
        for f in frames:
            assert (scopes["cfg"][t].paths.archive / f.archive_path).is_file()


def test_every_light_is_calibrated_with_its_own_telescopes_masters(scopes):
    engine = scopes["engine"]
    with session_scope(engine) as s:
        masters = {m.id: m for m in s.scalars(select(Master))}
    for t in (A, B):
        lights = _frames(engine, t, kind="light")
        assert len(lights) == 10 and {f.state for f in lights} == {"calibrated"}
        for f in lights:
            used = [masters[i] for i in (f.bias_master_id, f.dark_master_id, f.flat_master_id)]
            assert [m.telescope for m in used] == [t, t, t], f.raw_path
            assert all((scopes["cfg"][t].paths.archive / m.path).is_file() for m in used)
        assert sorted((m.kind, m.filter or "") for m in masters.values() if m.telescope == t) \
            == [("bias", ""), ("dark", ""), ("flat", "R"), ("flat", "V")]
    with session_scope(engine) as s:
        assert sorted(s.scalars(select(Run.telescope))) == [A, B]


def test_a_star_has_one_id_whichever_telescope_saw_it(scopes):
    engine, sims = scopes["engine"], scopes["sim"]
    ids_of_truth: dict[int, set] = {}
    seen_by: dict[int, set] = {}
    for t in (A, B):
        with session_scope(engine) as s:
            rows = s.execute(select(Frame.raw_path, Measurement.x, Measurement.y,
                                    Measurement.star_id)
                             .join(Frame, Frame.id == Measurement.frame_id)
                             .where(Frame.telescope == t, Measurement.flags == 0)).all()
        truth_cache = {}
        for raw, x, y, star_id in rows:
            truth = truth_cache.setdefault(raw, sims[t].light_truth(Path(raw).stem))
            d = np.hypot(np.asarray(truth["x"], float) - x, np.asarray(truth["y"], float) - y)
            k = int(np.argmin(d))
            if d[k] < 1.0:
                tid = int(truth["id"][k])
                ids_of_truth.setdefault(tid, set()).add(star_id)
                seen_by.setdefault(tid, set()).add(t)
    both = [tid for tid, ts in seen_by.items() if ts == {A, B}]
    assert len(both) >= 20
    split = {tid: ids for tid, ids in ids_of_truth.items() if len(ids) > 1}
    assert not split  # one star id per true star, over both telescopes


def test_quality_flags_are_computed_per_telescope(scopes):
    engine, sims = scopes["engine"], scopes["sim"]
    with session_scope(engine) as s:
        rows = s.execute(select(Frame.telescope, ZeroPoint.value)
                         .join(ZeroPoint, ZeroPoint.frame_id == Frame.id)).all()
    zp = {t: float(np.median([v for tel, v in rows if tel == t])) for t in (A, B)}
    # the test means something: B's frames are far below A's extinction line
    assert zp[A] - zp[B] == pytest.approx(B_FAINTER, abs=0.1)
    truth = {t: {r["file"]: r["qc"] or "" for r in sims[t].frames if r["kind"] == "light"}
             for t in (A, B)}
    cloudy = [f for f, q in truth[A].items() if q == "clouds"]
    assert len(cloudy) == 1 and not any(truth[B].values())
    flags = {t: {f.raw_path: f.qc for f in _frames(engine, t, kind="light")} for t in (A, B)}
    assert "clouds" in flags[A][cloudy[0]].split(";")
    # the same file name on B (a clear frame) is not flagged, nor is any frame of B
    assert not [p for p, q in flags[B].items() if "clouds" in q]
    assert not [p for p, q in flags[A].items() if "clouds" in q and p != cloudy[0]]


def test_listings_name_the_telescope_when_there_are_several(scopes, tmp_path):
    cfg_path = scopes["cfg"][A].source_file

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "clinepipe.cli", "--config", str(cfg_path),
                            *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()

    lines = cli("frames", "--csv")
    assert lines[0].endswith(",qc,telescope,time_source,time_note")
    rows = list(csv.DictReader(lines))
    assert {r["telescope"] for r in rows} == {A, B}
    assert len(rows) == len({tuple(r.values()) for r in rows})
    status = cli("status", "--csv")
    assert status[0] == "telescope,night,state,frames"
    assert {ln.split(",")[0] for ln in status[1:]} == {A, B}

    from clinepipe.products.report import write_report

    page = write_report(scopes["engine"], None, tmp_path / "report").read_text(encoding="utf-8")
    assert "<th>telescope</th>" in page and f"<td>{A}</td>" in page

    from clinepipe.products.export import export_csv

    out = tmp_path / "all.csv"
    export_csv(scopes["engine"], out)
    header = out.read_text(encoding="utf-8").splitlines()[0]
    assert header.endswith(",exptime,frame,flags,telescope")

    from fastapi.testclient import TestClient

    from clinepipe.web.app import create_app

    client = TestClient(create_app(scopes["engine"]))
    html = client.get("/").text
    assert "<th>Telescopes</th>" in html and f"{A} " in html and f"{B} " in html
    with session_scope(scopes["engine"]) as s:  # a star both telescopes measured
        star = s.execute(select(Measurement.star_id).join(Frame, Frame.id == Measurement.frame_id)
                         .group_by(Measurement.star_id)
                         .having(func.count(func.distinct(Frame.telescope)) == 2)
                         .limit(1)).scalar_one()
    points = client.get(f"/api/stars/{star}/lightcurve").json()
    assert {p["telescope"] for p in points} == {A, B}
    assert list(points[0])[-1] == "telescope"  # the export's fields, then the telescope


def test_a_second_run_of_each_telescope_adds_nothing(scopes):
    engine = scopes["engine"]
    before = _counts(engine)
    for t in (A, B):
        again = run_pipeline(scopes["cfg"][t])
        assert (again.new_files, again.masters_built, again.lights_done) == (0, 0, 0)
        assert again.states == {k: v for k, v in scopes["summary"][t].states.items()}
    assert _counts(engine) == before


def test_a_named_telescope_claims_its_untagged_rows(tmp_path):
    """Rows from before revision 0002 ("" telescope) go to the telescope whose archive (or,
    never archived, incoming) holds their file; another telescope's rows stay untouched."""
    cfg = config_from_dict({"paths": {"incoming": str(tmp_path / "in"),
                                      "archive": str(tmp_path / "arch")},
                            "database": {"url": f"sqlite:///{tmp_path / 'db.sqlite'}"},
                            "site": {"telescope": A}})
    (tmp_path / "arch" / "raw").mkdir(parents=True)
    (tmp_path / "arch" / "raw" / "mine.fit").write_bytes(b"x")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.fit").write_bytes(b"")
    engine = open_database(cfg.database.url)
    try:
        with session_scope(engine) as s:
            s.add_all([Frame(raw_path="mine.fit", archive_path="raw/mine.fit", state="used"),
                       Frame(raw_path="broken.fit", state="failed"),
                       Frame(raw_path="theirs.fit", archive_path="raw/theirs.fit", state="used")])
        assert adopt_untagged_rows(cfg, engine) == 2
        assert adopt_untagged_rows(cfg, engine) == 0
        with session_scope(engine) as s:
            got = dict(s.execute(select(Frame.raw_path, Frame.telescope)).all())
        assert got == {"mine.fit": A, "broken.fit": A, "theirs.fit": ""}
    finally:
        engine.dispose()
