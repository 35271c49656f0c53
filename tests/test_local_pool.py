"""The run's own worker processes (``[execution] scheduler = "local"``, the default).

A run forks its workers, which build the masters, measure the lights and draw the report's
plots; the run's process writes the database in the same order as a serial run, so the night
ends with exactly the serial run's database and export. Killed, the run takes its workers
with it (they must not hold the run lock or write into the archive afterwards) and the next
run finishes the job.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from processes import assert_all_gone, kill_when_calibrated
from run_snapshots import assert_same_snapshot, copy_night, pipeline_snapshot

from clinepipe.config import load_config
from clinepipe.errors import ClinepipeError
from clinepipe.run.local_pool import LocalPool, local_workers
from clinepipe.run.pipeline import run_pipeline

CLI = [sys.executable, "-m", "clinepipe.cli"]


def test_local_run_equals_serial_run(small_night, serial_reference, tmp_path):
    cfg_path = copy_night(small_night, tmp_path / "n", scheduler="local", workers=2)
    r = subprocess.run([*CLI, "--config", str(cfg_path), "run"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert "8 light(s) processed" in r.stdout, r.stdout
    log = (tmp_path / "n" / "archive" / "logs" / "clinepipe.log").read_text(encoding="utf-8")
    for work in (r"bias masters of 1 item\(s\)", r"per-frame work of 8 item\(s\)",
                 r"report plots of \d item\(s\)"):
        assert re.search(work + " on 2 local worker processes", log), (work, log[-3000:])
    assert_same_snapshot(pipeline_snapshot(cfg_path), serial_reference)
    reports = list((tmp_path / "n" / "archive" / "reports").rglob("index.html"))
    assert reports and all("data:image/png;base64," in p.read_text() for p in reports)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to list processes")
def test_killed_local_run_leaves_no_workers_and_restarts(small_night, serial_reference, tmp_path):
    cfg_path = copy_night(small_night, tmp_path / "n", scheduler="local", workers=2)
    workers = kill_when_calibrated([*CLI, "--config", str(cfg_path), "run"],
                                   tmp_path / "n" / "archive" / "calibrated")
    assert len(workers) >= 2  # the worker processes were seen
    assert_all_gone(workers)
    # no worker kept the run lock: the next run takes it and finishes the job
    run_pipeline(load_config(cfg_path))
    assert_same_snapshot(pipeline_snapshot(cfg_path), serial_reference)


def _square(x):
    return x * x


def _fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


def _die(x):
    os._exit(7)


def test_pool_keeps_the_order_and_raises_a_task_error():
    with LocalPool(2) as pool:
        assert list(pool.map(_square, range(12))) == [x * x for x in range(12)]
        got = []
        with pytest.raises(ValueError, match="three"):
            for value in pool.map(_fail_on_three, range(6)):
                got.append(value)
        assert got == [0, 1, 2]
        assert list(pool.map(_square, [])) == []


def test_a_dead_worker_is_a_named_reason():
    with LocalPool(2) as pool:
        with pytest.raises(ClinepipeError) as info:
            list(pool.map(_die, range(3), what="masters"))
    assert info.value.reason == "worker process died"
    assert "masters" in info.value.message


def test_workers_zero_means_one_per_cpu():
    assert local_workers(0) == len(os.sched_getaffinity(0))
    assert local_workers(3) == 3


def test_the_run_asks_its_pool_what_it_does_never_its_class():
    """Both kinds of pool have every member of the interface the run's steps use (RunPool),
    and the run's steps name neither class: a third kind of pool needs no change there."""
    import clinepipe.run.pipeline as pipeline
    from clinepipe.run.parallel import DaskPool
    from clinepipe.run.run_pool import RunPool

    members = set(RunPool.__annotations__) | {
        name for name, value in vars(RunPool).items() if callable(value) and name[0] != "_"}
    assert {"builds_masters", "draws_plots", "start", "ready", "map", "prepare",
            "close"} <= members
    for cls in (LocalPool, DaskPool):
        assert not members - set(dir(cls)), cls
    pool = LocalPool(2)
    assert isinstance(pool, RunPool) and pool.builds_masters and pool.draws_plots
    assert not {"LocalPool", "DaskPool"} & set(vars(pipeline))
