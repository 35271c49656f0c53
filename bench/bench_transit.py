"""Benchmark: the fit of one transit (150 points, 60 s exposures, airmass + FWHM detrending,
MCMC run until the chain is 50 autocorrelation times long). Goal: <= 60 s on 2 cores.

    PYTHONPATH=src python bench/bench_transit.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_transits import TC, P, U, synthetic_night

from clinepipe.transits.fit import fit_transit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = []
    for seed in range(args.repeat):
        t, f, e, x, fwhm, priors, predicted = synthetic_night(seed)
        start = time.perf_counter()
        fit = fit_transit(t, f, e, x, period=P, t0_guess=predicted, exptime=60.0, ld=U,
                          priors=priors, detrend=("airmass", "fwhm"), vectors={"fwhm": fwhm},
                          seed=seed)
        times.append(time.perf_counter() - start)
        print(f"seed {seed}: {times[-1]:.1f} s, {fit.n_steps} steps x {fit.n_walkers} walkers, "
              f"tau {fit.autocorr_steps:.1f} steps, converged {fit.converged}; "
              f"Tmid {TC} + {(fit.tmid - TC) * 1440:+.2f} +- {fit.tmid_err * 1440:.2f} min, "
              f"Rp/Rs {fit.rprs:.4f} +- {fit.rprs_err:.4f}")
    print(f"fit of one transit: median {sorted(times)[len(times) // 2]:.1f} s "
          f"(max {max(times):.1f} s) over {len(times)}; goal <= 60 s")


if __name__ == "__main__":
    main()
