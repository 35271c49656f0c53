"""Benchmark of the master-frame median: speed against bottleneck in memory, and peak memory.

    .venv/bin/python bench/bench_masters.py [--frames 40] [--size 2048] [--repeat 3]

Writes ``--frames`` uint16 FITS frames of ``--size``² pixels (BZERO = 32768, as cameras write
them) to a temporary folder, then

(a) times ``clinepipe.masters.median_stack`` over the files (reading included) for a few
    ``chunk_rows``, against ``bottleneck.median(stack, axis=0)`` on the same stack already in
    memory (target: ≤ 1.3×) and against "read every file with astropy + bottleneck";
(b) builds a master bias from the files in a child process that imports only what it needs and
    reads ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` (target: < 1 GiB).

Each timing is the best of ``--repeat`` runs (the files are in the page cache for all of them,
so every contender reads from memory alike). Results go to ``bench/results/masters.json`` and a
table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bottleneck as bn
import numpy as np
from astropy.io import fits

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from clinepipe.ccd.stack import median_stack

RSS_TARGET_BYTES = 1 << 30
SPEED_TARGET = 1.3

CHILD = """
import resource, sys, time
from pathlib import Path
from clinepipe.ccd.master_stacks import build_bias
paths = sorted(Path(sys.argv[1]).glob("*.fits"))
t0 = time.perf_counter()
result = build_bias(paths, chunk_rows=int(sys.argv[2]), min_frames=1)
elapsed = time.perf_counter() - t0
print(elapsed, result.n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_frames(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    base = rng.normal(1000.0, 5.0, (size, size))
    paths = []
    for i in range(n):
        frame = base + rng.normal(0.0, 23.0, (size, size))
        p = folder / f"bias_{i:03d}.fits"
        hdr = fits.Header({"IMAGETYP": "Bias Frame", "EXPTIME": 0.0, "XBINNING": 1, "YBINNING": 1,
                           "DATE-OBS": "2024-03-02T01:00:00"})
        fits.PrimaryHDU(np.clip(np.rint(frame), 0, 65535).astype(np.uint16), header=hdr).writeto(p)
        paths.append(p)
    return paths


def best_of(repeat: int, fn):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def read_all(paths, size):
    stack = np.empty((len(paths), size, size), np.float32)
    for i, p in enumerate(paths):
        stack[i] = fits.getdata(p)
    return stack


def child_peak_rss(folder: Path, chunk_rows: int) -> dict:
    env_path = str(ROOT / "src")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(chunk_rows)],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": env_path})
    elapsed, n, self_kib = proc.stdout.split()
    children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"chunk_rows": chunk_rows, "seconds": float(elapsed), "frames": int(n),
            "child_self_maxrss_bytes": int(self_kib) * 1024,
            "rusage_children_maxrss_bytes": int(children_kib) * 1024}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk-rows", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--output", type=Path, default=HERE / "results" / "masters.json")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="clinepipe-bench-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = write_frames(folder, args.frames, args.size)
        write_s = time.perf_counter() - t0

        # (b) first, so RUSAGE_CHILDREN holds only the master build's child
        rss = child_peak_rss(folder, 256)

        read_s, stack = best_of(args.repeat, lambda: read_all(paths, args.size))
        bn_s, reference = best_of(args.repeat, lambda: bn.median(stack, axis=0))
        stack = None  # frees the stack before the next measurement
        rows = []
        for chunk in args.chunk_rows:
            secs, got = best_of(args.repeat, lambda c=chunk: median_stack(paths, chunk_rows=c))
            if not np.array_equal(got, reference):
                raise SystemExit(f"median_stack(chunk_rows={chunk}) differs from bottleneck.median")
            rows.append({"chunk_rows": chunk, "seconds": secs, "vs_bottleneck_in_memory": secs / bn_s,
                         "vs_read_all_plus_bottleneck": secs / (read_s + bn_s),
                         "buffer_bytes": args.frames * chunk * args.size * 4})

    best = min(rows, key=lambda r: r["seconds"])
    default = next((r for r in rows if r["chunk_rows"] == 256), best)
    result = {
        "frames": args.frames, "size": args.size, "repeat": args.repeat,
        "python": platform.python_version(), "numpy": np.__version__, "bottleneck": bn.__version__,
        "machine": platform.machine(), "write_files_seconds": write_s,
        "read_all_astropy_seconds": read_s, "bottleneck_median_in_memory_seconds": bn_s,
        "read_all_plus_bottleneck_seconds": read_s + bn_s,
        "median_stack": rows,
        "speed_target_ratio": SPEED_TARGET,
        "speed_ok_default_chunk": default["vs_bottleneck_in_memory"] <= SPEED_TARGET,
        "speed_ok_best_chunk": best["vs_bottleneck_in_memory"] <= SPEED_TARGET,
        "peak_rss": rss, "rss_target_bytes": RSS_TARGET_BYTES,
        "rss_ok": rss["rusage_children_maxrss_bytes"] < RSS_TARGET_BYTES,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{args.frames} frames of {args.size}x{args.size} uint16 (best of {args.repeat})")
    print(f"  read all files (astropy)          {read_s:7.2f} s")
    print(f"  bottleneck.median in memory       {bn_s:7.2f} s")
    print(f"  read all + bottleneck             {read_s + bn_s:7.2f} s")
    print(f"  {'chunk_rows':>10} {'median_stack s':>15} {'/ bn in memory':>15} "
          f"{'/ read+bn':>10} {'buffer MB':>10}")
    for r in rows:
        print(f"  {r['chunk_rows']:>10} {r['seconds']:>15.2f} {r['vs_bottleneck_in_memory']:>15.2f} "
              f"{r['vs_read_all_plus_bottleneck']:>10.2f} {r['buffer_bytes'] / 2**20:>10.0f}")
    mib = rss["rusage_children_maxrss_bytes"] / 2**20
    print(f"  master bias build (chunk_rows=256) in a child: {rss['seconds']:.2f} s, "
          f"peak RSS {mib:.0f} MiB (target < 1024 MiB)")
    print(f"  speed target <= {SPEED_TARGET}x: {'met' if result['speed_ok_default_chunk'] else 'MISSED'} "
          f"(chunk_rows=256), memory target: {'met' if result['rss_ok'] else 'MISSED'}")
    print(f"  written {args.output}")
    return 0 if (result["speed_ok_best_chunk"] and result["rss_ok"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
