"""Per-frame work on Dask: ``[execution] scheduler = "dask"`` / ``clinepipe run --workers 2``.

The same night run on a 2-process LocalCluster ends with exactly the database, export and
archive of the serial run (``serial_reference``): the workers only compute, the main process
writes every frame's results in time order. Killed in the middle, a Dask run leaves no worker
process behind and the next run finishes the job as if nothing happened.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from processes import assert_all_gone, kill_when_calibrated
from run_snapshots import assert_same_snapshot, copy_night, pipeline_snapshot

from clinepipe.config import load_config
from clinepipe.run.pipeline import run_pipeline

pytest.importorskip("dask.distributed")

CLI = [sys.executable, "-m", "clinepipe.cli"]


def test_dask_run_equals_serial_run(small_night, serial_reference, tmp_path):
    cfg_path = copy_night(small_night, tmp_path / "n", scheduler="dask", workers=2)
    r = subprocess.run([*CLI, "--config", str(cfg_path), "run", "--workers", "2"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "Exception" not in r.stderr, r.stderr
    assert "8 light(s) processed" in r.stdout, r.stdout
    log = (tmp_path / "n" / "archive" / "logs" / "clinepipe.log").read_text(encoding="utf-8")
    assert "on Dask (2 worker processes)" in log, log[-2000:]
    assert_same_snapshot(pipeline_snapshot(cfg_path), serial_reference)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to list processes")
def test_killed_dask_run_leaves_no_workers_and_restarts(small_night, serial_reference, tmp_path):
    cfg_path = copy_night(small_night, tmp_path / "n", scheduler="dask", workers=2)
    workers = kill_when_calibrated([*CLI, "--config", str(cfg_path), "run"],
                                   tmp_path / "n" / "archive" / "calibrated")
    assert len(workers) >= 2  # the worker processes were seen
    assert_all_gone(workers)
    run_pipeline(load_config(cfg_path))  # the next run (on Dask, in this process) finishes the job
    assert_same_snapshot(pipeline_snapshot(cfg_path), serial_reference)


def test_lights_measured_here_until_the_workers_are_up(monkeypatch):
    """While the Dask workers start, the run measures the first lights itself; the rest go to
    the workers, and the results come back in the lights' order."""
    import clinepipe.run.lights_step as lights_step

    here = []

    def measure(task):
        here.append(task)
        return f"here:{task}"

    class StartingPool:
        def __init__(self):
            self.polls = 0
            self.sent = None

        def ready(self):
            self.polls += 1
            return self.polls > 2  # up after two lights

        def map(self, func, items):
            self.sent = list(items)
            return (f"worker:{t}" for t in self.sent)

    monkeypatch.setattr(lights_step, "process_light", measure)
    pool = StartingPool()
    results = list(lights_step.light_results(None, [1, 2, 3, 4, 5], None, pool=pool))
    assert results == ["here:1", "here:2", "worker:3", "worker:4", "worker:5"]
    assert here == [1, 2] and pool.sent == [3, 4, 5]
