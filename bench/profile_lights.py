"""Where a light's time goes: the median time of each per-light step inside ``run_pipeline``.

    .venv/bin/python bench/profile_lights.py [--lights 20] [--keep DIR] [--json FILE]

Simulates a night (the simulator's full 1117x844 binned frames, ``--lights`` per filter),
runs the pipeline on it in this process with a timer around each stage of
``clinepipe.lightframe.LIGHT_STAGES`` and the main steps inside them, and prints the median
per light. Wall-clock, not CPU: the background writer thread and other programs on the
machine show up in the figures (compare runs made one after the other).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def _timed(fn, name: str, times: dict):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[name].append(time.perf_counter() - t)
    wrapper.__name__ = fn.__name__
    return wrapper


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lights", type=int, default=20, help="lights per filter")
    ap.add_argument("--keep", type=Path, help="simulate into this folder and keep it")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    import clinepipe.ccd.reduce as reduce
    import clinepipe.run.light_stages as lightframe
    import clinepipe.run.pipeline as pipeline
    from clinepipe.config import load_config
    from clinepipe.simulate import simulate_night

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="clinepipe-profile-")
    out = args.keep or Path(tmp.name)
    sim = simulate_night(out, seed=11, lights_per_filter=args.lights)
    times: dict = collections.defaultdict(list)
    lightframe.LIGHT_STAGES[:] = [_timed(s, s.__name__, times) for s in lightframe.LIGHT_STAGES]
    for module, name, label in (
            (reduce, "read_image", "  reduce: read the raw frame"),
            (lightframe, "reduce_frame", "  reduce: bias, dark, flat, uncertainty, mask"),
            (lightframe, "write_reduced_async", "  reduce: serialise the calibrated frame"),
            (lightframe, "measure_background", "  photometry: sep mesh background"),
            (lightframe, "psf_shape", "  photometry: FWHM and elongation"),
            (lightframe, "aperture_photometry", "  photometry: aperture sums and errors"),
            (pipeline, "_light_task", "main: choose the masters"),
            (pipeline, "store_light_result", "main: calibrate and store"),
            (pipeline, "lights_stage", "lights stage (all)")):
        setattr(module, name, _timed(getattr(module, name), label, times))
    context = pipeline.CalibrationContext
    context.load = classmethod(_timed(context.load.__func__, "main: load the catalog and stars "
                                      "(once)", times))
    pipeline.start_light = _timed(pipeline.start_light, "a light's stages (start_light)", times)
    pipeline.finish_light = _timed(pipeline.finish_light, "the wait for its written file "
                                   "(finish_light)", times)
    t0 = time.perf_counter()
    pipeline.run_pipeline(load_config(sim.config_path))
    total = time.perf_counter() - t0
    print(f"{len(times['reduce_stage'])} lights of {sim.spec.nx}x{sim.spec.ny}; run {total:.1f} s")
    print(f"{'step':<62} {'median ms':>9} {'total s':>8}")
    steps = [{"step": name, "median_ms": 1e3 * statistics.median(values), "total_s": sum(values),
              "calls": len(values)} for name, values in times.items()]
    for st in steps:
        print(f"{st['step']:<62} {st['median_ms']:9.2f} {st['total_s']:8.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "lights": len(times["reduce_stage"]), "shape": [sim.spec.ny, sim.spec.nx],
            "run_seconds": total, "steps": steps}, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
