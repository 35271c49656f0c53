"""A folder on its own small tmpfs: how a full disk is made for real (root only).

``with small_tmpfs(folder) as mount:`` gives ``mount(size)``, which mounts a tmpfs of
``size`` bytes on ``folder`` (skipping the test when that is not allowed), and
``mount(size, remount=True)``, which resizes it (the observer makes room); the tmpfs is
unmounted when the block ends. Used by ``tests/test_robustness.py`` and
``tests/test_ingest_jobs.py``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(folder: Path) -> Iterator[Callable[..., None]]:
    """``mount(size, remount=False)`` for a tmpfs of ``size`` bytes on ``folder`` (made here)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def mount(size: int, remount: bool = False) -> None:
        opts = f"{'remount,' if remount else ''}size={size}"
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs to fill a disk for real (needs root): "
                        f"{r.stderr.strip()}")

    try:
        yield mount
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)
