"""Every clinepipe benchmark side by side with ccdproc + photutils and the I/O floor.

    make bench                     # = .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py [--quick] [--size 2048] [--frames 20] [--rss-frames 40]
                                      [--lights-per-filter 20] [--repeat 3] [--night-repeat 3]
                                      [--skip-db] [--skip-dask] [--skip-cluster] [--skip-archive]
                                      [--cluster-lights 200] [--e2e-size 2048] [--skip-fullres]
                                      [--only masters|night|e2e|fullres|db|dask|cluster|archive]

Simulates its own frames in a temporary folder (nothing outside it is read or written except
the results) and writes ``bench/results/README.md`` (a Markdown table) and
``bench/results/all.json``:

1. master median of ``--frames`` uint16 frames of ``--size``²: ``masters.median_stack`` and
   ``masters.build_bias`` (functions, reading the files), the ``clinepipe masters`` command
   (a process, start-up included), ``bottleneck.median`` on the stack already in memory,
   "read every file with astropy + bottleneck.median", and ``ccdproc.combine(method='median')``
   with its defaults in a process (``bench/reference_ccdproc.py combine``);
2. peak RSS (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper whose only child
   is the command) of ``clinepipe masters`` on ``--rss-frames`` frames, and of the ccdproc
   script on ``--frames`` frames;
3. a simulated night (the simulator's default: 20 lights per filter of the observatory's
   1117 x 844 binned frames): ``clinepipe run``'s lights stage (reduce, sources, WCS,
   photometry, calibration, database) per light, against ``bench/reference_ccdproc.py night``
   (ccdproc + photutils + sqlite3) per light (best of ``--night-repeat`` interleaved runs of
   each, in fresh processes, imports before the clock for both) and the I/O floor (astropy
   reading each raw light and writing a float32 frame); and the accuracy of both: the median
   absolute error of calibrated magnitudes of bright (S/N > 100), unsaturated stars against
   the simulator's truth;
3b. one night end to end (``bench/bench_night.py``: ``clinepipe run`` as a process on a fresh
   archive, 20 lights + 20 calibration frames of ``--e2e-size``², against the I/O floor and the
   ccdproc + photutils script, with the run's own per-step times);
3c. full-resolution frames (``bench/bench_fullres.py``, 3352 x 2532): a light against its I/O
   floor and the peak RSS of a master of ``--rss-frames`` frames (``--skip-fullres``);
4. the database: ``bench/bench_db.py`` (bulk insert rate, light curve among 1 M measurements);
5. Dask with 2 workers against serial: ``bench/bench_dask.py`` if it exists;
5b. Dask on a real cluster (``bench/bench_cluster.py``: ``dask scheduler`` + two ``dask worker``
   processes on loopback, a night of ``--cluster-lights`` lights through ``[execution]
   address``): the serial part of the night, a light's CPU on a worker against serial and the
   expected speed-up on 8 and 32 workers (200 lights by default: issue 20's night, ~2 min);
6. ten years of archive (``bench/bench_archive.py``: ``lc``, ``stars``, ``variables``, the web and
   a new night's ``run`` on 10 M measurements, SQLite and PostgreSQL; ``--skip-archive``,
   ``--archive-measurements N`` to scale it down). The archives are built once and cached in
   ``bench/.cache/archive/`` (8 minutes on an idle 2-core machine, the first time only); with
   them, the bench takes about 2 minutes.

All ratios are from one run on this machine (shared, noisy); timings are the best of
``--repeat`` where a function is repeated.
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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

RESULTS = HERE / "results"

# ---- targets
T_MEDIAN_VS_BN = 1.3        # median_stack (files) / bottleneck.median (in memory)   <=
T_CMD_VS_READ_BN = 1.5      # `clinepipe masters` / (read files + bottleneck.median)  <=
T_CMD_VS_CCDPROC = 3.0      # ccdproc.combine script / `clinepipe masters`             >=
T_RSS_BYTES = 1 << 30       # peak RSS of a 40-frame master                          <=
T_NIGHT_VS_REF = 5.0        # reference per light / clinepipe per light               >=
T_NIGHT_VS_IO = 4.0         # clinepipe per light / I/O floor per light               <=
T_LC_MS = 50.0              # light curve among 1 M measurements                      <=
T_DASK = 1.6                # serial / Dask 2 workers                                 >=
T_SERIAL_PART = 0.15        # CPU outside the per-light work / a night's CPU          <=
T_WORKER_LIGHT = 1.1        # a light's CPU on a Dask worker / serially               <=

#: the child that reports its only child's peak RSS and wall time
WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"returncode": proc.returncode, "wall_seconds": wall,
                  "maxrss_bytes": ru.ru_maxrss * 1024, "user_seconds": ru.ru_utime,
                  "sys_seconds": ru.ru_stime, "stdout": proc.stdout[-2000:],
                  "stderr": proc.stderr[-2000:]}))
"""

#: a night through run_pipeline in a fresh process, timing each stage
NIGHT_CHILD = r"""
import json, sys, time
t_import = time.perf_counter()
import clinepipe.run.pipeline as P
from clinepipe.config import load_config
# what the lights stage uses, imported before the clock starts, as the reference script
# imports ccdproc and photutils before its lights loop
import clinepipe.run.light_stages  # noqa: F401
t_import = time.perf_counter() - t_import
stage = {}
for name in ("ingest_stage", "masters_stage", "lights_stage", "update_qc", "refresh_star_counts",
             "write_night_reports"):
    fn = getattr(P, name)
    def wrap(*a, _fn=fn, _n=name, **k):
        t = time.perf_counter()
        try:
            return _fn(*a, **k)
        finally:
            stage[_n] = time.perf_counter() - t
    setattr(P, name, wrap)
cfg = load_config(sys.argv[1])
t0 = time.perf_counter()
summary = P.run_pipeline(cfg)
total = time.perf_counter() - t0
print(json.dumps({"import_seconds": t_import, "run_seconds": total, "stages": stage,
                  "lights_done": summary.lights_done, "states": summary.states}))
"""


def log(text: str) -> None:
    print(text, flush=True)


def clinepipe_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "clinepipe"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "clinepipe.cli"]


def measured(cmd: list[str], *, env=None, timeout=None) -> dict:
    """Run ``cmd`` under the wrapper: wall time and peak RSS of that process tree's largest."""
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True,
                          env=env, timeout=timeout, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["returncode"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out['returncode']}):\n{out['stderr']}")
    return out


def best_of(repeat: int, fn):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def verdict(ok) -> str:
    return "not measured" if ok is None else ("pass" if ok else "FAIL")


# ----------------------------------------------------------------------------- 1 + 2 masters

def write_bias_frames(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """uint16 bias frames (BZERO 32768, as cameras write them) that read_frame_info accepts."""
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    base = (1000.0 + rng.normal(0.0, 5.0, (size, size))).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        frame = base + rng.normal(0.0, 23.0, (size, size)).astype(np.float32)
        hdr = fits.Header()
        hdr["IMAGETYP"] = "Bias Frame"
        hdr["EXPTIME"] = 0.0
        hdr["DATE-OBS"] = f"2026-03-15T01:{i // 60:02d}:{i % 60:02d}"
        hdr["XBINNING"] = 1
        hdr["YBINNING"] = 1
        hdr["CCD-TEMP"] = -10.0
        p = folder / f"bias_{i:03d}.fit"
        fits.PrimaryHDU(np.clip(np.rint(frame), 0, 65535).astype(np.uint16), header=hdr).writeto(p)
        paths.append(p)
    return paths


def bench_masters(tmp: Path, args) -> dict:
    import bottleneck as bn
    from astropy.io import fits

    from clinepipe.ccd.master_stacks import build_bias
    from clinepipe.ccd.stack import median_stack

    n, size, repeat = args.frames, args.size, args.repeat
    log(f"[1] writing {args.rss_frames} uint16 frames of {size}x{size} ...")
    t0 = time.perf_counter()
    all_paths = write_bias_frames(tmp / "bias_all", args.rss_frames, size)
    paths = all_paths[:n]
    folder_n = tmp / f"bias_{n}"
    folder_n.mkdir()
    for p in paths:
        os.link(p, folder_n / p.name)
    write_s = time.perf_counter() - t0

    def read_all():
        stack = np.empty((len(paths), size, size), np.float32)
        for i, p in enumerate(paths):
            stack[i] = fits.getdata(p)
        return stack

    read_s, stack = best_of(repeat, read_all)           # also warms the page cache
    bn_s, reference = best_of(repeat, lambda: bn.median(stack, axis=0))
    stack = None  # frees the stack before the next measurement
    log(f"    read (astropy) {read_s:.2f} s, bottleneck.median in memory {bn_s:.2f} s")
    stack_s, got = best_of(repeat, lambda: median_stack(paths))
    identical = bool(np.array_equal(got, reference))
    bias_s, res = best_of(repeat, lambda: build_bias(paths, min_frames=1))
    identical_bias = bool(np.array_equal(res.data, reference))
    del got, res, reference
    log(f"    median_stack {stack_s:.2f} s, build_bias {bias_s:.2f} s (identical: {identical})")

    # start-up of the command line
    help_runs = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(clinepipe_cmd() + ["--help"], capture_output=True, check=True)
        help_runs.append(time.perf_counter() - t)
    python_runs = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
        python_runs.append(time.perf_counter() - t)

    cmd_runs = []
    for i in range(repeat):
        out = tmp / f"masters_cmd_{i}"
        cmd_runs.append(measured(clinepipe_cmd() + ["masters", str(folder_n), "--output", str(out)]))
        shutil.rmtree(out, ignore_errors=True)
    cmd_best = min(cmd_runs, key=lambda r: r["wall_seconds"])
    log(f"    `clinepipe masters` ({n} files) {cmd_best['wall_seconds']:.2f} s, "
        f"`clinepipe --help` {statistics.median(help_runs):.2f} s")

    log(f"[1] ccdproc.combine(method='median') of {n} frames (a process, once) ...")
    ccd = measured([sys.executable, str(HERE / "reference_ccdproc.py"), "combine",
                    *map(str, paths), "--output", str(tmp / "ccdproc_master.fits")])
    log(f"    ccdproc script {ccd['wall_seconds']:.2f} s, peak RSS {ccd['maxrss_bytes'] / 2**20:.0f} MiB")

    log(f"[2] peak RSS of `clinepipe masters` on {args.rss_frames} frames ...")
    rss = measured(clinepipe_cmd() + ["masters", str(tmp / "bias_all"), "--output",
                                      str(tmp / "masters_rss")])
    log(f"    {rss['wall_seconds']:.2f} s, peak RSS {rss['maxrss_bytes'] / 2**20:.0f} MiB")

    return {
        "frames": n, "size": size, "repeat": repeat, "write_files_seconds": write_s,
        "read_files_astropy_seconds": read_s,
        "bottleneck_median_in_memory_seconds": bn_s,
        "read_plus_bottleneck_seconds": read_s + bn_s,
        "median_stack_seconds": stack_s, "median_stack_identical_to_bottleneck": identical,
        "build_bias_seconds": bias_s, "build_bias_identical_to_bottleneck": identical_bias,
        "clinepipe_help_seconds_median": statistics.median(help_runs),
        "python_startup_seconds_median": statistics.median(python_runs),
        "clinepipe_masters_cmd": cmd_best,
        "clinepipe_masters_cmd_all_seconds": [r["wall_seconds"] for r in cmd_runs],
        "ccdproc_combine_cmd": ccd,
        "rss": {"frames": args.rss_frames, **rss},
        "ratios": {
            "median_stack_vs_bottleneck": stack_s / bn_s,
            "build_bias_vs_bottleneck": bias_s / bn_s,
            "cmd_vs_read_plus_bottleneck": cmd_best["wall_seconds"] / (read_s + bn_s),
            "ccdproc_vs_cmd": ccd["wall_seconds"] / cmd_best["wall_seconds"],
        },
    }


# ----------------------------------------------------------------------------- 3 night

def _truth(truth_dir: Path, stem: str, cache: dict):
    if stem not in cache:
        import csv

        with open(truth_dir / "lights" / f"{stem}.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        cache[stem] = (np.array([float(r["x"]) for r in rows]),
                       np.array([float(r["y"]) for r in rows]),
                       np.array([float(r["mag"]) for r in rows]),
                       np.array([r["saturated"] not in ("0", "False", "false", "") for r in rows]))
    return cache[stem]


def accuracy(points, truth_dir: Path) -> dict:
    """Median |mag - true mag| of bright (S/N > 100), unsaturated stars matched within 1 px.

    ``points``: iterable of (frame stem, x 1-based, y 1-based, mag, flux, flux_err).
    """
    cache: dict = {}
    errors = []
    for stem, x, y, mag, flux, flux_err in points:
        if mag is None or flux is None or not flux_err or flux / flux_err <= 100:
            continue
        tx, ty, tmag, tsat = _truth(truth_dir, stem, cache)
        d = np.hypot(tx - x, ty - y)
        k = int(np.argmin(d))
        if d[k] < 1.0 and not tsat[k]:
            errors.append(mag - tmag[k])
    e = np.asarray(errors)
    if e.size == 0:
        return {"n": 0, "median_abs_error": None, "median_error": None}
    return {"n": int(e.size), "median_abs_error": float(np.median(np.abs(e))),
            "median_error": float(np.median(e)), "p90_abs_error": float(np.percentile(np.abs(e), 90))}


def _clinepipe_points(db: Path):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT f.raw_path, m.x, m.y, m.mag, m.flux, m.flux_err FROM measurements m "
                       "JOIN frames f ON f.id = m.frame_id WHERE m.mag IS NOT NULL").fetchall()
    con.close()
    return [(Path(r[0]).stem, *r[1:]) for r in rows]


def _reference_points(db: Path):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT f.name, m.x, m.y, m.mag, m.flux, m.flux_err FROM measurements m "
                       "JOIN frames f ON f.id = m.frame_id WHERE m.mag IS NOT NULL").fetchall()
    con.close()
    return list(rows)


def io_floor(lights: list[Path], out_dir: Path, repeat: int) -> tuple[float, float]:
    """Per light (best of ``repeat``): astropy reads the raw frame and writes the float32
    result (the I/O floor); and the same writing what clinepipe keeps of a light (float32
    data and uncertainty, uint8 mask) atomically (temporary file, fsync, rename)."""
    from astropy.io import fits

    out_dir.mkdir(parents=True, exist_ok=True)

    def plain():
        for p in lights:
            data = fits.getdata(p).astype(np.float32)
            fits.writeto(out_dir / f"{p.stem}.fits", data, overwrite=True)

    def planes():
        for p in lights:
            data = fits.getdata(p).astype(np.float32)
            hdul = fits.HDUList([fits.PrimaryHDU(data), fits.ImageHDU(data, name="UNCERT"),
                                 fits.ImageHDU(np.zeros(data.shape, np.uint8), name="MASK")])
            tmp = out_dir / f".{p.stem}_3.fits.tmp"
            with open(tmp, "wb") as fh:
                hdul.writeto(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, out_dir / f"{p.stem}_3.fits")

    floor, _ = best_of(repeat, plain)
    full, _ = best_of(repeat, planes)
    return floor / len(lights), full / len(lights)


def bench_night(tmp: Path, args) -> dict:
    from clinepipe.simulate import simulate_night

    night = tmp / "night"
    log(f"[3] simulating a night ({args.lights_per_filter} lights per filter) ...")
    t0 = time.perf_counter()
    sim = simulate_night(night, seed=11, lights_per_filter=args.lights_per_filter,
                         **({"width": args.night_width, "height": args.night_height}
                            if args.night_width else {}))
    sim_s = time.perf_counter() - t0
    lights = sorted(sim.incoming.rglob("*light*.fit"))
    shape = (sim.spec.ny, sim.spec.nx)
    log(f"    {len(lights)} lights of {shape[1]}x{shape[0]} in {sim_s:.1f} s")

    os.sync()  # every contender starts with no dirty pages of the others (fsync waits for them)
    floor, floor_planes = io_floor(lights, tmp / "io_floor", args.repeat)
    log(f"    I/O floor {floor * 1e3:.1f} ms per light ({floor_planes * 1e3:.1f} ms writing the "
        "three planes atomically)")

    from clinepipe.config import load_config

    cfg = load_config(sim.config_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    runs, refs = [], []
    acc_clinepipe = acc_ref = None
    for k in range(args.night_repeat):  # interleaved, so a busy moment hits both alike
        log(f"[3] clinepipe run, a fresh process on a fresh copy ({k + 1}/{args.night_repeat}) ...")
        copy = tmp / f"clinepipe_{k}"
        copy.mkdir()
        shutil.copytree(sim.incoming, copy / "incoming")
        for name in ("catalog.csv", "vsx.csv", "clinepipe.toml"):
            shutil.copy2(night / name, copy / name)
        os.sync()  # no dirty pages of the previous contender for this one's fsyncs to wait for
        proc = subprocess.run([sys.executable, "-c", NIGHT_CHILD, str(copy / "clinepipe.toml")],
                              capture_output=True, text=True, env=env, check=True)
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        run["per_light_seconds"] = run["stages"]["lights_stage"] / max(1, run["lights_done"])
        runs.append(run)
        log(f"    lights stage {run['stages']['lights_stage']:.2f} s for {run['lights_done']} lights "
            f"= {run['per_light_seconds'] * 1e3:.0f} ms per light (whole run {run['run_seconds']:.1f} s)")
        if acc_clinepipe is None:
            acc_clinepipe = accuracy(_clinepipe_points(copy / "clinepipe.db"), sim.truth_dir)
        shutil.rmtree(copy / "archive", ignore_errors=True)

        log(f"[3] reference ccdproc + photutils, a process ({k + 1}/{args.night_repeat}) ...")
        ref_json = tmp / f"reference_{k}.json"
        os.sync()
        ref_proc = measured([sys.executable, str(HERE / "reference_ccdproc.py"), "night", str(night),
                             "--output", str(tmp / f"reference_{k}"), "--aperture",
                             str(cfg.photometry.aperture), "--gain", str(cfg.camera.gain),
                             "--json", str(ref_json)])
        ref = json.loads(ref_json.read_text())
        ref["per_light_seconds"] = ref["lights_seconds"] / max(1, ref["n_lights"])
        ref["process_wall_seconds"] = ref_proc["wall_seconds"]
        ref["process_maxrss_bytes"] = ref_proc["maxrss_bytes"]
        refs.append(ref)
        if acc_ref is None:
            acc_ref = accuracy(_reference_points(Path(ref["database"])), sim.truth_dir)
        log(f"    reference {ref['per_light_seconds'] * 1e3:.0f} ms per light")
    log(f"    accuracy (median |mag - truth|): clinepipe {acc_clinepipe['median_abs_error']}, "
        f"reference {acc_ref['median_abs_error']}")
    run = min(runs, key=lambda r: r["per_light_seconds"])
    ref = min(refs, key=lambda r: r["per_light_seconds"])
    per_light, ref_per_light = run["per_light_seconds"], ref["per_light_seconds"]
    run = {**run, "all_per_light_seconds": [r["per_light_seconds"] for r in runs]}
    ref = {**ref, "all_per_light_seconds": [r["per_light_seconds"] for r in refs]}
    return {
        "lights": len(lights), "shape": list(shape), "simulate_seconds": sim_s,
        "io_floor_per_light_seconds": floor,
        "io_floor_three_planes_fsync_per_light_seconds": floor_planes,
        "repeat": args.night_repeat,
        "clinepipe": run,
        "reference": ref,
        "accuracy": {"clinepipe": acc_clinepipe, "reference": acc_ref},
        "ratios": {"reference_vs_clinepipe": ref_per_light / per_light,
                   "clinepipe_vs_io_floor": per_light / floor,
                   "clinepipe_vs_io_floor_three_planes": per_light / floor_planes},
    }


def light_profile(tmp: Path, args) -> dict | None:
    """Where a light's time goes: bench/profile_lights.py in a fresh process (it wraps the
    pipeline's functions with timers, so it cannot share this process)."""
    log("[3] where a light's time goes (bench/profile_lights.py) ...")
    out = tmp / "light_profile.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(HERE / "profile_lights.py"), "--lights",
                           str(args.lights_per_filter), "--json", str(out)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        log(f"    profile_lights.py failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(out.read_text())


# ----------------------------------------------------------------------------- 3b + 3c

def _script(tmp: Path, args, name: str, extra: list[str], label: str) -> dict | None:
    """``bench/<name>.py`` in its own process writing ``results/<stem>.json``; its JSON, or
    the error."""
    stem = name.removeprefix("bench_")
    out = tmp / f"{stem}.json"
    log(f"{label} bench/{name}.py {' '.join(extra)} ...")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *extra, "--output", str(out)],
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    log(proc.stdout[-3000:])
    if not out.exists():
        return {"error": proc.stdout[-1000:]}
    args.output.mkdir(parents=True, exist_ok=True)
    shutil.copy2(out, args.output / f"{stem}.json")
    return json.loads(out.read_text())


def bench_night_e2e(tmp: Path, args) -> dict | None:
    """One night end to end, ``clinepipe run`` as a process (bench/bench_night.py)."""
    return _script(tmp, args, "bench_night", ["--size", str(args.e2e_size)], "[3b]")


def bench_fullres(tmp: Path, args) -> dict | None:
    """Full-resolution frames: a light against its I/O floor, a master's RSS (bench_fullres)."""
    return _script(tmp, args, "bench_fullres", ["--master-frames", str(args.rss_frames)], "[3c]")


# ----------------------------------------------------------------------------- 4 + 5

def bench_db(tmp: Path, args) -> dict | None:
    script = HERE / "bench_db.py"
    if not script.exists() or args.skip_db:
        return None
    log("[4] bench/bench_db.py ...")
    out = tmp / "db.json"
    proc = subprocess.run([sys.executable, str(script), "--output", str(out)],
                          capture_output=True, text=True, timeout=900)
    if not out.exists():
        return {"error": (proc.stderr or proc.stdout)[-1000:]}
    result = json.loads(out.read_text())
    log(f"    insert {result.get('insert_rate_per_s')}/s, light curve median "
        f"{result.get('lightcurve_median_ms')} ms")
    return result


def _find_key(obj, words):
    """First numeric value whose key contains one of ``words`` (depth-first)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if any(w in str(k).lower() for w in words) and isinstance(v, (int, float)) \
                    and not isinstance(v, bool):
                return v
        for v in obj.values():
            found = _find_key(v, words)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = _find_key(v, words)
            if found is not None:
                return found
    return None


def bench_dask(tmp: Path, args) -> dict | None:
    script = HERE / "bench_dask.py"
    if not script.exists() or args.skip_dask:
        return None
    log("[5] bench/bench_dask.py ...")
    out = tmp / "dask.json"
    helptext = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                              text=True, timeout=120).stdout
    cmd = [sys.executable, str(script)] + (["--output", str(out)] if "--output" in helptext else [])
    started = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.dask_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.dask_timeout} s"}
    candidates = [out, RESULTS / "dask.json"]
    for c in candidates:
        if c.exists() and c.stat().st_mtime >= started - 1:
            result = json.loads(c.read_text())
            result["_speedup"] = result.get("speedup_wall", _find_key(result, ("speedup", "speed_up")))
            return result
    return {"error": "no JSON result found", "stdout": proc.stdout[-2000:],
            "stderr": proc.stderr[-2000:]}


def bench_cluster(tmp: Path, args) -> dict | None:
    """``bench/bench_cluster.py`` in its own process; its JSON (also copied to the results),
    or the error."""
    if args.skip_cluster:
        return None
    log(f"[5b] bench/bench_cluster.py --lights {args.cluster_lights} ...")
    out = tmp / "cluster.json"
    cmd = [sys.executable, str(HERE / "bench_cluster.py"), "--lights", str(args.cluster_lights),
           "--output", str(out)]
    try:
        proc = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=args.cluster_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.cluster_timeout} s"}
    log(proc.stdout[-3000:])
    if not out.exists():
        return {"error": proc.stdout[-1000:]}
    args.output.mkdir(parents=True, exist_ok=True)
    shutil.copy2(out, args.output / f"cluster_{args.cluster_lights}lights.json")
    return json.loads(out.read_text())


def bench_archive(tmp: Path, args) -> dict | None:
    """``bench/bench_archive.py`` in its own process (its archives are cached under
    ``bench/.cache/``); its JSON, or the error."""
    log("[6] bench/bench_archive.py (ten years of archive) ...")
    out = tmp / "archive.json"
    cmd = [sys.executable, str(HERE / "bench_archive.py"), "--output", str(out),
           "--measurements", str(args.archive_measurements)]
    proc = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log(proc.stdout[-6000:])
    if not out.exists():
        return {"error": proc.stdout[-1000:]}
    shutil.copy2(out, args.output / "archive.json")
    return json.loads(out.read_text())


# ----------------------------------------------------------------------------- report

def fmt_s(seconds) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def build_table(res: dict) -> tuple[list[list[str]], dict]:
    rows = []
    targets = {}
    m = res.get("masters")
    if m:
        r = m["ratios"]
        n, size = m["frames"], m["size"]
        ok = r["median_stack_vs_bottleneck"] <= T_MEDIAN_VS_BN
        targets["median_vs_bottleneck"] = ok
        rows.append([f"master median, {n}×{size}² (function, reading files)",
                     f"`median_stack` {fmt_s(m['median_stack_seconds'])}; `build_bias` {fmt_s(m['build_bias_seconds'])}",
                     f"`bottleneck.median` on the stack in memory {fmt_s(m['bottleneck_median_in_memory_seconds'])}",
                     f"{r['median_stack_vs_bottleneck']:.2f}× ({r['build_bias_vs_bottleneck']:.2f}×)",
                     f"≤ {T_MEDIAN_VS_BN}×", verdict(ok)])
        cmd = m["clinepipe_masters_cmd"]["wall_seconds"]
        ok = r["cmd_vs_read_plus_bottleneck"] <= T_CMD_VS_READ_BN
        targets["masters_cmd_vs_read_bottleneck"] = ok
        rows.append([f"`clinepipe masters` command, {n} files (process)", fmt_s(cmd),
                     f"astropy read {fmt_s(m['read_files_astropy_seconds'])} + bottleneck "
                     f"{fmt_s(m['bottleneck_median_in_memory_seconds'])}",
                     f"{r['cmd_vs_read_plus_bottleneck']:.2f}×", f"≤ {T_CMD_VS_READ_BN}×", verdict(ok)])
        ok = r["ccdproc_vs_cmd"] >= T_CMD_VS_CCDPROC
        targets["masters_cmd_vs_ccdproc"] = ok
        rows.append([f"`clinepipe masters` vs `ccdproc.combine(method='median')` script, {n} files",
                     fmt_s(cmd), fmt_s(m["ccdproc_combine_cmd"]["wall_seconds"]),
                     f"{r['ccdproc_vs_cmd']:.1f}× faster", f"≥ {T_CMD_VS_CCDPROC}× faster", verdict(ok)])
        rows.append(["`clinepipe --help` start-up", fmt_s(m["clinepipe_help_seconds_median"]),
                     f"`python -c pass` {fmt_s(m['python_startup_seconds_median'])}", "", "", ""])
        rss = m["rss"]["maxrss_bytes"]
        ok = rss <= T_RSS_BYTES
        targets["rss_40"] = ok
        ccd_rss = m["ccdproc_combine_cmd"]["maxrss_bytes"]
        rows.append([f"peak RSS, master of {m['rss']['frames']}×{size}² (`clinepipe masters`)",
                     f"{rss / 2**20:.0f} MiB",
                     f"ccdproc.combine of {n}: {ccd_rss / 2**20:.0f} MiB",
                     f"{ccd_rss / rss:.1f}× less than ccdproc with half the frames",
                     "≤ 1024 MiB", verdict(ok)])
    nt = res.get("night")
    if nt:
        r = nt["ratios"]
        per = nt["clinepipe"]["per_light_seconds"]
        ok = r["reference_vs_clinepipe"] >= T_NIGHT_VS_REF
        targets["night_vs_reference"] = ok
        shape = f"{nt['shape'][1]}×{nt['shape'][0]}"
        rows.append([f"night throughput per light ({nt['lights']} lights of {shape}: reduce, "
                     "sources, photometry, calibrate, store)", fmt_s(per),
                     f"ccdproc + photutils + sqlite3 {fmt_s(nt['reference']['per_light_seconds'])}",
                     f"{r['reference_vs_clinepipe']:.1f}× faster", f"≥ {T_NIGHT_VS_REF}× faster",
                     verdict(ok)])
        ok = r["clinepipe_vs_io_floor"] <= T_NIGHT_VS_IO
        targets["night_vs_io_floor"] = ok
        rows.append(["night throughput per light vs the I/O floor", fmt_s(per),
                     f"astropy read raw + write float32 {fmt_s(nt['io_floor_per_light_seconds'])}"
                     f" (with uncertainty + mask planes, fsync: "
                     f"{fmt_s(nt['io_floor_three_planes_fsync_per_light_seconds'])}, "
                     f"{r['clinepipe_vs_io_floor_three_planes']:.1f}×)",
                     f"{r['clinepipe_vs_io_floor']:.1f}×", f"≤ {T_NIGHT_VS_IO}×", verdict(ok)])
        a, b = nt["accuracy"]["clinepipe"], nt["accuracy"]["reference"]
        ok = None
        if a["median_abs_error"] is not None and b["median_abs_error"] is not None:
            ok = a["median_abs_error"] <= b["median_abs_error"]
        targets["accuracy"] = ok

        def mmag(v):
            return "–" if v is None else f"{v * 1e3:.1f} mmag"

        rows.append(["accuracy: median |mag − truth|, bright unsaturated stars (S/N > 100)",
                     f"{mmag(a['median_abs_error'])} (n = {a['n']}, bias {mmag(a['median_error'])})",
                     f"{mmag(b['median_abs_error'])} (n = {b['n']}, bias {mmag(b['median_error'])})",
                     "", "no worse than the reference", verdict(ok)])
    rows += e2e_rows(res, targets)
    db = res.get("db")
    if db and "lightcurve_median_ms" in db:
        ok = db["lightcurve_median_ms"] <= T_LC_MS
        targets["lightcurve"] = ok
        rows.append([f"light curve among {db['measurements']:,} measurements ({db['backend']})",
                     f"{db['lightcurve_median_ms']:.1f} ms median ({db['lightcurve_points_median']:.0f} points)",
                     "", "", f"≤ {T_LC_MS:.0f} ms", verdict(ok)])
        per_tx = db.get("frames_per_transaction", 1)
        cmp = db.get("batched_insert") or {}
        rows.append([f"bulk insert of measurements ({per_tx} frame(s) per transaction, as `run`)",
                     f"{db['insert_rate_per_s']:,} /s",
                     f"{cmp['frames_per_transaction']} frame(s) per transaction: "
                     f"{cmp['insert_rate_per_s']:,} /s" if cmp else "", "",
                     f"≥ {db.get('insert_target_per_s', 0):,.0f} /s (bench_db's own target)",
                     verdict(db.get("insert_ok"))])
    else:
        targets["lightcurve"] = None
        rows.append(["light curve among 1 M measurements", "not measured", "", "", f"≤ {T_LC_MS:.0f} ms",
                     "not measured"])
    dk = res.get("dask")
    speed = dk.get("_speedup") if isinstance(dk, dict) else None
    if speed is not None:
        ok = speed >= T_DASK
        targets["dask"] = ok
        extra = ", ".join(f"{k.removeprefix('speedup_')} {dk[k]:.2f}×" for k in
                          ("speedup_run", "speedup_lights_stage", "speedup_steady_state")
                          if isinstance(dk.get(k), (int, float)))
        if isinstance(dk.get("ceiling"), (int, float)):
            extra += (f"; serial keeps {dk['serial']['cpus_used']:.2f} CPUs busy, so no 2-process "
                      f"split can beat {dk['ceiling']:.2f}× on this machine")
        rows.append(["Dask, 2 workers vs serial, whole `clinepipe run` (bench/bench_dask.py)",
                     f"{speed:.2f}× faster", extra, "", f"≥ {T_DASK}×", verdict(ok)])
    else:
        targets["dask"] = None
        note = "not measured" if not dk else f"not measured ({dk.get('error', 'no speed-up in its JSON')})"
        rows.append(["Dask, 2 workers vs serial", note, "", "", f"≥ {T_DASK}×", "not measured"])
    cl = res.get("cluster")
    if isinstance(cl, dict) and "serial_part" in cl:
        rows += cluster_rows(cl, targets)
    elif cl:
        rows.append(["Dask on a real cluster (bench/bench_cluster.py)",
                     f"not measured ({cl.get('error', '')[-200:]})", "", "", "", "not measured"])
    ar = res.get("archive")
    if isinstance(ar, dict) and "table" in ar:
        for backend in ar["backends"]:
            r = ar[backend]
            n = r["spec"]["measurements"]
            cells = [("lc", r["lc"]["median_seconds"], ar["goals"]["lc_ms"] / 1e3),
                     ("stars", r["stars"].get("median_seconds"), ar["goals"]["stars_s"]),
                     ("variables", r["variables"].get("median_seconds"), ar["goals"]["variables_s"])]
            for name, value, goal in cells:
                ok = None if value is None and name != "variables" else (value is not None
                                                                          and value <= goal)
                targets[f"archive_{backend}_{name}"] = ok
                rows.append([f"`clinepipe {name}` on {n:,} measurements ({backend}, process)",
                             fmt_s(value) if value is not None else "timed out", "", "",
                             f"≤ {fmt_s(goal)}", verdict(ok)])
            run = r.get("run")
            if run:
                ok = run["ratio_best"] <= ar["goals"]["run_ratio"]
                targets[f"archive_{backend}_run"] = ok
                rows.append([f"`clinepipe run` of a new night on {n:,} measurements ({backend})",
                             f"{min(run['archive_seconds']):.1f} s",
                             f"empty database {min(run['empty_seconds']):.1f} s",
                             f"{run['ratio_best']:.2f}×", f"≤ {ar['goals']['run_ratio']}×",
                             verdict(ok)])
            for path, w in (r.get("web") or {}).items():
                value = w.get("median_seconds")
                ok = value is not None and value * 1e3 <= ar["goals"]["web_ms"]
                targets[f"archive_{backend}_web_{path}"] = ok
                rows.append([f"web `GET {path}` on {n:,} measurements ({backend})",
                             fmt_s(value) if value is not None else "no answer",
                             f"first after start-up {fmt_s(w.get('first_seconds'))}", "",
                             f"≤ {ar['goals']['web_ms']:.0f} ms", verdict(ok)])
            rows.append([f"database size per measurement, indexes included ({backend})",
                         f"{r['size']['bytes_per_measurement']:.0f} B", "", "", "", ""])
    elif ar:
        rows.append(["ten years of archive (bench/bench_archive.py)",
                     f"not measured ({ar.get('error', '')[-200:]})", "", "", "", "not measured"])
    return rows, targets


def e2e_rows(res: dict, targets: dict) -> list[list[str]]:
    """The table's rows of bench_night.py (one night end to end) and bench_fullres.py."""
    rows = []
    e = res.get("night_e2e")
    if isinstance(e, dict) and "ratios" in e:
        run, ref, r = e["clinepipe_run"]["wall_seconds"], e["reference"]["wall_seconds"], e["ratios"]
        top = sorted(e["clinepipe_run"]["profile"].items(), key=lambda kv: -kv[1])[:5]
        where = ", ".join(f"{k.split(' (')[0]} {v:.1f} s" for k, v in top)
        size = f"{e['size']}²"
        targets["e2e_vs_io_floor"] = e["targets"]["clinepipe_vs_io_floor"]
        targets["e2e_vs_reference"] = e["targets"]["reference_vs_clinepipe"]
        targets["e2e_accuracy"] = e["targets"]["accuracy"]
        rows.append([f"one night end to end, `clinepipe run` (process, fresh archive; {e['lights']} "
                     f"lights + {e['raw_frames'] - e['lights']} calibration frames of {size}; "
                     "bench/bench_night.py)", fmt_s(run),
                     f"I/O floor (read every raw frame, write every light float32) "
                     f"{fmt_s(e['io_floor_seconds'])}; largest: {where}",
                     f"{r['clinepipe_vs_io_floor']:.1f}×", "≤ 5×",
                     verdict(e["targets"]["clinepipe_vs_io_floor"])])
        rows.append([f"one night end to end vs the ccdproc + photutils + sqlite3 script ({size})",
                     fmt_s(run), fmt_s(ref), f"{r['reference_vs_clinepipe']:.1f}× faster",
                     "≥ 8× faster", verdict(e["targets"]["reference_vs_clinepipe"])])
        a, b = e["accuracy"]["clinepipe"], e["accuracy"]["reference"]
        rows.append([f"accuracy of that night: median |mag − truth|, S/N > 100 ({size})",
                     f"{a['median_abs_error'] * 1e3:.1f} mmag (n = {a['n']})",
                     f"{b['median_abs_error'] * 1e3:.1f} mmag (n = {b['n']})", "",
                     "no worse than the reference", verdict(e["targets"]["accuracy"])])
    elif e:
        rows.append(["one night end to end (bench/bench_night.py)",
                     f"not measured ({e.get('error', '')[-200:]})", "", "", "", "not measured"])
    f = res.get("fullres")
    if isinstance(f, dict) and "light" in f:
        lt, ms = f["light"], f["master"]
        shape = f"{f['shape'][1]}×{f['shape'][0]}"
        targets["fullres_light_vs_io"] = lt["pass"]
        targets["fullres_master_rss"] = ms["pass"]
        rows.append([f"a light of {shape} (full resolution) vs its I/O floor "
                     "(bench/bench_fullres.py)", fmt_s(lt["per_light_seconds"]),
                     f"astropy read raw + write float32 {fmt_s(lt['io_floor_per_light_seconds'])}",
                     f"{lt['ratio']:.1f}×", f"≤ {lt['target']:.0f}×", verdict(lt["pass"])])
        rows.append([f"peak RSS, master of {ms['frames']}×{shape} (`clinepipe masters`)",
                     f"{ms['maxrss_bytes'] / 2**20:.0f} MiB", f"{fmt_s(ms['wall_seconds'])}", "",
                     "≤ 1024 MiB", verdict(ms["pass"])])
    elif f:
        rows.append(["full-resolution frames (bench/bench_fullres.py)",
                     f"not measured ({f.get('error', '')[-200:]})", "", "", "", "not measured"])
    return rows


def cluster_rows(cl: dict, targets: dict) -> list[list[str]]:
    """The table's rows of ``bench/bench_cluster.py``'s result."""
    sr, mean = cl["serial_run"], cl["light_cpu_mean_seconds"]
    where = ", ".join(f"{k} {v:.1f} s" for k, v in
                      list(cl["serial_cpu_outside_per_light_work"].items())[:4])
    ok = cl["serial_part"] <= T_SERIAL_PART
    targets["cluster_serial_part"] = ok
    rows = [[f"serial part of a {cl['lights']}-light night: CPU outside the per-light work / "
             "the run's CPU (bench/bench_cluster.py)",
             f"{100 * cl['serial_part']:.0f} % ({sr['cpu_seconds'] - cl['per_light_work_cpu_seconds']:.1f}"
             f" of {sr['cpu_seconds']:.1f} CPU s)",
             f"largest: {where}; on the cluster the run's own process does "
             f"{100 * cl['cluster_run_main_share']:.0f} % of the CPU",
             "", f"≤ {100 * T_SERIAL_PART:.0f} %", verdict(ok)]]
    ok = cl["worker_vs_serial_light_cpu"] <= T_WORKER_LIGHT
    targets["cluster_worker_light_cpu"] = ok
    rows.append(["a light's CPU on a `dask worker` vs serial (the worker's profiler off)",
                 f"{mean['worker'] * 1e3:.0f} ms",
                 f"serial {mean['serial'] * 1e3:.0f} ms; with Dask's default profiler on "
                 f"{mean['worker_profiler_on'] * 1e3:.0f} ms "
                 f"({cl['worker_vs_serial_light_cpu_profiler_on']:.2f}×)",
                 f"{cl['worker_vs_serial_light_cpu']:.2f}×", f"≤ {T_WORKER_LIGHT}×", verdict(ok)])
    rows.append(["expected speed-up of the night on 8 / 32 workers (Amdahl, from the two above)",
                 " / ".join(f"{v:.2f}×" for v in cl["expected_speedup"].values()),
                 f"at most {cl['speedup_limit']:.2f}× on any number", "", "", ""])
    return rows


def write_report(res: dict, path: Path) -> None:
    rows, targets = build_table(res)
    res["targets"] = targets
    head = ["measurement", "clinepipe", "comparison", "ratio", "target", "result"]
    lines = [
        "# clinepipe benchmarks",
        "",
        f"`{res['command']}` on {res['machine']} ({res['cpus']} CPUs, load average "
        f"{res['load_average_before']}), {res['date']}; total {res['total_seconds']:.0f} s. "
        "Ratios come from this one run (the machine is shared, so timings are noisy).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    m, nt = res.get("masters"), res.get("night")
    lines += ["", "Notes:", ""]
    if m:
        lines.append(f"* Masters: uint16 frames with BZERO = 32768, as cameras write them, in the page "
                     f"cache for every contender; functions best of {m['repeat']}; `median_stack` result "
                     f"identical to `bottleneck.median`: {m['median_stack_identical_to_bottleneck']}. "
                     "The command time includes Python start-up, reading every header, the per-frame "
                     "statistics, SHA-256 provenance of the inputs and writing the master.")
    if nt:
        c = nt["clinepipe"]["stages"]
        lines.append(f"* Night (best of {nt['repeat']} interleaved runs of each, per light: clinepipe "
                     + ", ".join(f"{v * 1e3:.0f}" for v in nt["clinepipe"]["all_per_light_seconds"])
                     + " ms; reference "
                     + ", ".join(f"{v * 1e3:.0f}" for v in nt["reference"]["all_per_light_seconds"])
                     + " ms): clinepipe's lights stage is timed inside `run_pipeline` in a fresh process, "
                     "the modules it uses imported beforehand as the reference imports ccdproc and "
                     "photutils before its loop "
                     f"(ingest {c.get('ingest_stage', 0):.1f} s and masters {c.get('masters_stage', 0):.1f} s "
                     f"are not counted; one-off costs inside the lights stage, such as loading the "
                     f"masters and the catalog, are). The reference's lights loop is timed the same way "
                     f"(its ccdproc masters took {nt['reference']['masters_seconds']:.1f} s, not counted).")
    cl = res.get("cluster")
    if isinstance(cl, dict) and "serial_part" in cl:
        lines.append(f"* Dask on a real cluster (`bench/bench_cluster.py --lights {cl['lights']}`, "
                     f"`cluster_{cl['lights']}lights.json`): a `dask scheduler` and two "
                     "single-threaded `dask worker` processes on loopback, the run's export equal to "
                     "the serial run's. The serial part is the serial run's CPU outside the per-light "
                     "work (interpreter start and imports included) over its whole CPU; a light's CPU "
                     "is measured where it runs, a plain process and a worker alternating; the "
                     "speed-up on n workers is 1 / (s + r (1 − s) / n). `--cluster-lights 200` for "
                     "the 200-light night.")
    prof = res.get("light_profile")
    if prof:
        lines += ["", f"Where a light's time goes (`bench/profile_lights.py`: {prof['lights']} lights "
                  f"of {prof['shape'][1]}×{prof['shape'][0]} timed inside `run_pipeline`, median per "
                  "light; the writer thread runs beside these steps):", "",
                  "| step | median ms | total s |", "|---|---|---|"]
        for st in prof["steps"]:
            lines.append(f"| {st['step'].strip()} | {st['median_ms']:.2f} | {st['total_s']:.2f} |")

    lines += ["", "Raw numbers: `all.json`.", ""]
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--rss-frames", type=int, default=40)
    ap.add_argument("--lights-per-filter", type=int, default=20,
                    help="lights per filter of the simulated night (the simulator's default)")
    ap.add_argument("--night-width", type=int, default=None)
    ap.add_argument("--night-height", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--night-repeat", type=int, default=3,
                    help="runs of clinepipe and of the reference on the night (best of each)")
    ap.add_argument("--e2e-size", type=int, default=2048,
                    help="frame size of bench_night.py's end-to-end night")
    ap.add_argument("--skip-fullres", action="store_true")
    ap.add_argument("--skip-db", action="store_true")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--dask-timeout", type=float, default=300.0)
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--cluster-lights", type=int, default=200,
                    help="lights of bench_cluster.py's night (200: the issue's)")
    ap.add_argument("--cluster-timeout", type=float, default=900.0)
    ap.add_argument("--only", choices=("masters", "night", "e2e", "fullres", "db", "dask",
                                       "cluster", "archive"),
                    action="append")
    ap.add_argument("--skip-archive", action="store_true",
                    help="leave out the ten-year archive (bench/bench_archive.py, see above)")
    ap.add_argument("--archive-measurements", type=int, default=10_000_000)
    ap.add_argument("--quick", action="store_true",
                    help="small sizes to check the script works (numbers meaningless)")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.frames, args.rss_frames, args.repeat = 512, 6, 8, 1
        args.lights_per_filter, args.night_width, args.night_height = 2, 320, 320
        args.night_repeat, args.e2e_size = 1, 256
        args.skip_db = args.skip_dask = args.skip_cluster = args.skip_fullres = True
        args.skip_archive = True
    only = set(args.only or ("masters", "night", "e2e", "fullres", "db", "dask", "cluster")
               + (() if args.skip_archive else ("archive",)))

    try:
        load = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        load = None
    t_all = time.perf_counter()
    res: dict = {
        "command": "make bench" if not argv and len(sys.argv) == 1 else
        " ".join(["bench/run_all.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.system()} {platform.machine()}", "cpus": os.cpu_count(),
        "python": platform.python_version(), "load_average_before": load,
    }
    try:
        import astropy
        import bottleneck
        import ccdproc
        import photutils
        import sep

        res["versions"] = {"numpy": np.__version__, "astropy": astropy.__version__,
                           "bottleneck": bottleneck.__version__, "sep": sep.__version__,
                           "ccdproc": ccdproc.__version__, "photutils": photutils.__version__}
    except ImportError as exc:
        raise SystemExit(f"run_all.py needs the bench extra (pip install -e '.[bench]'): {exc}")

    with tempfile.TemporaryDirectory(prefix="clinepipe-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if "masters" in only:
            res["masters"] = bench_masters(tmp / "m", args)
            shutil.rmtree(tmp / "m", ignore_errors=True)
        if "night" in only:
            res["night"] = bench_night(tmp / "n", args)
            shutil.rmtree(tmp / "n", ignore_errors=True)
            res["light_profile"] = light_profile(tmp, args)
        if "e2e" in only:
            res["night_e2e"] = bench_night_e2e(tmp, args)
        if "fullres" in only and not args.skip_fullres:
            res["fullres"] = bench_fullres(tmp, args)
        if "db" in only:
            res["db"] = bench_db(tmp, args)
        if "dask" in only:
            res["dask"] = bench_dask(tmp, args)
        if "cluster" in only:
            res["cluster"] = bench_cluster(tmp, args)
        if "archive" in only:
            args.output.mkdir(parents=True, exist_ok=True)
            res["archive"] = bench_archive(tmp, args)
    res["total_seconds"] = time.perf_counter() - t_all

    args.output.mkdir(parents=True, exist_ok=True)
    write_report(res, args.output / "README.md")
    (args.output / "all.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    log((args.output / "README.md").read_text())
    log(f"wrote {args.output / 'README.md'} and {args.output / 'all.json'} "
        f"in {res['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
