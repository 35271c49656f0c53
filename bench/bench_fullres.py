"""Full-resolution frames, 3352 x 2532 (the observatory's camera at 1x1; issue 20, goal 2).

    .venv/bin/python bench/bench_fullres.py [--lights-per-filter 4] [--master-frames 40]
                                            [--output bench/results/fullres.json]

1. a light against its own I/O floor: a simulated night at binning 1 run through
   ``run_pipeline`` in a fresh process (``run_all.NIGHT_CHILD``: the lights stage per light,
   the modules imported before the clock), and astropy reading each raw light and writing a
   float32 frame (``run_all.io_floor``), per light. Target: ≤ 4×.
2. peak RSS of ``clinepipe masters`` on ``--master-frames`` uint16 bias frames of that size
   (``run_all.measured``: the only child of a wrapper process). Target: ≤ 1 GiB.

Writes ``--output`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

from run_all import NIGHT_CHILD, clinepipe_cmd, io_floor, log, measured  # noqa: E402

WIDTH, HEIGHT = 3352, 2532
T_LIGHT_VS_IO = 4.0
T_RSS = 1 << 30


def write_bias(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` uint16 bias frames (BZERO 32768) of the full sensor, as the camera writes them."""
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    base = (1000.0 + rng.normal(0.0, 5.0, (HEIGHT, WIDTH))).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        frame = base + rng.normal(0.0, 23.0, (HEIGHT, WIDTH)).astype(np.float32)
        hdr = fits.Header({"IMAGETYP": "Bias Frame", "EXPTIME": 0.0, "XBINNING": 1,
                           "YBINNING": 1, "CCD-TEMP": -10.0,
                           "DATE-OBS": f"2026-03-15T01:{i // 60:02d}:{i % 60:02d}"})
        fits.PrimaryHDU(np.clip(np.rint(frame), 0, 65535).astype(np.uint16),
                        header=hdr).writeto(folder / f"bias_{i:03d}.fit")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lights-per-filter", type=int, default=4)
    ap.add_argument("--master-frames", type=int, default=40)
    ap.add_argument("--output", type=Path, default=HERE / "results" / "fullres.json")
    args = ap.parse_args(argv)
    from clinepipe.simulate import simulate_night

    res: dict = {"shape": [HEIGHT, WIDTH], "load_average": os.getloadavg()}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with tempfile.TemporaryDirectory(prefix="clinepipe-fullres-") as tmpdir:
        tmp = Path(tmpdir)
        log(f"simulating {2 * args.lights_per_filter} lights of {WIDTH}x{HEIGHT} ...")
        night = tmp / "night"
        sim = simulate_night(night, seed=11, lights_per_filter=args.lights_per_filter, n_bias=5,
                             n_dark=5, n_flat=3, binning=1, width=WIDTH, height=HEIGHT)
        lights = sorted(sim.incoming.rglob("*light*.fit"))
        os.sync()
        floor, floor_planes = io_floor(lights, tmp / "floor", 2)
        proc = subprocess.run([sys.executable, "-c", NIGHT_CHILD, str(sim.config_path)],
                              capture_output=True, text=True, env=env, check=True)
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        per_light = run["stages"]["lights_stage"] / max(1, run["lights_done"])
        res["light"] = {"lights": run["lights_done"], "per_light_seconds": per_light,
                        "io_floor_per_light_seconds": floor,
                        "io_floor_three_planes_fsync_per_light_seconds": floor_planes,
                        "ratio": per_light / floor, "target": T_LIGHT_VS_IO,
                        "pass": per_light / floor <= T_LIGHT_VS_IO, "run": run}
        log(f"    a light {per_light * 1e3:.0f} ms, I/O floor {floor * 1e3:.0f} ms "
            f"({per_light / floor:.1f}x; three planes with fsync {floor_planes * 1e3:.0f} ms)")
        shutil.rmtree(night, ignore_errors=True)
        shutil.rmtree(tmp / "floor", ignore_errors=True)

        log(f"writing {args.master_frames} bias frames of {WIDTH}x{HEIGHT} ...")
        t0 = time.perf_counter()
        write_bias(tmp / "bias", args.master_frames)
        log(f"    {time.perf_counter() - t0:.0f} s; `clinepipe masters` ...")
        rss = measured(clinepipe_cmd() + ["masters", str(tmp / "bias"), "--output",
                                          str(tmp / "masters")], env=env)
        rss.pop("stdout", None), rss.pop("stderr", None)
        res["master"] = {"frames": args.master_frames, **rss, "target_bytes": T_RSS,
                         "pass": rss["maxrss_bytes"] <= T_RSS}
        log(f"    {rss['wall_seconds']:.1f} s, peak RSS {rss['maxrss_bytes'] / 2**20:.0f} MiB")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
