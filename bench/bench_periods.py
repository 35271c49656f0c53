"""Benchmark: the period search of one variable star (``variability.periods.find_period``, the
run's ``_star_stats`` step searches each changed variable star once) on ten years of points:
3000 points over 3650 days (seasons, weather, 1-3 points a night), periods 0.02-10 d, one star
of each kind of ``tests/periodic_lightcurves.py`` (eclipsing binary, sinusoid, sawtooth,
contact binary); and on two nights (180 points), which must not be slower. Goal: < 0.3 s of CPU
a star on ten years.

    PYTHONPATH=src python bench/bench_periods.py [--repeat 3] [--before REV]

CPU seconds (``time.process_time``), best of ``--repeat`` after one call that pays the imports.
``--before REV`` also times the search of git revision ``REV`` (e.g. ``8f48323``, before the
candidate search: ~8-35 s a star, once each) on the same stars. Writes
``bench/results/periods.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from periodic_lightcurves import KINDS, light_curve

from clinepipe.variability.periods import find_period


def _module_at(rev: str):
    """``variability/periods.py`` as it was at git revision ``rev``, imported on its own."""
    text = subprocess.run(["git", "show", f"{rev}:src/clinepipe/variability/periods.py"],
                          cwd=HERE.parent, check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "periods_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("periods_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["periods_before"] = module
    spec.loader.exec_module(module)
    return module


def _cpu(search, lc, repeat: int) -> tuple[float, object]:
    """Least CPU seconds of ``search(*lc)`` over ``repeat`` calls, and its result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        out = search(*lc)
        best = min(best, time.process_time() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", metavar="REV", default=None)
    args = parser.parse_args()
    before = _module_at(args.before) if args.before else None
    rows = []
    for sampling, periods in (("archive", (0.05, 8.0)), ("short", (0.05, 0.5))):
        for kind in KINDS:
            t, y, err, truth = light_curve(np.random.default_rng([1, KINDS.index(kind)]), kind,
                                           sampling, periods=periods)
            find_period(t, y, err)  # imports (astropy, scipy.special) before the clock
            cpu, res = _cpu(find_period, (t, y, err), args.repeat)
            row = {"sampling": sampling, "kind": kind, "points": int(t.size),
                   "span_days": round(float(np.ptp(t)), 1), "true_period": truth,
                   "period": res.period, "cpu_s": round(cpu, 4)}
            if before is not None:
                before.find_period(t, y, err)
                cpu_b, res_b = _cpu(before.find_period, (t, y, err), 1)
                row.update(period_before=res_b.period, cpu_before_s=round(cpu_b, 3))
            rows.append(row)
            print(json.dumps(row), flush=True)
    long = [r["cpu_s"] for r in rows if r["sampling"] == "archive"]
    print(f"ten years (3000 points / 3650 d): {max(long):.3f} s a star at most "
          f"(median {np.median(long):.3f} s); goal < 0.3 s")
    if before is not None:
        old = [r["cpu_before_s"] for r in rows if r["sampling"] == "archive"]
        print(f"before ({args.before}): {np.median(old):.1f} s a star (median)")
    out = HERE / "results" / "periods.json"
    out.write_text(json.dumps({"rows": rows, "before": args.before}, indent=1) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
