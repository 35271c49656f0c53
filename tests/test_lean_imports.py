"""The commands that only read start lean (issue 20, goal 3: ``clinepipe lc STAR`` and ``stars``
as processes on a ten-year archive): in a fresh interpreter, ``lc``, ``stars`` and ``--help``
answer without importing the ORM (``sqlalchemy.orm``, the mapped classes of
``clinepipe.store.models``: they read :mod:`clinepipe.store.tables`), Alembic (the schema is
known to be current from one SELECT), astropy, matplotlib, scipy or Dask; and ``run`` still
works with the models mapped onto those same tables, creating a new database without
Alembic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from small_store import populate_small_store

from clinepipe.store.db import open_database

SRC = Path(__file__).resolve().parents[1] / "src"
#: what a read-only command must not import (module names, top-level or dotted)
HEAVY = ("sqlalchemy.orm", "clinepipe.store.models", "alembic", "astropy", "matplotlib", "scipy",
         "dask", "distributed", "pandas", "clinepipe.run", "clinepipe.web", "clinepipe.products.report")

_PROBE = """
import contextlib, io, json, sys
from clinepipe.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        main(sys.argv[1:])
        code = 0
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                  "modules": sorted(sys.modules)}))
"""


def _probe(args: list[str], cwd: Path) -> dict:
    """Exit code, output and every module loaded by ``clinepipe ARGS`` in a new interpreter."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("CLINEPIPE_CONFIG", None)
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lean")
    db = folder / "clinepipe.db"
    engine = open_database(f"sqlite:///{db}")
    ids = populate_small_store(engine)
    engine.dispose()
    (folder / "clinepipe.toml").write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    return folder, ids


def test_lc_reads_without_the_orm_alembic_or_astropy(store):
    folder, ids = store
    star = ids["stars"][0]
    res = _probe(["lc", str(star)], folder)
    assert res["code"] == 0, res["err"]
    lines = res["out"].splitlines()
    # the star's points: V on f1 and f3, R on f2, "Red" on f4 (f5 has no zero point: nan)
    assert lines[0] == "jd_mid\tfilter\tmag\tmag_err\tflags"
    assert len(lines) == 1 + 5 and {ln.split("\t")[1] for ln in lines[1:]} == {"V", "R", "Red"}
    assert _heavy(res["modules"]) == []
    # by name too: the name lookup and the "no points" message read the same tables
    res = _probe(["lc", "V0001 Tst", "--filter", "B"], folder)
    assert res["code"] == 1
    assert "has no measurements in filter B (it has R, Red, V)" in res["err"]
    assert _heavy(res["modules"]) == []


def test_stars_reads_without_the_orm_alembic_or_astropy(store):
    folder, ids = store
    res = _probe(["stars", "--csv"], folder)
    assert res["code"] == 0, res["err"]
    lines = res["out"].splitlines()
    assert lines[0].startswith("star_id,ra,dec,n_measurements,catalog_id,name,type,mean_")
    assert [int(ln.split(",")[0]) for ln in lines[1:]] == sorted(ids["stars"])
    first = lines[1].split(",")
    assert first[1:3] == ["150.000000", "20.000000"] and first[4:6] == ["C1", "V0001 Tst"]
    assert lines[-1].split(",")[3] == "0"  # star 4: never measured
    assert _heavy(res["modules"]) == []


def test_help_imports_no_database_layer(store):
    folder, _ = store
    res = _probe(["--help"], folder)
    assert res["code"] == 0 and "lc" in res["out"]
    assert [m for m in res["modules"] if m == "sqlalchemy" or m.startswith("sqlalchemy.")] == []
    assert _heavy(res["modules"]) == []


def test_the_runs_transit_step_loads_no_fitting_library_until_a_transit_is_fitted():
    """Every run imports its transit step; one without a transit to fit (most nights, and
    every observatory without ``[transits] path``) must not pay for the limb-darkening
    triangulation (scipy.spatial) or the MCMC, which ``clinepipe.transits`` used to load."""
    probe = ("import json, sys; import clinepipe.run.transit_fits, clinepipe.transits as t; "
             "before = sorted(sys.modules); t.quadratic_ld; "
             "print(json.dumps([before, sorted(sys.modules)]))")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout.splitlines()[-1])
    heavy = ("scipy.spatial", "emcee", "batman", "matplotlib")
    assert [m for m in before if m.split(".")[0] in heavy or m.startswith("scipy.spatial")] == []
    # the public names still resolve, loading their module on first use
    assert "clinepipe.transits.limbdark" in after and "scipy.spatial" in after


def test_a_first_run_makes_its_database_without_alembic(tmp_path):
    """A first ``clinepipe run`` (here with nothing to ingest yet) creates its new database
    from the tables in one go, stamped at the head, and never imports Alembic (its import
    and seven migrations were 0.4 s of that run)."""
    from clinepipe.store.schema_version import head_revision

    (tmp_path / "incoming").mkdir()
    db = tmp_path / "clinepipe.db"
    (tmp_path / "clinepipe.toml").write_text(
        f'[paths]\nincoming = "incoming"\narchive = "archive"\n'
        f'[database]\nurl = "sqlite:///{db}"\n'
        f"[site]\nlatitude = 36.0\nlongitude = -79.8\nelevation = 250.0\n")
    res = _probe(["run"], tmp_path)
    assert res["code"] == 0, res["err"]
    assert "0 new file(s)" in res["out"]
    assert [m for m in res["modules"] if m == "alembic" or m.startswith("alembic.")] == []
    engine = open_database(f"sqlite:///{db}", upgrade=False)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [
                (head_revision(),)]
            assert conn.exec_driver_sql("SELECT status FROM runs").all() == [("finished",)]
    finally:
        engine.dispose()
