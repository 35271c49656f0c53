"""Per-frame work on Dask: ``[execution] scheduler = "dask"`` / ``clinepipe run --workers 2``.

The same night run on a 2-process LocalCluster ends with exactly the database, export and
archive of the serial run (``serial_reference``): the workers only compute, the main process
writes every frame's results in time order.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import assert_same_snapshot, copy_night, pipeline_snapshot

pytest.importorskip("dask.distributed")


def test_dask_run_equals_serial_run(small_night, serial_reference, tmp_path):
    cfg_path = copy_night(small_night, tmp_path / "n")
    with cfg_path.open("a", encoding="utf-8") as fh:
        fh.write('\n[execution]\nscheduler = "dask"\nworkers = 2\n')
    r = subprocess.run([sys.executable, "-m", "clinepipe.cli", "--config", str(cfg_path), "run",
                        "--workers", "2"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "8 light(s) processed" in r.stdout, r.stdout
    log = (tmp_path / "n" / "archive" / "logs" / "clinepipe.log").read_text(encoding="utf-8")
    assert "on Dask (2 worker processes)" in log, log[-2000:]
    assert_same_snapshot(pipeline_snapshot(cfg_path), serial_reference)
