"""This tree's clinepipe for a bench and for every process it starts (runs, exports, the Dask
scheduler and workers), and the tests' helpers (``tests/dask_cluster.py``) for the bench."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_this_tree() -> Path:
    """Put this tree's ``src`` and ``tests`` first on ``sys.path`` and ``src`` first on the
    ``PYTHONPATH`` that child processes inherit; returns the tree's root."""
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "tests"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    return ROOT


def compile_tree() -> None:
    """Byte-compile this tree's ``src`` (into ``src/**/__pycache__``, ignored by git) before
    anything is timed, as an installed clinepipe is (pip compiles it) and as the libraries it
    is compared with are in site-packages. With ``PYTHONDONTWRITEBYTECODE`` set (this
    workplace sets it) and no ``__pycache__`` in the tree, every timed process would compile
    clinepipe's modules again: ~110 for a run (~0.9 CPU-s), ~40 for ``stars`` (~0.1 s)."""
    import compileall

    compileall.compile_dir(ROOT / "src", quiet=1)
