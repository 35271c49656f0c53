"""Shared pytest fixtures. Each section below is owned by one part of the project: add yours as
a new clearly delimited block, and leave the others' blocks as they are."""


# ==================================================================================================
# BEGIN database fixtures (store layer: tests/test_store.py, tests/test_export.py)
#
# ``postgres_url`` (session): a throwaway PostgreSQL cluster from the Debian ``postgresql`` package
#   (``initdb`` on PATH or /usr/lib/postgresql/*/bin), started on a free 127.0.0.1 port with its
#   socket in a temporary folder and stopped at the end. As root (initdb refuses root) it runs as
#   the ``postgres`` system user through ``runuser``. Under pytest-xdist every worker starts its
#   own cluster (own port and folder). ``CLINEPIPE_TEST_POSTGRES_URL`` points the tests at an
#   existing server instead (its user must be allowed to CREATE DATABASE). Skips, saying so, only
#   when PostgreSQL is not installed.
# ``db_url`` (function, parametrised ``sqlite`` / ``postgres``): a fresh empty database URL —
#   a SQLite file under tmp_path, or a new database in that cluster (dropped afterwards).
# ==================================================================================================
import glob as _db_glob
import itertools as _db_itertools
import os as _db_os
import shlex as _db_shlex
import shutil as _db_shutil
import socket as _db_socket
import subprocess as _db_subprocess
import tempfile as _db_tempfile
import time as _db_time
from pathlib import Path as _DbPath

import pytest as _db_pytest

_PG_NOT_INSTALLED = ("PostgreSQL is not installed (no initdb on PATH or in "
                     "/usr/lib/postgresql/*/bin): install the Debian 'postgresql' package "
                     "(make system-deps) or set CLINEPIPE_TEST_POSTGRES_URL")


def _pg_bindir():
    found = _db_shutil.which("initdb")
    if found:
        return _DbPath(found).resolve().parent
    candidates = sorted(
        _db_glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in _DbPath(p).parts[-3].split(".")])
    return _DbPath(candidates[-1]).parent if candidates else None


def _pg_run_as():
    """Command prefix and (uid, gid) to run the server as: ourselves, or as root an unprivileged
    system user (``postgres`` from the Debian package, else ``nobody``)."""
    if _db_os.geteuid() != 0:
        return (lambda cmd: cmd), None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if _db_shutil.which("runuser"):
            return (lambda cmd, n=name: ["runuser", "-u", n, "--", *cmd]), (entry.pw_uid, entry.pw_gid)
        return ((lambda cmd, n=name: ["su", n, "-s", "/bin/sh", "-c", _db_shlex.join(cmd)]),
                (entry.pw_uid, entry.pw_gid))
    raise RuntimeError("running as root and no unprivileged 'postgres' or 'nobody' user to run "
                       "PostgreSQL as")


def _free_port() -> int:
    with _db_socket.socket(_db_socket.AF_INET, _db_socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _PgCluster:
    """initdb + pg_ctl start/stop of a disposable cluster (trust auth, fsync off: test data)."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.wrap, self.owner = _pg_run_as()
        self.root = _DbPath(_db_tempfile.mkdtemp(prefix="clinepipe-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = None
        self.started = None

    def _run(self, *cmd, timeout=120):
        proc = _db_subprocess.run(self.wrap([str(c) for c in cmd]), cwd=self.root, timeout=timeout,
                                  stdout=_db_subprocess.PIPE, stderr=_db_subprocess.STDOUT,
                                  text=True, env={**_db_os.environ, "LC_ALL": "C", "LANG": "C"})
        if proc.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                               f"{proc.stdout}\n{tail}")
        return proc.stdout

    def start(self):
        t0 = _db_time.perf_counter()
        if self.owner is not None:
            _db_os.chown(self.root, *self.owner)
        self._run(self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
        last = None
        for _ in range(5):  # another process may grab the port between probe and bind
            self.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                    f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    f"-c max_connections=200 -c shared_buffers=32MB")
            try:
                self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.log, "-w",
                          "-t", "60", "-o", opts, "start")
                break
            except RuntimeError as exc:
                last = exc
        else:
            raise last
        self.started = _db_time.perf_counter() - t0
        return self

    def stop(self):
        try:
            if self.port is not None:
                self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                          "stop", timeout=60)
        finally:
            _db_shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self):
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@_db_pytest.fixture(scope="session")
def postgres_url():
    """URL of the maintenance database of a running PostgreSQL server (see the block header)."""
    external = _db_os.environ.get("CLINEPIPE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    bindir = _pg_bindir()
    if bindir is None:
        _db_pytest.skip(_PG_NOT_INSTALLED)
    cluster = _PgCluster(bindir).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


_db_counter = _db_itertools.count(1)


def _pg_admin(url: str, sql: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                         dbname=u.database or "postgres", autocommit=True) as conn:
        conn.execute(sql)


@_db_pytest.fixture
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
        worker = _db_os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"t_{worker}_{_db_os.getpid()}_{next(_db_counter)}"
        _pg_admin(server, f'CREATE DATABASE "{name}" TEMPLATE template0')
        made.append((server, name))
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    yield make
    for server, name in made:
        _pg_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@_db_pytest.fixture(params=["sqlite", _db_pytest.param("postgres", marks=_db_pytest.mark.postgres)])
def db_url(request, new_database_url):
    """A fresh, empty database on each backend: the same test runs on SQLite and PostgreSQL."""
    return new_database_url(request.param)


def populate_small_store(engine) -> dict:
    """A small hand-made database for the store/export tests; returns the ids it made.

    Stars: 1 = known variable "V0001 Tst" (catalog C1), 2 = check star (catalog C2),
    3 = no catalog id, 4 = never measured. Lights: f1 V, f2 R, f3 V (2.2 h later), f4 Red (next
    night), f5 V without zero point; plus one bias frame. Star 3 is flagged on f1.
    """
    import json
    from datetime import datetime

    from clinepipe.store.db import insert_measurements, session_scope
    from clinepipe.store.models import CatalogMatch, Frame, Run, Star, ZeroPoint

    now = datetime(2024, 3, 1, 12, 0, 0)
    ids: dict = {}
    with session_scope(engine) as s:
        run = Run(started_at=now, software_version="test", status="finished")
        s.add(run)
        s.flush()
        stars = [Star(ra=150.0, dec=20.0, catalog_id="C1", name="V0001 Tst", n_measurements=0),
                 Star(ra=150.01, dec=20.01, catalog_id="C2", n_measurements=0),
                 Star(ra=150.02, dec=19.99, n_measurements=0),
                 Star(ra=151.0, dec=21.0, n_measurements=0)]
        s.add_all(stars)
        s.flush()
        ids["stars"] = [st.id for st in stars]
        s.add_all([
            CatalogMatch(star_id=stars[0].id, catalog="file", catalog_id="C1", ra=150.0,
                         dec=20.0, separation=0.1,
                         mags=json.dumps({"V": [12.1, 0.02], "R": [11.8, 0.03], "B": [12.9, None]})),
            CatalogMatch(star_id=stars[1].id, catalog="file", catalog_id="C2", ra=150.01,
                         dec=20.01, separation=0.2, mags=json.dumps({"V": [11.0, 0.01]})),
        ])
        spec = [("night1/lights/v_001.fits", "V", 2460000.60),
                ("night1/lights/r_001.fits", "R", 2460000.61),
                ("night1/lights/v_002.fits", "V", 2460000.70),
                ("night2/lights/red_001.fits", "Red", 2460001.60),
                ("night2/lights/v_003.fits", "V", 2460001.65)]
        frames = [Frame(raw_path=p, kind="light", filter=f, jd_mid=jd, exptime=60.0,
                        airmass=1.2 + 0.01 * i, state="calibrated", night="20230224",
                        run_id=run.id) for i, (p, f, jd) in enumerate(spec)]
        frames.append(Frame(raw_path="night1/cal/bias_001.fits", kind="bias", state="used",
                            run_id=run.id))
        s.add_all(frames)
        s.flush()
        ids["frames"] = [fr.id for fr in frames]
        for i, fr in enumerate(frames[:4]):
            s.add(ZeroPoint(frame_id=fr.id, filter=fr.filter, catalog_band=fr.filter[0],
                            value=20.0 + 0.1 * i, error=0.01 + 0.001 * i, n_used=10,
                            n_candidates=12, scatter=0.02))
        rows = []
        for i, fr in enumerate(frames[:5]):
            for j, st in enumerate(stars[:3]):
                inst = -8.0 - j + 0.01 * i
                zp = 20.0 + 0.1 * i if i < 4 else None
                rows.append({
                    "frame_id": fr.id, "star_id": st.id, "filter": fr.filter,
                    "jd_mid": fr.jd_mid, "bjd_tdb": fr.jd_mid + 0.004,
                    "x": 100.0 + j, "y": 200.0 + j, "ra": st.ra + 1e-5 * i, "dec": st.dec,
                    "flux": 1000.0, "flux_err": 10.0, "background": 50.0,
                    "inst_mag": inst, "inst_mag_err": 0.01,
                    "mag": inst + zp if zp is not None else None,
                    "mag_err": 0.015 if zp is not None else None,
                    "fwhm": 3.0, "airmass": (1.25 + 0.01 * i) if j != 2 else None,
                    "flags": 1 if (i == 0 and j == 2) else 0, "in_ensemble": j == 1,
                })
        insert_measurements(s, rows)
    return ids


@_db_pytest.fixture
def small_store(db_url):
    """(engine, ids) of :func:`populate_small_store` on each backend."""
    from clinepipe.store.db import open_database

    engine = open_database(db_url)
    try:
        yield engine, populate_small_store(engine)
    finally:
        engine.dispose()


# ==================================================================================================
# END database fixtures
# ==================================================================================================


# ==================================================================================================
# BEGIN simulate fixtures (owner: clinepipe.simulate; tests/test_simulate.py and anyone who needs
# truth). Session-scoped and shared: read their files, never modify them (copy ``out_dir`` first).
#
# ``small_night`` (session): one simulated night, 256x256 px, 100 stars, filters V and R with 4
#   lights each, calibration frames, seed 11 -> clinepipe.simulate.SimulationResult.
# ``two_nights`` (session): the same size, 2 nights (calibration frames on night 1 only), seed 12.
# ==================================================================================================
import pytest as _sim_pytest


@_sim_pytest.fixture(scope="session")
def small_night(tmp_path_factory):
    """A small simulated night; returns its :class:`clinepipe.simulate.SimulationResult`."""
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("small_night")
    return simulate_night(out, seed=11, width=256, height=256, n_stars=100, lights_per_filter=4)


@_sim_pytest.fixture(scope="session")
def two_nights(tmp_path_factory):
    """Two small consecutive nights (calibration on night 1 only); a SimulationResult."""
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("two_nights")
    return simulate_night(out, seed=12, nights=2, width=256, height=256, n_stars=100,
                          lights_per_filter=4)
# ==================================================================================================
# END simulate fixtures
# ==================================================================================================


# ==================================================================================================
# BEGIN daily-run fixtures (owner: the daily job; tests/test_robustness.py, tests/test_dask.py)
#
# ``copy_night(sim, dest) -> Path``: copies a simulated night (incoming, catalog, vsx, config;
#   never an archive or database) to ``dest``; returns the copy's clinepipe.toml.
# ``pipeline_snapshot(config_path) -> dict``: the content of a run's database and export, free of
#   surrogate ids and timestamps (stars are named by their rounded position), for comparing two
#   runs: frames, masters, stars, measurements, zero points, `export --format csv` rows sorted,
#   the archive's files (temporary files aside).
# ``serial_reference`` (session): the snapshot of one uninterrupted serial run on a copy of
#   ``small_night`` (what killed/restarted and Dask runs must equal).
# ==================================================================================================
import csv as _run_csv
import shutil as _run_shutil
import tempfile as _run_tempfile
from pathlib import Path as _RunPath

import pytest as _run_pytest


def copy_night(sim, dest) -> _RunPath:
    """Copy a simulated night's inputs (not its archive/database) to ``dest``; its config path."""
    src, dest = _RunPath(sim.out_dir), _RunPath(dest)
    dest.mkdir(parents=True, exist_ok=True)
    _run_shutil.copytree(src / "incoming", dest / "incoming", symlinks=True)
    for name in ("catalog.csv", "vsx.csv", "clinepipe.toml"):
        if (src / name).exists():
            _run_shutil.copy2(src / name, dest / name)
    return dest / "clinepipe.toml"


def _r(value, digits):
    return None if value is None else round(float(value), digits)


def pipeline_snapshot(config_path) -> dict:
    """Everything a run leaves in the database and archive, comparable across runs."""
    from sqlalchemy import select

    from clinepipe.config import load_config
    from clinepipe.store.db import open_database, session_scope
    from clinepipe.store.export import export_csv
    from clinepipe.store.models import Frame, Master, Measurement, Star, ZeroPoint

    cfg = load_config(_RunPath(config_path))
    engine = open_database(cfg.database.url)
    try:
        with session_scope(engine) as s:
            star_key = {sid: f"{ra:.6f} {dec:+.6f}" for sid, ra, dec in
                        s.execute(select(Star.id, Star.ra, Star.dec))}
            master_path = dict(s.execute(select(Master.id, Master.path)).all())
            frames = sorted(
                (f.raw_path, f.kind, f.filter, f.state, f.stage, f.reason, f.night, f.binning,
                 f.archive_path, f.calibrated_path, f.source_list, f.qc, f.n_stars,
                 _r(f.fwhm, 6), _r(f.sky, 4), _r(f.airmass, 6),
                 master_path.get(f.bias_master_id), master_path.get(f.dark_master_id),
                 master_path.get(f.flat_master_id))
                for f in s.scalars(select(Frame)))
            masters = sorted((m.kind, m.binning, m.filter or "", m.night, m.n_frames, m.mode,
                              m.path, m.input_key, _r(m.exptime, 6))
                             for m in s.scalars(select(Master)))
            stars = sorted((star_key[st.id], st.catalog_id or "", st.name or "", st.n_measurements)
                           for st in s.scalars(select(Star)))
            measurements = sorted(
                (raw, star_key[sid], _r(x, 3), _r(y, 3), _r(mag, 6), _r(inst, 6), _r(bjd, 8),
                 flags, bool(ens))
                for raw, sid, x, y, mag, inst, bjd, flags, ens in s.execute(
                    select(Frame.raw_path, Measurement.star_id, Measurement.x, Measurement.y,
                           Measurement.mag, Measurement.inst_mag, Measurement.bjd_tdb,
                           Measurement.flags, Measurement.in_ensemble)
                    .join(Frame, Frame.id == Measurement.frame_id)))
            zero_points = sorted(
                (raw, z.filter, z.catalog_band, _r(z.value, 6), _r(z.error, 6), z.n_used,
                 z.n_candidates)
                for raw, z in s.execute(select(Frame.raw_path, ZeroPoint)
                                        .join(Frame, Frame.id == ZeroPoint.frame_id)))
        with _run_tempfile.TemporaryDirectory() as tmp:
            out = _RunPath(tmp) / "export.csv"
            export_csv(engine, out)
            with out.open(newline="", encoding="utf-8") as fh:
                reader = _run_csv.reader(fh)
                header = next(reader)
                sid = header.index("star_id")
                rows = sorted(tuple(star_key[int(v)] if i == sid else v for i, v in enumerate(row))
                              for row in reader)
    finally:
        engine.dispose()
    archive = cfg.paths.archive
    files = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*")
                   if p.is_file() and not p.name.endswith(".tmp")
                   and p.relative_to(archive).parts[0] not in ("logs",)
                   and p.name != "clinepipe.lock")
    return {"frames": frames, "masters": masters, "stars": stars, "measurements": measurements,
            "zero_points": zero_points, "export_header": header, "export": rows,
            "archive_files": files}


def assert_same_snapshot(got: dict, want: dict) -> None:
    """Compare two :func:`pipeline_snapshot` results part by part (a readable first difference)."""
    assert got.keys() == want.keys()
    for key in want:
        a, b = got[key], want[key]
        if a != b:
            extra = [x for x in a if x not in b][:3] if isinstance(a, list) else a
            missing = [x for x in b if x not in a][:3] if isinstance(b, list) else b
            raise AssertionError(f"{key} differ ({len(a)} vs {len(b)} entries); "
                                 f"only in the run: {extra}; only in the reference: {missing}")


@_run_pytest.fixture(scope="session")
def serial_reference(small_night, tmp_path_factory):
    """Snapshot of one uninterrupted serial `run` on a copy of ``small_night``."""
    from clinepipe.config import load_config
    from clinepipe.run.pipeline import run_pipeline

    cfg_path = copy_night(small_night, tmp_path_factory.mktemp("serial_reference"))
    run_pipeline(load_config(cfg_path))
    return pipeline_snapshot(cfg_path)
# ==================================================================================================
# END daily-run fixtures
# ==================================================================================================
