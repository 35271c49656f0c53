"""Dask on a real cluster: the serial part of a night, a light's CPU on a worker, Amdahl.

    .venv/bin/python bench/bench_cluster.py [--lights 40] [--width W] [--height H]
                                            [--sample 40] [--keep DIR] [--output PATH]

``--lights 200`` is the issue's 200-light night (a few minutes more). Steps:

1. simulate one night of ``--lights`` lights (half per filter) and its calibration frames
   (the simulator's 1117 x 844 binned frames unless ``--width``/``--height``);
2. start ``dask scheduler`` and two ``dask worker`` processes on loopback
   (``tests/dask_cluster.py``), each worker warmed up once as a standing cluster would be;
3. the serial run (``[execution] scheduler = "serial"``): ``run_pipeline`` in a fresh
   process, the CPU of each of its steps and of the whole process (interpreter start and
   imports included; ``time.process_time``, all threads); it also picks ``--sample`` of the
   night's lights, evenly spread;
4. the cluster run (``[execution] scheduler = "dask"``, ``address`` = the cluster): the same
   process, its CPU per step, and the CPU the workers and the scheduler spent meanwhile
   (``/proc``); its export must equal the serial run's;
5. each light of the sample, one at a time, through ``process_light`` (the per-light work a
   worker does: reduce, sources, WCS, photometry, times, the calibrated file) in a plain
   process of its own (as in a serial run) and on a worker, alternately, each one's CPU
   measured where it ran: first as the workers were started (Dask's default statistical
   profiler on), then with it stopped.

Figures (``bench/results/cluster_<N>lights.json``):

* the serial part ``s`` = (serial run CPU - N x mean per-light CPU) / serial run CPU: the
  work outside the lights (goal <= 15 %); and what really stays serial on the cluster,
  ``s_c`` = the cluster run's main-process CPU / serial run CPU (the new files, the masters
  and the report's plots go to the workers too), with the cluster run's own split (main
  process over main + workers);
* ``r`` = a light's mean CPU on a worker / serially (goal <= 1.1x), with the workers'
  profiler off (as the README advises to start them) and, for comparison, on;
* the expected speed-up on n workers, Amdahl with ``r``: 1 / (s + r (1 - s) / n), n = 8, 32,
  with ``s`` and with ``s_c``.
  It treats the run's own work as never overlapping the workers' (pessimistic: the main
  process stores lights while the workers measure the next) and leaves out the scheduler's
  latency (optimistic: ~1 ms a task here).

A 2-core machine cannot show a speed-up on 8 workers itself: this is how the design is judged
until it runs on more cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
from tree_paths import compile_tree, use_this_tree  # noqa: E402

# every process started here (runs, export, scheduler, workers) runs this tree's clinepipe
ROOT = use_this_tree()

from bench_dask import export_digest, fresh_copy  # noqa: E402
from dask_cluster import DaskCluster, process_cpu_seconds  # noqa: E402

GOAL_SERIAL_PART = 0.15
GOAL_WORKER_RATIO = 1.1
PREDICT_FOR = (8, 32)

#: run_pipeline in a fresh process: CPU per step and in all; then a sample of its lights' tasks
CHILD = r"""
import json, pickle, sys, time
import clinepipe.run.pipeline as P
from clinepipe.run.lights_step import light_task
from clinepipe.config import load_config
import_cpu = time.process_time()
steps = {}
def timed(fn):
    def step(run):
        c, w = time.process_time(), time.perf_counter()
        try:
            return fn(run)
        finally:
            steps[fn.__name__.lstrip("_")] = {"cpu": time.process_time() - c,
                                              "wall": time.perf_counter() - w}
    return step
P.RUN_STEPS = tuple(timed(f) for f in P.RUN_STEPS)
cfg = load_config(sys.argv[1])
w0 = time.perf_counter()
summary = P.run_pipeline(cfg)
out = {"wall_seconds": time.perf_counter() - w0, "cpu_seconds": time.process_time(),
       "import_cpu_seconds": import_cpu, "steps": steps, "lights_done": summary.lights_done}
sample = int(sys.argv[2])
if sample:
    from sqlalchemy import select
    from clinepipe.run.masters_step import MasterChooser
    from clinepipe.store.db import open_database, session_scope
    from clinepipe.store.models import Frame
    engine = open_database(cfg.database.url)
    with session_scope(engine) as s:
        lights = s.scalars(select(Frame).where(Frame.kind == "light",
                                               Frame.state == "calibrated")
                           .order_by(Frame.jd_mid)).all()
        s.expunge_all()
    step = max(1, len(lights) // sample)
    chooser = MasterChooser(engine, cfg.paths.archive, cfg.site.telescope)
    tasks = [light_task(cfg, chooser, f) for f in lights[::step][:sample]]
    with open(sys.argv[3], "wb") as fh:
        pickle.dump(tasks, fh)
print(json.dumps(out))
"""


def timed_light(task):
    """On a worker: ``process_light(task)``'s CPU seconds (the worker process, all threads)."""
    from clinepipe.run.light_stages import process_light

    c = time.process_time()
    ok = process_light(task).ok
    return time.process_time() - c, ok


def interleaved(alone, client, tasks) -> tuple[list[float], list[float]]:
    """Each task's CPU seconds in a plain process of its own (``alone``, a one-process
    ``multiprocessing`` pool: as in a serial run) and on a Dask worker, one task at a time,
    the two alternating so that the machine's other load weighs on both alike."""
    serial, worker = [], []
    for task in tasks:
        cpu, ok = alone.apply(timed_light, (task,))
        assert ok
        serial.append(cpu)
        cpu, ok = client.submit(timed_light, task, pure=False).result()
        assert ok
        worker.append(cpu)
    return serial, worker


def stop_profiler(dask_worker) -> None:
    """Stop a worker's statistical profiler (what ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED
    =False`` does at its start): every 10 ms it walks the computing thread's stack, holding the
    GIL, which a light pays for."""
    for name in ("profile", "profile-cycle"):
        callback = dask_worker.periodic_callbacks.pop(name, None)
        if callback is not None:
            callback.stop()


def run_child(cfg_path: Path, sample: int, tasks_file: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(cfg_path), str(sample), str(tasks_file)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"run of {cfg_path} failed ({r.returncode}): {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def cluster_cpu(cluster: DaskCluster) -> dict[str, float]:
    return {name: process_cpu_seconds(pid) for name, pid in cluster.pids.items()}


def amdahl(serial_part: float, ratio: float, n: int) -> float:
    """Expected speed-up on ``n`` workers: the serial part stays, the rest (``ratio`` times
    dearer on a worker) is shared out."""
    return 1.0 / (serial_part + ratio * (1.0 - serial_part) / n)


def measure(args, work: Path) -> dict:
    from dask.distributed import Client

    from clinepipe.run.lights_step import warm_worker
    from clinepipe.simulate import simulate_night

    source = work / "source"
    t0 = time.perf_counter()
    overrides = {k: v for k, v in (("width", args.width), ("height", args.height)) if v}
    simulate_night(source, seed=args.seed, lights_per_filter=args.lights // 2, **overrides)
    sim_s = time.perf_counter() - t0
    n_files = sum(1 for _ in (source / "incoming").rglob("*.fit"))
    with DaskCluster(work / "cluster", workers=2) as cluster, Client(cluster.address) as client:
        client.run(warm_worker)  # a standing cluster's workers have imported clinepipe

        serial_cfg = fresh_copy(source, work / "serial")
        with serial_cfg.open("a", encoding="utf-8") as fh:
            # not the default local pool: its workers' CPU is not this process's
            fh.write('\n[execution]\nscheduler = "serial"\n')
        tasks_file = work / "tasks.pickle"
        serial = run_child(serial_cfg, args.sample, tasks_file)

        cluster_cfg = fresh_copy(source, work / "cluster-run")
        with cluster_cfg.open("a", encoding="utf-8") as fh:
            fh.write(f'\n[execution]\nscheduler = "dask"\naddress = "{cluster.address}"\n')
        before = cluster_cpu(cluster)
        on_cluster = run_child(cluster_cfg, 0, tasks_file)
        after = cluster_cpu(cluster)
        on_cluster["cluster_cpu_seconds"] = {k: round(after[k] - before[k], 3) for k in after}

        if export_digest(serial_cfg) != export_digest(cluster_cfg):
            raise SystemExit("the serial and cluster runs exported different measurements")

        tasks = pickle.loads(tasks_file.read_bytes())
        with multiprocessing.get_context("spawn").Pool(1) as alone:
            alone.apply(timed_light, (tasks[0],))  # warm, as a run's process is
            serial_profiled, worker_cpu_profiled = interleaved(alone, client, tasks)
            client.run(stop_profiler)
            serial_alone, worker_cpu = interleaved(alone, client, tasks)

    n_lights = serial["lights_done"]
    serial_light = statistics.fmean(serial_alone + serial_profiled)
    worker_light = statistics.fmean(worker_cpu)
    profiled_light = statistics.fmean(worker_cpu_profiled)
    ratio_off = worker_light / statistics.fmean(serial_alone)
    ratio_on = profiled_light / statistics.fmean(serial_profiled)
    per_light_total = n_lights * serial_light
    serial_part = (serial["cpu_seconds"] - per_light_total) / serial["cpu_seconds"]
    ratio = ratio_off
    workers_cpu = sum(v for k, v in on_cluster["cluster_cpu_seconds"].items()
                      if k.startswith("worker"))
    main_share = on_cluster["cpu_seconds"] / (on_cluster["cpu_seconds"] + workers_cpu)
    serial_on_cluster = on_cluster["cpu_seconds"] / serial["cpu_seconds"]
    outside = {name: round(st["cpu"], 3) for name, st in serial["steps"].items()}
    outside["lights (outside the per-light work: masters chosen, calibrate, store)"] = round(
        serial["steps"]["lights"]["cpu"] - per_light_total, 3)
    del outside["lights"]
    outside["interpreter start and imports"] = round(serial["import_cpu_seconds"], 3)
    return {
        "lights": n_lights, "frames": n_files, "sample": len(worker_cpu),
        "simulate_seconds": round(sim_s, 1), "workers": 2, "cpus": os.cpu_count(),
        "python": platform.python_version(), "machine": platform.machine(),
        "serial_run": serial, "cluster_run": on_cluster,
        "light_cpu_seconds": {"serial": serial_alone, "worker": worker_cpu,
                              "serial_beside_profiler_on": serial_profiled,
                              "worker_profiler_on": worker_cpu_profiled},
        "light_cpu_mean_seconds": {"serial": round(serial_light, 4),
                                   "worker": round(worker_light, 4),
                                   "worker_profiler_on": round(profiled_light, 4)},
        "light_cpu_median_seconds": {
            "serial": round(statistics.median(serial_alone + serial_profiled), 4),
            "worker": round(statistics.median(worker_cpu), 4),
            "worker_profiler_on": round(statistics.median(worker_cpu_profiled), 4)},
        "per_light_work_cpu_seconds": round(per_light_total, 3),
        "serial_cpu_outside_per_light_work": dict(sorted(outside.items(), key=lambda kv: -kv[1])),
        "serial_part": round(serial_part, 4), "goal_serial_part": GOAL_SERIAL_PART,
        "worker_vs_serial_light_cpu": round(ratio, 3), "goal_worker_ratio": GOAL_WORKER_RATIO,
        "worker_vs_serial_light_cpu_profiler_on": round(ratio_on, 3),
        "cluster_run_main_share": round(main_share, 4),
        "serial_part_on_cluster": round(serial_on_cluster, 4),
        "expected_speedup_on_cluster": {str(n): round(amdahl(serial_on_cluster, ratio, n), 2)
                                        for n in PREDICT_FOR},
        "expected_speedup": {str(n): round(amdahl(serial_part, ratio, n), 2)
                             for n in PREDICT_FOR},
        "expected_speedup_profiler_on": {
            str(n): round(amdahl(serial_part, ratio_on, n), 2)
            for n in PREDICT_FOR},
        "speedup_limit": round(1.0 / serial_part, 2),
        "exports_identical": True,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lights", type=int, default=40, help="lights of the night (200: the issue's)")
    ap.add_argument("--width", type=int, default=None, help="binned px (default: the simulator's)")
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--sample", type=int, default=40, help="lights whose CPU is measured alone")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    ap.add_argument("--output", type=Path, default=None,
                    help="default: bench/results/cluster_<lights>lights.json")
    args = ap.parse_args(argv)
    output = args.output or HERE / "results" / f"cluster_{args.lights}lights.json"
    work = args.keep or Path(tempfile.mkdtemp(prefix="clinepipe-bench-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    compile_tree()  # the run, the scheduler and the workers import compiled modules
    try:
        result = measure(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    result["bench_seconds"] = round(time.perf_counter() - t0, 1)
    result["command"] = "python bench/bench_cluster.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    sr, cr = result["serial_run"], result["cluster_run"]
    print(f"{result['lights']} lights ({result['frames']} frames), 2 dask workers on loopback, "
          f"{result['bench_seconds']:.0f} s")
    print(f"serial run: {sr['cpu_seconds']:.2f} CPU s ({sr['wall_seconds']:.1f} s wall); "
          f"per-light work {result['per_light_work_cpu_seconds']:.2f} CPU s "
          f"({result['light_cpu_mean_seconds']['serial'] * 1e3:.1f} ms a light)")
    print("  outside the per-light work (CPU s): " + ", ".join(
        f"{k} {v:.2f}" for k, v in result["serial_cpu_outside_per_light_work"].items()))
    print(f"serial part: {100 * result['serial_part']:.1f} % (goal <= "
          f"{100 * GOAL_SERIAL_PART:.0f} %); cluster run: main process {cr['cpu_seconds']:.2f} "
          f"CPU s = {100 * result['serial_part_on_cluster']:.1f} % of the serial run's CPU, "
          f"{100 * result['cluster_run_main_share']:.1f} % of main + workers "
          f"({cr['cluster_cpu_seconds']})")
    mean = result["light_cpu_mean_seconds"]
    print(f"a light's CPU on a worker / serial: {result['worker_vs_serial_light_cpu']:.3f}x "
          f"with the workers' profiler off (mean {mean['worker'] * 1e3:.1f} vs "
          f"{mean['serial'] * 1e3:.1f} ms; goal <= {GOAL_WORKER_RATIO}x); "
          f"{result['worker_vs_serial_light_cpu_profiler_on']:.3f}x with Dask's default "
          f"profiler on ({mean['worker_profiler_on'] * 1e3:.1f} ms)")
    print("expected speed-up (Amdahl): " + ", ".join(
        f"{n} workers {v:.2f}x" for n, v in result["expected_speedup"].items())
          + f"; limit {result['speedup_limit']:.2f}x; with the cluster's serial part: "
          + ", ".join(f"{n} workers {v:.2f}x"
                      for n, v in result["expected_speedup_on_cluster"].items())
          + f" -> {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
