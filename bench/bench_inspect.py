"""Benchmark of ``clinepipe inspect``: headers of 1,000 files in at most 2 s.

    .venv/bin/python bench/bench_inspect.py [--files 1000] [--repeat 3]

Writes ``--files`` small FITS files (64x64 uint16) to a temporary folder, their headers taken
in turn from the 53 real headers of ``tests/data/headers/`` (every program's style, some of
them broken), in night folders with lights, biases, darks and flats; then times
``run_inspect`` on the folder (the summary, the ADC check on a few lights' pixels included),
best of ``--repeat`` runs, and its ``--csv`` form. Goal: <= 2 s for 1,000 files.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from header_fixtures import HEADERS, write_fixture

from clinepipe.headers.inspect import run_inspect

GOAL_S = 2.0


def write_files(folder: Path, n: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    names = sorted(p.name for p in HEADERS.glob("*.txt"))
    data = rng.integers(900, 4000, size=(64, 64))
    for i in range(n):
        name = names[i % len(names)]
        night = f"2025-09-{10 + i % 5:02d}"
        write_fixture(folder / night / f"{Path(name).stem}_{i:04d}.fits", name, shape=(64, 64), data=data)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "incoming"
        write_files(folder, args.files)
        summary = best_of(args.repeat, lambda: run_inspect([folder], out=io.StringIO()))
        as_csv = best_of(args.repeat, lambda: run_inspect([folder], csv=True, out=io.StringIO()))
    print(f"inspect, {args.files} files: summary {summary:.2f} s, --csv {as_csv:.2f} s "
          f"({summary / args.files * 1e3:.2f} ms per file; goal <= {GOAL_S:.1f} s per 1,000)")
    return 0 if summary <= GOAL_S * args.files / 1000 else 1


if __name__ == "__main__":
    raise SystemExit(main())
