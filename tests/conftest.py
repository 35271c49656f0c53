"""Shared pytest fixtures: databases on both backends, simulated nights, a serial reference run.

The helpers behind them live in their own modules: ``pg_cluster`` (a throwaway PostgreSQL
server), ``small_store`` (a hand-made database), ``run_snapshots`` (compare whole runs).
"""
import itertools
import os

import pytest
from browser import CHROMIUM, serve_dashboard
from pg_cluster import PG_NOT_INSTALLED, PgCluster, pg_admin, pg_bindir
from run_snapshots import copy_night, pipeline_snapshot
from small_store import populate_small_store


# ---- databases ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_url():
    """URL of the maintenance database of a running PostgreSQL server.

    Under pytest-xdist every worker starts its own cluster (own port and folder).
    ``CLINEPIPE_TEST_POSTGRES_URL`` points the tests at an existing server instead (its user must
    be allowed to CREATE DATABASE). Skips, saying so, only when PostgreSQL is not installed.
    """
    external = os.environ.get("CLINEPIPE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip(PG_NOT_INSTALLED)
    cluster = PgCluster(bindir).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


_db_counter = itertools.count(1)


@pytest.fixture
def new_database_url(request, tmp_path):
    """Factory: ``new_database_url("sqlite" | "postgres")`` → URL of a fresh, empty database
    (SQLite file under tmp_path; PostgreSQL database in the test cluster, dropped afterwards)."""
    from sqlalchemy.engine import make_url

    made = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / f'clinepipe-{next(_db_counter)}.db'}"
        if kind != "postgres":
            raise ValueError(kind)
        server = request.getfixturevalue("postgres_url")
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"t_{worker}_{os.getpid()}_{next(_db_counter)}"
        pg_admin(server, f'CREATE DATABASE "{name}" TEMPLATE template0')
        made.append((server, name))
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    yield make
    for server, name in made:
        pg_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, new_database_url):
    """A fresh, empty database on each backend: the same test runs on SQLite and PostgreSQL."""
    return new_database_url(request.param)


@pytest.fixture
def small_store(db_url):
    """(engine, ids) of :func:`small_store.populate_small_store` on each backend."""
    from clinepipe.store.db import open_database

    engine = open_database(db_url)
    try:
        yield engine, populate_small_store(engine)
    finally:
        engine.dispose()


# ---- simulated nights (session-scoped and shared: read their files, copy before changing) -------
@pytest.fixture(scope="session")
def small_night(tmp_path_factory):
    """256x256 px, 100 stars, V and R with 4 lights each, calibration frames, seed 11."""
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("small_night")
    return simulate_night(out, seed=11, width=256, height=256, n_stars=100, lights_per_filter=4)


@pytest.fixture(scope="session")
def two_nights(tmp_path_factory):
    """Two small consecutive nights (calibration frames on night 1 only), seed 12."""
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("two_nights")
    return simulate_night(out, seed=12, nights=2, width=256, height=256, n_stars=100,
                          lights_per_filter=4)


# ---- the daily run ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def serial_reference(small_night, tmp_path_factory):
    """Snapshot of one uninterrupted serial `run` on a copy of ``small_night``: what killed and
    restarted runs and Dask runs must equal."""
    from clinepipe.config import load_config
    from clinepipe.run.pipeline import run_pipeline

    # not the default, the run's local workers
    cfg_path = copy_night(small_night, tmp_path_factory.mktemp("serial_reference"),
                          scheduler="serial")
    run_pipeline(load_config(cfg_path))
    return pipeline_snapshot(cfg_path)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The hand-made dashboard database (web_store) served by uvicorn on a free loopback port,
    for the browser tests: (base URL, facts, root folder)."""
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed (Debian: apt install chromium)")
    from web_store import make_engine, populate

    root = tmp_path_factory.mktemp("browser")
    (root / "archive").mkdir()
    engine = make_engine(root / "clinepipe.db")
    facts = populate(engine, root / "archive")
    with serve_dashboard(engine, root / "archive") as url:
        yield url, facts, root
    engine.dispose()
