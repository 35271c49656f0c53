"""Benchmark of the daily run: serial against Dask (``clinepipe run --workers N``).

    .venv/bin/python bench/bench_dask.py [--width 1117] [--height 844] [--binning 3]
                                         [--lights 20] [--workers 2] [--repeat 1] [--keep DIR]

Simulates one night (default: the simulator's full 1117×844 binned frames, 20 lights per filter,
the calibration frames), copies it twice and runs ``clinepipe run`` on each copy as cron would
(a fresh process, stdin closed): once serial, once with ``--workers N`` (a LocalCluster of N
single-threaded worker processes). Both start from the same frames and an empty archive and
database; their exports must be identical. With ``--repeat`` > 1 each is run that many times
on fresh copies and the best time is kept.

Prints and writes to ``bench/results/dask.json``: how many CPUs were really free (a fixed chore
run alone and ``--workers`` at once, before and after: other programs on the machine skew every
figure), the wall-clock time of the whole command, the
run's own time (``run_pipeline``), and the time of each stage (from the log's timestamps:
start → ingest done → masters done → lights done → finished), the mean gap between two
stored lights (the steady-state cost of a light), the speed-ups, and the CPU the whole machine
spent on each run (from ``/proc/stat``): how many CPUs the serial run already keeps busy bounds
what any split of its work over 2 processes can gain here (the "ceiling"). The goal is a
whole-run speed-up of at least 1.6× with 2 workers on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

TARGET = 1.6
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def simulate(out: Path, args) -> None:
    from clinepipe.simulate import simulate_night

    overrides = {"lights_per_filter": args.lights}
    if args.binning:
        overrides["binning"] = args.binning
    if args.width:
        overrides["width"] = args.width
    if args.height:
        overrides["height"] = args.height
    simulate_night(out, seed=args.seed, **overrides)


def fresh_copy(source: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)  # (a run kept from an earlier call)
    dest.mkdir(parents=True)
    shutil.copytree(source / "incoming", dest / "incoming")
    for name in ("catalog.csv", "vsx.csv", "clinepipe.toml"):
        shutil.copy2(source / name, dest / name)
    return dest / "clinepipe.toml"


def stage_times(log: Path) -> dict:
    """Seconds per stage from the log's timestamps (one run per log)."""
    marks = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        m = _STAMP.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        text = line[m.end():]
        if " started (clinepipe " in text:
            marks["start"] = t
        elif text.startswith("INFO ingest: "):
            marks["ingest"] = t
        elif text.startswith("INFO master ") or " for binning " in text:
            marks["masters"] = t
        elif re.search(r": (calibrated|measured|failed|waiting)\b", text) and "light" in text:
            marks["lights"] = t
        elif " finished in " in text:
            marks["finished"] = t
    out, last = {}, marks.get("start")
    for stage in ("ingest", "masters", "lights", "finished"):
        if stage in marks and last is not None:
            out["finishing" if stage == "finished" else stage] = round(marks[stage] - last, 3)
            last = marks[stage]
    return out


def light_interval(log: Path) -> float | None:
    """Mean seconds between two stored lights, from the first stored to the last (from the
    log): the steady-state cost of a light, without the lights stage's start (workers coming
    up, the catalog loaded). A mean, not a median: Dask results arrive in bursts. With Dask,
    the lights the run measured itself while the workers started are left out (from the
    first light stored after the workers took over)."""
    stamps = []
    for line in log.read_text(encoding="utf-8").splitlines():
        m = _STAMP.match(line)
        if m and "while the Dask workers started" in line:
            stamps = []
            continue
        if m and "light" in line and re.search(r": (calibrated|measured)\b", line[m.end():]):
            stamps.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    if len(stamps) < 3:
        return None
    return round((stamps[-1] - stamps[0]) / (len(stamps) - 1), 4)


def export_digest(cfg_path: Path) -> tuple[int, str]:
    """Rows of `export --format csv` and a digest of them sorted (star ids as they are)."""
    out = cfg_path.parent / "export.csv"
    subprocess.run([sys.executable, "-m", "clinepipe.cli", "--config", str(cfg_path), "export",
                    "--format", "csv", "--output", str(out)], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)
    with out.open(newline="") as fh:
        rows = sorted(tuple(r) for r in csv.reader(fh))
    return len(rows) - 1, hashlib.sha256(repr(rows).encode()).hexdigest()


def one_run(source: Path, work: Path, label: str, workers: int | None) -> dict:
    cfg_path = fresh_copy(source, work / label)
    cmd = [sys.executable, "-m", "clinepipe.cli", "--config", str(cfg_path), "run"]
    if workers:
        cmd += ["--workers", str(workers)]
    busy0 = machine_busy_seconds()
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = machine_busy_seconds() - busy0
    if r.returncode != 0:
        raise SystemExit(f"{label} run failed ({r.returncode}): {r.stderr.strip()}")
    run_s = float(re.search(r" in ([0-9.]+) s;", r.stdout).group(1))
    n_rows, digest = export_digest(cfg_path)
    log = cfg_path.parent / "archive" / "logs" / "clinepipe.log"
    return {"wall_seconds": round(wall, 3), "run_seconds": run_s, "cpu_seconds": round(cpu, 3),
            "cpus_used": round(cpu / wall, 2),
            "stages": stage_times(log), "light_interval_seconds": light_interval(log),
            "summary": r.stdout.splitlines()[0], "export_rows": n_rows, "export_sha256": digest}


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (user + system, all CPUs, from
    ``/proc/stat``): Dask's workers are not children the command waits for, so its own rusage
    would miss them. Other programs count too; the machine should be otherwise idle."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _spin(_=None) -> float:
    """A fixed CPU-bound chore (numpy and plain Python); its duration in seconds."""
    import numpy as np

    t0 = time.perf_counter()
    a = np.random.default_rng(0).normal(size=(400, 400))
    for _ in range(15):
        a = np.sort(a, axis=0)
    total = 0
    for i in range(1_500_000):
        total += i * i
    return time.perf_counter() - t0


def effective_cores(n: int) -> float:
    """How many of ``n`` processes really run at once right now: n x (time alone) / (wall time
    of n at once). 2.0 on two idle cores; less when other programs use the CPUs."""
    import multiprocessing as mp

    alone = min(_spin() for _ in range(2))
    with mp.get_context("spawn").Pool(n) as pool:
        pool.map(_spin, range(n))  # start-up
        t0 = time.perf_counter()
        pool.map(_spin, range(n))
        wall = time.perf_counter() - t0
    return round(n * alone / wall, 2)


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["wall_seconds"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=None, help="binned px (default: the simulator's 1117)")
    ap.add_argument("--height", type=int, default=None, help="binned px (default: 844)")
    ap.add_argument("--lights", type=int, default=20, help="lights per filter")
    ap.add_argument("--binning", type=int, default=None,
                    help="camera binning (default: the simulator's 3; 2 or 1 give bigger frames)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    ap.add_argument("--output", type=Path, default=HERE / "results" / "dask.json")
    args = ap.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="clinepipe-bench-dask-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        source = work / "source"
        t0 = time.perf_counter()
        if not (source / "clinepipe.toml").exists():
            simulate(source, args)
        sim_s = time.perf_counter() - t0
        n_files = sum(1 for p in (source / "incoming").rglob("*.fit"))
        from astropy.io import fits

        first = next((source / "incoming").rglob("*.fit"))
        height, width = (int(fits.getheader(first)[k]) for k in ("NAXIS2", "NAXIS1"))
        cores_before = effective_cores(args.workers)
        serial, dask = [], []
        for i in range(args.repeat):  # alternate, so a busy moment hurts both alike
            serial.append(one_run(source, work, f"serial-{i}", None))
            dask.append(one_run(source, work, f"dask-{i}", args.workers))
        cores_after = effective_cores(args.workers)
        s, d = best(serial), best(dask)
        if s["export_sha256"] != d["export_sha256"]:
            raise SystemExit("the serial and Dask runs exported different measurements")
        lights_s, lights_d = s["stages"].get("lights"), d["stages"].get("lights")
        result = {
            "frames": n_files, "lights_per_filter": args.lights,
            "width": width, "height": height, "binning": args.binning or 3,
            "workers": args.workers, "repeat": args.repeat, "cpus": os.cpu_count(),
            "effective_cores": [cores_before, cores_after],
            "python": platform.python_version(), "machine": platform.machine(),
            "simulate_seconds": round(sim_s, 2),
            "serial": s, "dask": d,
            "speedup_wall": round(s["wall_seconds"] / d["wall_seconds"], 3),
            "speedup_run": round(s["run_seconds"] / d["run_seconds"], 3),
            "speedup_lights_stage": round(lights_s / lights_d, 3) if lights_s and lights_d else None,
            "speedup_steady_state": (round(s["light_interval_seconds"]
                                           / d["light_interval_seconds"], 3)
                                     if s["light_interval_seconds"]
                                     and d["light_interval_seconds"] else None),
            # the best any 2-process split of the serial run's CPU work could do on this machine
            "ceiling": round(min(cores_before, cores_after) / s["cpus_used"], 2),
            "target": TARGET,
            "command": "python bench/bench_dask.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        }
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"{n_files} frames ({2 * args.lights} lights) of {result['width']}x{result['height']} px, "
          f"{os.cpu_count()} CPUs ({cores_before:.2f}/{cores_after:.2f} effectively free for "
          f"{args.workers} processes before/after), {args.workers} Dask workers, best of "
          f"{args.repeat}")
    print(f"{'':10s} {'command':>8s} {'run':>8s}   stages (s)")
    for label, r in (("serial", s), (f"dask x{args.workers}", d)):
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
        print(f"{label:10s} {r['wall_seconds']:8.2f} {r['run_seconds']:8.2f}   {stages}")
    print(f"speed-up: {result['speedup_wall']:.2f}x whole command, {result['speedup_run']:.2f}x "
          f"run_pipeline, {result['speedup_lights_stage'] or float('nan'):.2f}x lights stage, "
          f"{result['speedup_steady_state'] or float('nan'):.2f}x per light in steady state "
          f"(mean gap between stored lights: serial {1e3 * (s['light_interval_seconds'] or 0):.0f} "
          f"ms, Dask {1e3 * (d['light_interval_seconds'] or 0):.0f} ms) (goal {TARGET}x) -> "
          f"{args.output}")
    print(f"CPU (machine-wide): serial kept {s['cpus_used']:.2f} CPUs busy ({s['cpu_seconds']:.1f} s), Dask "
          f"{d['cpus_used']:.2f} ({d['cpu_seconds']:.1f} s); with {min(cores_before, cores_after):.2f} "
          f"CPUs effectively free, no split of the serial work can beat {result['ceiling']:.2f}x here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
