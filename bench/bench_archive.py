"""Ten years of archive (issue #20, goal 3): the user's commands on a database of 10 M
measurements, on SQLite and on PostgreSQL.

    .venv/bin/python bench/bench_archive.py [--measurements 10000000] [--backends sqlite,postgresql]
                                            [--repeat 3] [--run-repeat 3] [--skip-run] [--skip-web]
                                            [--rebuild] [--output bench/results/archive.json]

The archive (``bench/archive_fill.py``: ~3,000 nights, 20,000 stars, V and R) is built once per
backend and cached under ``bench/.cache/archive/`` (a SQLite file; a PostgreSQL cluster started
for the run and stopped after it); it is rebuilt when the schema's head revision, the generator's
version or ``--measurements`` changes. Then, each as the user sees it:

* ``clinepipe lc STAR`` as a process (goal <= 50 ms), and the same command called inside a
  warm interpreter, so that process start-up and imports show separately;
* ``clinepipe stars`` (<= 1 s) and ``clinepipe variables`` (<= 5 s, stopped at
  ``--variables-timeout``) as processes;
* the web over HTTP (``clinepipe serve`` on 127.0.0.1): the nights page ``/``, the star table
  ``/stars`` (its first page, and ``?page=2``), a star page ``/stars/{id}`` and its
  ``/api/stars/{id}/lightcurve`` (<= 300 ms each): the first request after start-up and the
  median of the next ``--repeat``;
* the database size per measurement, indexes included (whole database, and the
  ``measurements`` table with its indexes);
* ``clinepipe run`` (a process) of a small simulated night copied into a copy of the archive,
  against the same night into an empty database (<= 1.2x): best of ``--run-repeat``.

Timings are wall-clock on a shared machine: medians or best-of as stated in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

import archive_fill as af  # noqa: E402
from tree_paths import compile_tree  # noqa: E402

CACHE = HERE / ".cache" / "archive"
RESULTS = HERE / "results"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

GOALS = {"lc_ms": 50.0, "stars_s": 1.0, "variables_s": 5.0, "web_ms": 300.0, "run_ratio": 1.2}
LC_STAR = "1"  # a star of the simulated night's field: the new night adds to its light curve
WEB_PAGES = ("/", "/stars", "/stars?page=2", "/stars/{star}", "/api/stars/{star}/lightcurve")


def log(text: str) -> None:
    print(text, flush=True)


def clinepipe_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "clinepipe"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "clinepipe.cli"]


# ----------------------------------------------------------------------------- inputs

def simulated_night(lights_per_filter: int) -> Path:
    """The small night every run measurement copies (cached: same seed, same bytes)."""
    from clinepipe.simulate import simulate_night

    folder = CACHE / f"night-{lights_per_filter}"
    stamp = folder / "done.json"
    if not stamp.exists():
        shutil.rmtree(folder, ignore_errors=True)
        log(f"simulating the new night ({lights_per_filter} lights per filter) ...")
        simulate_night(folder, seed=7, lights_per_filter=lights_per_filter)
        stamp.write_text(json.dumps({"lights_per_filter": lights_per_filter}))
    return folder


def write_config(folder: Path, night: Path, url: str, with_incoming: bool) -> Path:
    """``folder/clinepipe.toml``: the simulated night's configuration on database ``url``;
    with its incoming files copied into ``folder`` when ``with_incoming``."""
    folder.mkdir(parents=True, exist_ok=True)
    if with_incoming:
        shutil.copytree(night / "incoming", folder / "incoming")
    else:
        (folder / "incoming").mkdir(exist_ok=True)
    for name in ("catalog.csv", "vsx.csv"):
        shutil.copy2(night / name, folder / name)
    text = (night / "clinepipe.toml").read_text()
    text = text.replace('url = "sqlite:///clinepipe.db"', f'url = "{url}"')
    assert f'url = "{url}"' in text, "the simulated configuration changed its [database] line"
    path = folder / "clinepipe.toml"
    path.write_text(text)
    return path


class Archive:
    """The cached archive of one backend: ``url`` to read, ``copy_url()`` for a run to write."""

    def __init__(self, backend: str, spec: af.ArchiveSpec, night: Path, rebuild: bool):
        from clinepipe.store.schema_version import head_revision

        self.backend, self.spec = backend, spec
        self.key = af.spec_key(spec, head_revision())
        self.name = f"archive_{spec.measurements}"
        self.meta_path = CACHE / f"{backend}-{spec.measurements}.json"
        self.cluster = None
        if backend == "postgresql":
            self.cluster = af.PgCluster(CACHE / "pg").start()
        meta = json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}
        self.build_seconds = None
        if rebuild or meta.get("key") != self.key:
            try:
                self._build(night)
            except BaseException:  # the server must not outlive the bench
                self.close()
                raise
        else:
            self.build_seconds = meta.get("build_seconds")
            log(f"{backend}: cached archive of {spec.measurements:,} measurements "
                f"({self.meta_path.name})")

    @property
    def sqlite_path(self) -> Path:
        return CACHE / f"{self.name}.db"

    @property
    def url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        return self.cluster.url(self.name)

    def _build(self, night: Path) -> None:
        field0 = af.field0_from_simulation(night / "truth" / "stars.csv")
        config_text = (night / "clinepipe.toml").read_text()
        self.meta_path.unlink(missing_ok=True)
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite_path}{suffix}").unlink(missing_ok=True)
            target = self.sqlite_path
        else:
            self.cluster.sql(f"DROP DATABASE IF EXISTS {self.name}")
            self.cluster.sql(f"CREATE DATABASE {self.name}")
            target = self.url
        log(f"{self.backend}: building an archive of {self.spec.measurements:,} measurements ...")
        self.build_seconds = af.build_archive(self.backend, self.spec, target=target,
                                              field0=field0, config_text=config_text)
        log(f"{self.backend}: built in {self.build_seconds:.0f} s")
        self.meta_path.write_text(json.dumps({"key": self.key,
                                              "build_seconds": self.build_seconds}))

    def copy_url(self, tag: str, scratch: Path) -> str:
        """A writable copy of the archive for one run."""
        if self.backend == "sqlite":
            target = scratch / f"{tag}.db"
            shutil.copyfile(self.sqlite_path, target)
            return f"sqlite:///{target}"
        self.cluster.sql(f"DROP DATABASE IF EXISTS {tag}")
        # copied as files, then checkpointed (bench_runs syncs them to disk): PostgreSQL 15's
        # default copy writes the 3 GB through the WAL, and the checkpoint that writes them
        # out again came during the timed run (ingest and masters 0.3-0.5 s slower)
        self.cluster.sql(f"CREATE DATABASE {tag} TEMPLATE {self.name} STRATEGY FILE_COPY")
        self.cluster.sql("CHECKPOINT")
        return self.cluster.url(tag)

    def empty_url(self, tag: str, scratch: Path) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{scratch / f'{tag}.db'}"
        self.cluster.sql(f"DROP DATABASE IF EXISTS {tag}")
        self.cluster.sql(f"CREATE DATABASE {tag}")
        self.cluster.sql("CHECKPOINT")  # as after a copy of the archive
        return self.cluster.url(tag)

    def drop(self, tag: str, scratch: Path) -> None:
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{scratch / tag}.db{suffix}").unlink(missing_ok=True)
        else:
            self.cluster.sql(f"DROP DATABASE IF EXISTS {tag}")

    def sizes(self) -> dict:
        n = self.spec.measurements
        if self.backend == "sqlite":
            con = sqlite3.connect(self.sqlite_path)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page = con.execute("PRAGMA page_size").fetchone()[0]
            pages = con.execute("PRAGMA page_count").fetchone()[0]
            try:  # the dbstat table is compiled into most SQLite builds
                table = con.execute(
                    "SELECT sum(pgsize) FROM dbstat WHERE name = 'measurements' OR name IN "
                    "(SELECT name FROM sqlite_master WHERE tbl_name = 'measurements')"
                ).fetchone()[0]
            except sqlite3.OperationalError:
                table = None
            con.close()
            total = page * pages
        else:
            total = self.cluster.sql(f"SELECT pg_database_size('{self.name}')")[0][0]
            import psycopg

            with psycopg.connect(self.url.replace("+psycopg", "")) as con:
                table = con.execute("SELECT pg_total_relation_size('measurements')").fetchone()[0]
        return {"database_bytes": total, "measurements_table_bytes": table,
                "bytes_per_measurement": total / n,
                "measurements_table_bytes_per_measurement": table / n if table else None}

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


# ----------------------------------------------------------------------------- measurements

def timed_process(cmd: list[str], timeout: float | None = None) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "timed_out_after": timeout}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {"seconds": wall, "stdout_lines": proc.stdout.count("\n")}


def repeated(cmd: list[str], repeat: int, timeout: float | None = None) -> dict:
    runs = [timed_process(cmd, timeout) for _ in range(repeat)]
    times = [r["seconds"] for r in runs if r["seconds"] is not None]
    if not times:
        return {"seconds": None, "timed_out_after": timeout}
    return {"median_seconds": statistics.median(times), "best_seconds": min(times),
            "all_seconds": times, "lines": runs[0].get("stdout_lines")}


IN_PROCESS = r"""
import contextlib, io, json, statistics, sys, time
from typer.main import get_command
t = time.perf_counter()
from clinepipe.cli import app
import clinepipe.store.db, clinepipe.store.queries, clinepipe.products.plots  # what lc imports
imports = time.perf_counter() - t
cmd = get_command(app)
args, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
times = []
for _ in range(repeat + 1):  # the first call also loads the configuration's modules
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        cmd.main(args, standalone_mode=False)
    times.append(time.perf_counter() - t)
print(json.dumps({"first_seconds": times[0], "median_seconds": statistics.median(times[1:]),
                  "imports_seconds": imports}))
"""


def in_process(args: list[str], repeat: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", IN_PROCESS, json.dumps(args), str(repeat)],
                          capture_output=True, text=True, env=ENV, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_web(config: Path, repeat: int, timeout: float) -> dict:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(clinepipe_cmd() + ["--config", str(config), "serve", "--host",
                                               "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"clinepipe serve did not start: "
                                       f"{proc.stderr.read().decode()[-1000:]}")
                time.sleep(0.1)

        def get(path: str) -> tuple[float, int, int]:
            t0 = time.perf_counter()
            with urllib.request.urlopen(base + path, timeout=timeout) as r:
                body = r.read()
                status = r.status
            return time.perf_counter() - t0, status, len(body)

        out = {}
        for page in WEB_PAGES:
            path = page.format(star=LC_STAR)
            try:
                first, status, size = get(path)
                warm = [get(path)[0] for _ in range(repeat)]
            except OSError as exc:  # a timeout: the page is far off its goal
                out[path] = {"error": f"{type(exc).__name__}: {exc}", "timeout": timeout}
                log(f"    GET {path}: no answer within {timeout:.0f} s")
                continue
            out[path] = {"first_seconds": first, "median_seconds": statistics.median(warm),
                         "status": status, "bytes": size}
            log(f"    GET {path}: first {first * 1e3:.0f} ms, then median "
                f"{statistics.median(warm) * 1e3:.0f} ms ({status}, {size:,} bytes)")
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_night(config: Path) -> dict:
    out = timed_process(clinepipe_cmd() + ["--config", str(config), "run"], timeout=1800)
    return out


def bench_runs(arch: Archive, night: Path, scratch: Path, repeat: int) -> dict:
    """The new night into an empty database and into a copy of the archive, interleaved."""
    empty, full = [], []
    for k in range(repeat):
        for kind, store in (("empty", empty), ("archive", full)):
            tag = f"run_{kind}_{k}"
            folder = scratch / tag
            url = (arch.empty_url if kind == "empty" else arch.copy_url)(tag, scratch)
            config = write_config(folder, night, url, with_incoming=True)
            os.sync()
            r = run_night(config)
            store.append(r["seconds"])
            log(f"    run on the {kind} database: {r['seconds']:.1f} s")
            shutil.rmtree(folder, ignore_errors=True)
            arch.drop(tag, scratch)
    return {"empty_seconds": empty, "archive_seconds": full,
            "ratio_best": min(full) / min(empty)}


def bench_backend(backend: str, args, night: Path) -> dict:
    spec = af.ArchiveSpec.for_measurements(args.measurements)
    arch = Archive(backend, spec, night, args.rebuild)
    res: dict = {"backend": backend, "spec": af.spec_key(spec, arch.key["schema"]),
                 "build_seconds": arch.build_seconds}
    if args.build_only:
        arch.close()
        return res
    try:
        with tempfile.TemporaryDirectory(prefix="clinepipe-archive-") as tmp:
            scratch = Path(tmp)
            config = write_config(scratch / "read", night, arch.url, with_incoming=False)
            cli = clinepipe_cmd() + ["--config", str(config)]
            res["size"] = arch.sizes()
            log(f"  {backend}: {res['size']['bytes_per_measurement']:.0f} bytes per measurement")
            timed_process(cli + ["lc", LC_STAR])  # page cache warm, as on a server in use
            res["lc"] = repeated(cli + ["lc", LC_STAR], args.repeat)
            res["lc_in_process"] = in_process(["--config", str(config), "lc", LC_STAR],
                                              args.repeat)
            res["help"] = repeated(cli + ["--help"], args.repeat)
            log(f"  lc: process {res['lc']['median_seconds'] * 1e3:.0f} ms "
                f"({res['lc']['lines'] - 1} points), in process "
                f"{res['lc_in_process']['median_seconds'] * 1e3:.1f} ms, "
                f"--help {res['help']['median_seconds'] * 1e3:.0f} ms")
            res["stars"] = repeated(cli + ["stars"], max(1, args.repeat // 2),
                                    timeout=args.variables_timeout)
            log(f"  stars: {_fmt(res['stars'].get('median_seconds'))}")
            res["variables"] = repeated(cli + ["variables"], 1, timeout=args.variables_timeout)
            log(f"  variables: {_fmt(res['variables'].get('median_seconds'))}"
                + (f" (stopped after {args.variables_timeout:.0f} s)"
                   if res["variables"].get("timed_out_after") else ""))
            if not args.skip_web:
                log("  web over HTTP ...")
                res["web"] = bench_web(config, args.repeat, args.web_timeout)
            if not args.skip_run:
                log("  clinepipe run of the new night ...")
                res["run"] = bench_runs(arch, night, scratch, args.run_repeat)
                log(f"  run: archive / empty = {res['run']['ratio_best']:.2f}")
    finally:
        arch.close()
    return res


# ----------------------------------------------------------------------------- report

def _fmt(seconds) -> str:
    if seconds is None:
        return "timed out"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _ok(value, goal) -> str:
    return "not measured" if value is None else ("pass" if value <= goal else "FAIL")


def table(results: dict) -> list[str]:
    lines = ["| measurement | " + " | ".join(results["backends"]) + " | goal |",
             "|---|" + "---|" * len(results["backends"]) + "---|"]

    def row(name, cell, goal=""):
        cells = []
        for b in results["backends"]:
            try:
                cells.append(cell(results[b]))
            except (KeyError, TypeError):
                cells.append("–")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {goal} |")

    g = GOALS
    row("`clinepipe lc STAR` (process, median)",
        lambda r: f"{_fmt(r['lc']['median_seconds'])} {_ok(r['lc']['median_seconds'] * 1e3, g['lc_ms'])}",
        f"≤ {g['lc_ms']:.0f} ms")
    row("  … in a warm interpreter (median) / imports", lambda r: (
        f"{_fmt(r['lc_in_process']['median_seconds'])} / "
        f"{_fmt(r['lc_in_process']['imports_seconds'])}"))
    row("  … `clinepipe --help` (process start-up)", lambda r: _fmt(r["help"]["median_seconds"]))
    row("`clinepipe stars` (median)", lambda r: (
        f"{_fmt(r['stars'].get('median_seconds'))} "
        f"{_ok(r['stars'].get('median_seconds'), g['stars_s'])}"), f"≤ {g['stars_s']:.0f} s")
    row("`clinepipe variables`", lambda r: (
        f"{_fmt(r['variables'].get('median_seconds'))} "
        f"{_ok(r['variables'].get('median_seconds'), g['variables_s'])}"
        if r["variables"].get("median_seconds") is not None
        else f"> {r['variables']['timed_out_after']:.0f} s FAIL"), f"≤ {g['variables_s']:.0f} s")
    for page in WEB_PAGES:
        path = page.format(star=LC_STAR)

        def web(r, path=path):
            w = r["web"][path]
            if "error" in w:
                return f"> {w['timeout']:.0f} s FAIL"
            return (f"{_fmt(w['median_seconds'])} (first {_fmt(w['first_seconds'])}) "
                    f"{_ok(w['median_seconds'] * 1e3, g['web_ms'])}")

        row(f"web `GET {path}` (median; first after start-up)", web, f"≤ {g['web_ms']:.0f} ms")
    row("database size per measurement, indexes included", lambda r: (
        f"{r['size']['bytes_per_measurement']:.0f} B (measurements table + indexes "
        f"{r['size']['measurements_table_bytes_per_measurement']:.0f} B)"))
    row("`clinepipe run` of a new night: archive / empty (best of each)", lambda r: (
        f"{min(r['run']['archive_seconds']):.1f} s / {min(r['run']['empty_seconds']):.1f} s = "
        f"{r['run']['ratio_best']:.2f}× {_ok(r['run']['ratio_best'], g['run_ratio'])}"),
        f"≤ {g['run_ratio']}×")
    row("archive build (cached)", lambda r: _fmt(r["build_seconds"]))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--measurements", type=int, default=10_000_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--run-repeat", type=int, default=3)
    ap.add_argument("--lights-per-filter", type=int, default=5,
                    help="lights per filter of the new night")
    ap.add_argument("--variables-timeout", type=float, default=120.0)
    ap.add_argument("--web-timeout", type=float, default=120.0)
    ap.add_argument("--skip-run", action="store_true")
    ap.add_argument("--skip-web", action="store_true")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached archives")
    ap.add_argument("--build-only", action="store_true", help="build (or check) the cache, no timing")
    ap.add_argument("--output", type=Path, default=RESULTS / "archive.json")
    args = ap.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        ap.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    t0 = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        load = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        load = None
    results: dict = {"command": " ".join(["bench/bench_archive.py", *(argv or sys.argv[1:])]),
                     "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "machine": f"{platform.system()} {platform.machine()}",
                     "cpus": os.cpu_count(), "load_average_before": load,
                     "backends": backends, "goals": GOALS}
    night = simulated_night(args.lights_per_filter)
    compile_tree()  # the timed commands run as an installed clinepipe does
    for backend in backends:
        log(f"[archive] {backend}")
        results[backend] = bench_backend(backend, args, night)
    results["total_seconds"] = time.perf_counter() - t0
    if args.build_only:
        log(f"archives ready in {results['total_seconds']:.0f} s")
        return 0
    results["table"] = table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    log("\n".join(results["table"]))
    log(f"wrote {args.output} in {results['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
