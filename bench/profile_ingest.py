"""The run process's CPU in the ingest step, per scheduler: serial threads, local pool, Dask cluster.

    .venv/bin/python bench/profile_ingest.py [--lights 40] [--source DIR] [--runs 3]
                                             [--schedulers serial local cluster]
                                             [--profile DIR] [--keep DIR]

Simulates a night (``--lights`` lights, half per filter, and its calibration frames; or takes
the simulated night in ``--source``), then for each scheduler runs ``run_pipeline`` with the
ingest step alone (``RUN_STEPS = (_ingest,)``) ``--runs`` times, each on a fresh copy of the
night in a fresh process, and prints the step's CPU (``time.process_time``: every thread of
the run's process) and that of its main thread and of its other live threads (``/proc``; a
thread that ended within the step, as Dask's connecting thread, is counted only in the
step's). ``cluster`` starts ``dask scheduler`` and two ``dask worker`` processes on loopback
(``tests/dask_cluster.py``), warmed as a standing cluster's, and uses ``[execution] address``.
``--profile DIR``: the last run of each scheduler under cProfile (its main thread),
``DIR/<scheduler>.prof``.

Fixed costs are in the figures: on a cluster the Dask client's start (importing
``dask.distributed``, ~0.5 CPU-s, and connecting), with the local pool the per-frame modules
imported before the workers are forked (~1 CPU-s, shared by them), in a serial run the two
threads' own work (reading, hashing, writing). Compare nights of two sizes for a file's cost.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tree_paths import use_this_tree  # noqa: E402

# every process started here (runs, export, scheduler, workers) runs this tree's clinepipe
ROOT = use_this_tree()

from bench_dask import fresh_copy  # noqa: E402

#: run_pipeline with the ingest step alone, in a fresh process: its CPU, per thread
CHILD = r"""
import cProfile, json, os, sys, time
import clinepipe.run.pipeline as P
from clinepipe.config import load_config

def threads_cpu():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return out

res = {}
def ingest(run):
    before, cpu = threads_cpu(), time.process_time()
    prof = cProfile.Profile() if sys.argv[2] else None
    if prof:
        prof.enable()
    try:
        P._ingest(run)
    finally:
        if prof:
            prof.disable()
            prof.dump_stats(sys.argv[2])
        res["cpu"] = time.process_time() - cpu
        after = threads_cpu()
        main = os.getpid()
        res["main_thread"] = after[main] - before.get(main, 0.0)
        res["other_threads"] = sum(v - before.get(k, 0.0) for k, v in after.items() if k != main)
    res["files"] = run.summary.new_files
P.RUN_STEPS = (ingest,)
P.run_pipeline(load_config(sys.argv[1]))
print(json.dumps(res))
"""

EXECUTION = {"serial": 'scheduler = "serial"\n', "local": 'scheduler = "local"\nworkers = 2\n'}


def run_once(source: Path, dest: Path, execution: str, profile: str) -> dict:
    cfg = fresh_copy(source, dest)
    with cfg.open("a", encoding="utf-8") as fh:
        fh.write(f"\n[execution]\n{execution}")
    r = subprocess.run([sys.executable, "-c", CHILD, str(cfg), profile], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"ingest of {cfg} failed ({r.returncode}): {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(args, source: Path, work: Path) -> dict:
    out = {}
    for scheduler in args.schedulers:
        cluster = None
        if scheduler == "cluster":
            from dask.distributed import Client
            from dask_cluster import DaskCluster

            from clinepipe.run.lights_step import warm_worker

            cluster = DaskCluster(work / "cluster", workers=2).__enter__()
            with Client(cluster.address) as client:
                client.run(warm_worker)  # a standing cluster's workers have imported clinepipe
            execution = f'scheduler = "dask"\naddress = "{cluster.address}"\n'
        else:
            execution = EXECUTION[scheduler]
        try:
            runs = []
            for i in range(args.runs):
                profile = (str(args.profile / f"{scheduler}.prof")
                           if args.profile and i == args.runs - 1 else "")
                runs.append(run_once(source, work / f"{scheduler}-{i}", execution, profile))
        finally:
            if cluster is not None:
                cluster.__exit__(None, None, None)
        out[scheduler] = runs
        for r in runs:
            print(f"{scheduler}: {r['files']} files, ingest {r['cpu']:.3f} CPU-s (main thread "
                  f"{r['main_thread']:.2f}, other live threads {r['other_threads']:.2f}), "
                  f"{1000 * r['cpu'] / max(1, r['files']):.2f} ms a file")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lights", type=int, default=40, help="lights of the simulated night")
    ap.add_argument("--source", type=Path, default=None,
                    help="a night simulated before (clinepipe.simulate.simulate_night's folder)")
    ap.add_argument("--runs", type=int, default=3, help="runs per scheduler")
    ap.add_argument("--schedulers", nargs="+", default=["serial", "local", "cluster"],
                    choices=["serial", "local", "cluster"])
    ap.add_argument("--profile", type=Path, default=None,
                    help="folder for a cProfile of each scheduler's last run")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="clinepipe-profile-ingest-"))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    try:
        source = args.source
        if source is None:
            from clinepipe.simulate import simulate_night

            source = work / "source"
            simulate_night(source, seed=args.seed, lights_per_filter=args.lights // 2)
        measure(args, source, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
