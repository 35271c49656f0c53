"""Where a light's time goes: the median time of each per-light step inside ``run_pipeline``.

    .venv/bin/python bench/profile_lights.py [--lights 20] [--keep DIR] [--json FILE] [--full-res]

Simulates a night (the simulator's full 1117x844 binned frames, ``--lights`` per filter),
runs the pipeline on it in this process (serially) with a timer around each stage of
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
    ap.add_argument("--full-res", action="store_true",
                    help="3352 x 2532 frames (the camera at 1x1) instead of the binned 1117 x 844")
    args = ap.parse_args(argv)

    import clinepipe.ccd.reduce_light as reduce_light
    import clinepipe.ccd.reduced_files as reduced_files
    import clinepipe.ingest.fits_reader as fits_reader
    import clinepipe.photometry.aperture as aperture
    import clinepipe.photometry.background as background
    import clinepipe.photometry.psf as psf
    import clinepipe.run.light_stages as lightframe
    import clinepipe.run.lights_step as lights_step
    import clinepipe.run.pipeline as pipeline
    from clinepipe.config import load_config
    from clinepipe.simulate import simulate_night

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="clinepipe-profile-")
    out = args.keep or Path(tmp.name)
    sim = simulate_night(out, seed=11, lights_per_filter=args.lights,
                         **({"binning": 1, "n_bias": 5, "n_dark": 5, "n_flat": 3}
                            if args.full_res else {}))
    times: dict = collections.defaultdict(list)
    lightframe.LIGHT_STAGES[:] = [_timed(s, s.__name__, times) for s in lightframe.LIGHT_STAGES]
    # where each function is looked up when called (imported inside a function: its module;
    # imported at the top of a module: that module's name)
    for module, name, label in (
            (fits_reader, "read_image", "  reduce: read the raw frame"),
            (reduce_light, "reduce_frame", "  reduce: bias, dark, flat, uncertainty, mask"),
            (reduced_files, "write_reduced_async", "  reduce: serialise the calibrated frame"),
            (background, "measure_background", "  photometry: sep mesh background"),
            (psf, "psf_shape", "  photometry: FWHM and elongation"),
            (aperture, "aperture_photometry", "  photometry: aperture sums and errors"),
            (lights_step, "light_task", "main: choose the masters"),
            (lights_step, "store_light_result", "main: calibrate and store"),
            (pipeline, "lights_stage", "lights stage (all)")):
        setattr(module, name, _timed(getattr(module, name), label, times))
    context = lights_step.CalibrationContext
    context.load = classmethod(_timed(context.load.__func__, "main: load the catalog and stars "
                                      "(once)", times))
    lights_step.start_light = _timed(lights_step.start_light, "a light's stages (start_light)",
                                     times)
    lights_step.finish_light = _timed(lights_step.finish_light, "the wait for its written file "
                                      "(finish_light)", times)
    t0 = time.perf_counter()
    # one process (`run --workers 1`): the default local pool's forked workers would time
    # the lights where this process cannot see the figures
    pipeline.run_pipeline(load_config(sim.config_path), workers=1)
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
