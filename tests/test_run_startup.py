"""The run's fixed costs in its own process (issue 20, goal 1): the local pool's workers are
forked after the run has imported the per-frame modules once (the workers share them instead
of importing them each) and frozen its objects out of the garbage collector's sight (no full
collection of the run or of a worker walks them again, nor copies their pages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from clinepipe.run.local_pool import PRELOAD

SRC = Path(__file__).resolve().parents[1] / "src"

# in a fresh interpreter: gc.freeze would otherwise hold the test session's objects
_PROBE = r"""
import gc, json, sys
from clinepipe.run.local_pool import PRELOAD, LocalPool

def in_worker(_):
    return gc.get_freeze_count(), sorted(m for m in PRELOAD if m in sys.modules)

before = [m for m in PRELOAD if m in sys.modules]
with LocalPool(2) as pool:
    pool.start()
    parent = gc.get_freeze_count(), sorted(m for m in PRELOAD if m in sys.modules)
    workers = list(pool.map(in_worker, range(2)))
print(json.dumps({"before": before, "parent": parent, "workers": workers,
                  "astropy_in_parent": "astropy.io.fits" in sys.modules}))
"""


def test_workers_are_forked_with_the_modules_imported_and_the_objects_frozen():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["before"] == []  # importing the pool imports none of them
    frozen, imported = out["parent"]
    assert imported == sorted(PRELOAD)
    assert out["astropy_in_parent"]
    assert frozen > 10_000  # the modules' objects, not a handful
    for worker_frozen, worker_modules in out["workers"]:
        assert worker_modules == imported
        assert worker_frozen > 0.9 * frozen  # inherited through the fork (some freed since)
