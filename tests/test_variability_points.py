"""The points every variability statistic is computed from (``variability_points``), on a
hand-made database, against the rules said in plain Python: flag-free calibrated points only,
frames with an excluded QC flag left out (each flag matched whole and case-sensitively), BJD_TDB
else JD UTC, no error as NaN; on SQLite and PostgreSQL."""
import math

import numpy as np
import pytest
from sqlalchemy import insert, update

from clinepipe.store.db import open_database
from clinepipe.store.tables import frames, measurements, stars
from clinepipe.variability.points import variability_points

# (frame id, filter, jd_mid, QC text): whole-flag matching is what the cases below tell apart
FRAMES = [
    (1, "V", 2460000.50, ""),
    (2, "V", 2460000.60, "clouds"),
    (3, "R", 2460000.70, "focus;clouds;trailed"),
    (4, "V", 2460000.80, "partly_clouds"),   # not the flag "clouds"
    (5, "V", 2460000.90, "Clouds"),          # flags are case-sensitive
    (6, "R", 2460001.00, "high_airmass"),
    (7, "R", 2460001.10, "highXairmass"),    # "_" is no wildcard
    (8, "", 2460001.20, ""),              # no filter
    (9, "R", 2460001.30, "clouds;"),
]


def _measurement_rows():
    """Several stars on every frame, with the cases a reader must tell apart."""
    rng = np.random.default_rng(3)
    rows = []
    for fid, filt, jd, _ in FRAMES:
        for star in (1, 2, 3):
            mag = float(12 + star + rng.normal(0, 0.01))
            rows.append({"frame_id": fid, "star_id": star, "filter": filt, "jd_mid": jd,
                         "bjd_tdb": None if star == 2 else jd + 0.004, "mag": mag,
                         "mag_err": None if (star, fid) == (3, 1) else 0.01 * star,
                         "flags": 4 if (star, fid) == (1, 4) else 0})
        rows.append({"frame_id": fid, "star_id": 4, "filter": filt, "jd_mid": jd,
                     "bjd_tdb": jd + 0.004, "mag": None, "mag_err": None, "flags": 0})
    return rows


def _expected(rows, exclude, star_ids=None):
    qc = {fid: q for fid, _, _, q in FRAMES}
    out = []
    for r in rows:
        flags = set(filter(None, (qc[r["frame_id"]] or "").split(";")))
        if (r["mag"] is None or r["flags"] != 0 or flags & set(exclude)
                or (star_ids is not None and r["star_id"] not in star_ids)):
            continue
        t = r["bjd_tdb"] if r["bjd_tdb"] is not None else r["jd_mid"]
        out.append((r["star_id"], r["filter"], t, r["mag"], r["mag_err"], r["jd_mid"]))
    return out


@pytest.fixture
def engine(db_url):
    engine = open_database(db_url)
    with engine.begin() as conn:
        conn.execute(insert(stars), [{"id": i, "ra": 10.0 + i, "dec": 20.0, "n_measurements": 0,
                                      "name": "V1 Tst" if i == 1 else None,
                                      "var_type": "EA" if i == 1 else None} for i in (1, 2, 3, 4)])
        conn.execute(insert(frames), [{"id": fid, "raw_path": f"n/{fid}.fits", "kind": "light",
                                       "filter": filt, "jd_mid": jd, "state": "calibrated",
                                       "qc": qc} for fid, filt, jd, qc in FRAMES])
        conn.execute(insert(measurements), _measurement_rows())
    yield engine
    engine.dispose()


def _as_tuples(p):
    """The points as sortable tuples (NaN, which equals nothing, as None)."""
    err = [None if math.isnan(e) else e for e in p.err.tolist()]
    return sorted(zip(p.star.tolist(), p.filter.tolist(), p.t.tolist(), p.mag.tolist(), err),
                  key=repr)


@pytest.mark.parametrize("exclude", [("clouds", "trailed"), ("high_airmass",), ("Clouds",), (),
                                     ("",)])
def test_points_keep_exactly_the_points_the_rules_keep(engine, exclude):
    want = _expected(_measurement_rows(), exclude)
    got = variability_points(engine, exclude_qc=exclude)
    assert _as_tuples(got) == sorted((w[:5] for w in want), key=repr)
    assert got.star.dtype == np.int64 and got.t.dtype == float and got.filter.dtype.kind == "U"
    # grouped by star, and within a star and filter in time order
    assert np.all(np.diff(got.star) >= 0)
    for s in np.unique(got.star):
        for f in np.unique(got.filter[got.star == s]):
            jd = [w[5] for w in want if (w[0], w[1]) == (s, f)]
            assert jd == sorted(jd)
            assert got.t[(got.star == s) & (got.filter == f)].tolist() == [
                w[2] for w in sorted(want, key=lambda w: w[5]) if (w[0], w[1]) == (s, f)]
    assert got.name == {1: "V1 Tst", 2: None, 3: None}
    assert got.var_type == {1: "EA", 2: None, 3: None}


def test_the_clouds_flag_leaves_out_those_frames_only(engine):
    got = variability_points(engine, exclude_qc=("clouds",))
    frames_of = {(f[1], round(f[2], 2)): f[0] for f in FRAMES}
    # frames 2, 3 and 9 carry the whole flag; 4 ("partly_clouds") and 5 ("Clouds") do not
    jd = np.where(got.star == 2, got.t, got.t - 0.004)  # star 2 has no BJD: its JD UTC
    seen = {frames_of[(f, round(t, 2))] for f, t in zip(got.filter.tolist(), jd.tolist())}
    assert seen == {1, 4, 5, 6, 7, 8}


def test_points_of_some_stars_and_of_none(engine):
    want = _expected(_measurement_rows(), ("clouds",), star_ids={2, 3})
    got = variability_points(engine, exclude_qc=("clouds",), star_ids=[3, 2])
    assert _as_tuples(got) == sorted((w[:5] for w in want), key=repr)
    assert np.isnan(got.err[(got.star == 3)]).sum() == 1  # star 3 on frame 1: no error
    empty = variability_points(engine, star_ids=[4])  # measured, but never calibrated
    assert empty.star.size == 0 and empty.name == {}


def test_points_read_inside_a_session_see_its_uncommitted_rows(engine):
    from clinepipe.store.db import session_scope

    with session_scope(engine) as s:
        m = measurements.c
        s.execute(update(measurements).where(m.frame_id == 1, m.star_id == 4)
                  .values(mag=15.0, mag_err=0.02))
        got = variability_points(s, exclude_qc=(), star_ids=[4])
        assert got.mag.tolist() == [15.0] and got.filter.tolist() == ["V"]
        s.rollback()
    assert variability_points(engine, star_ids=[4]).star.size == 0
