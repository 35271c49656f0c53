"""Benchmark: clinepipe.photometry against calling sep directly on the same data.

Run with ``.venv/bin/python bench/bench_photometry.py``. It prints a table and writes
``bench/results/photometry.json``. Targets: ``aperture_photometry`` and
``measure_background`` within 1.5x of the sep calls they wrap, on a 2048 x 2048 float32
frame with ~2000 stars.

Each timing is the best and the median of several repeats (``time.perf_counter``), the
three calls of a case interleaved in every repeat; the ratio uses the medians. The
"matched" sep call computes what our function returns (the same error/mask inputs, exact
overlaps; for the background, sep.Background plus its level and rms maps); "bare" is the
cheapest sep call (no error, no mask, no maps) for reference. ``measure_background``
interpolates its level and rms maps on first use, so it is timed both without and with them.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sep

from clinepipe.photometry.aperture import aperture_photometry
from clinepipe.photometry.background import measure_background

SIZE = 2048
N_STARS = 2000
RADIUS = 5.0
GAIN = 0.4
READ_NOISE = 9.3
TARGET = 1.5


def make_frame(seed: int = 1):
    """A 2048**2 float32 frame: sky 300 ADU with a gradient, Gaussian stars, Poisson noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    expected = 300.0 + 0.01 * xx + 0.005 * yy
    x = rng.uniform(10, SIZE - 10, N_STARS)
    y = rng.uniform(10, SIZE - 10, N_STARS)
    flux = 10 ** rng.uniform(3, 5.5, N_STARS)
    sigma = 1.5
    half = 8
    offs = np.arange(-half, half + 1)
    cx, cy = np.rint(x).astype(int), np.rint(y).astype(int)
    gx = np.exp(-0.5 * ((cx[:, None] + offs - x[:, None]) / sigma) ** 2)
    gy = np.exp(-0.5 * ((cy[:, None] + offs - y[:, None]) / sigma) ** 2)
    stamps = flux[:, None, None] * gy[:, :, None] * gx[:, None, :] / (2 * np.pi * sigma ** 2)
    rows = np.broadcast_to(cy[:, None, None] + offs[None, :, None], stamps.shape)
    cols = np.broadcast_to(cx[:, None, None] + offs[None, None, :], stamps.shape)
    np.add.at(expected, (rows.ravel(), cols.ravel()), stamps.ravel())
    electrons = rng.poisson(GAIN * expected).astype(np.float64)
    electrons += rng.normal(0, READ_NOISE, expected.shape)
    data = (electrons / GAIN).astype(np.float32)
    unc = np.sqrt(np.clip(data, 0, None) / GAIN + (READ_NOISE / GAIN) ** 2).astype(np.float32)
    mask = np.zeros(data.shape, np.uint8)
    mask[rng.integers(0, SIZE, 200), rng.integers(0, SIZE, 200)] = 2  # some hot pixels
    return data, unc, mask, x, y


def timed(fns, repeats: int):
    """(best, median) seconds of each function, interleaved so drifts hit all alike."""
    for fn in fns:
        fn()  # warm up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - t0)
    return [(min(t), statistics.median(t)) for t in times]


def main() -> int:
    data, unc, mask, x, y = make_frame()
    bkg = measure_background(data)
    cases = []

    def compare(name, ours, matched, bare, repeats):
        (o_best, o_med), (m_best, m_med), (b_best, b_med) = timed([ours, matched, bare], repeats)
        cases.append({
            "case": name, "repeats": repeats,
            "clinepipe_best_s": o_best, "clinepipe_median_s": o_med,
            "sep_matched_best_s": m_best, "sep_matched_median_s": m_med,
            "sep_bare_best_s": b_best, "sep_bare_median_s": b_med,
            "ratio_vs_matched": o_med / m_med, "ratio_vs_bare": o_med / b_med,
            "target": TARGET, "meets_target": o_med / m_med <= TARGET,
        })

    compare(
        "aperture_photometry, mesh Background (per frame, 2000 stars)",
        lambda: aperture_photometry(data, x, y, RADIUS, background=bkg, gain=GAIN,
                                    read_noise=READ_NOISE),
        lambda: sep.sum_circle(data, x, y, RADIUS, err=bkg.rms, subpix=0),
        lambda: sep.sum_circle(data, x, y, RADIUS, subpix=0),
        repeats=50,
    )
    compare(
        "aperture_photometry, uncertainty plane + mask (the pipeline's call)",
        lambda: aperture_photometry(data, x, y, RADIUS, background=bkg, gain=GAIN,
                                    read_noise=READ_NOISE, uncertainty=unc, mask=mask),
        lambda: sep.sum_circle(data, x, y, RADIUS, err=unc, mask=mask, subpix=0),
        lambda: sep.sum_circle(data, x, y, RADIUS, subpix=0),
        repeats=50,
    )

    def sep_background_maps():
        b = sep.Background(data, mask=mask, bw=64, bh=64, fw=3, fh=3)
        return b.back(dtype=np.float32), b.rms(dtype=np.float32)

    def our_background_maps():
        b = measure_background(data, mask=mask, box=64)
        return b.level, b.rms

    compare(
        "measure_background (2048x2048, box 64)",
        lambda: measure_background(data, mask=mask, box=64),
        lambda: sep.Background(data, mask=mask, bw=64, bh=64, fw=3, fh=3),
        lambda: sep.Background(data, bw=64, bh=64, fw=3, fh=3),
        repeats=9,
    )
    compare(
        "measure_background + level and rms maps (2048x2048, box 64)",
        our_background_maps,
        sep_background_maps,
        lambda: sep.Background(data, bw=64, bh=64, fw=3, fh=3),
        repeats=9,
    )

    print(f"clinepipe.photometry vs sep {sep.__version__}: {SIZE}x{SIZE} float32, "
          f"{N_STARS} stars, r = {RADIUS} px (median of repeats; ratio target <= {TARGET})")
    header = f"{'case':<70} {'ours ms':>8} {'sep ms':>8} {'ratio':>6} {'bare ms':>8} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for c in cases:
        per_star = ""
        if "photometry" in c["case"]:
            per_star = f"  ({1e6 * c['clinepipe_median_s'] / N_STARS:.2f} us/star)"
        print(f"{c['case']:<70} {1e3 * c['clinepipe_median_s']:8.2f} "
              f"{1e3 * c['sep_matched_median_s']:8.2f} {c['ratio_vs_matched']:6.2f} "
              f"{1e3 * c['sep_bare_median_s']:8.2f} {c['ratio_vs_bare']:6.2f}{per_star}")

    out = Path(__file__).resolve().parent / "results" / "photometry.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "photometry",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0], "numpy": np.__version__, "sep": sep.__version__,
        "machine": platform.machine(), "processor": platform.processor(),
        "frame": [SIZE, SIZE], "stars": N_STARS, "radius_px": RADIUS,
        "cases": cases,
    }, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if all(c["meets_target"] for c in cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
