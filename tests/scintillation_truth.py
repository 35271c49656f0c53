"""Young's scintillation formula, written out in the tests so that they check the simulator
against the physics and not against its own code."""

from __future__ import annotations

import numpy as np


def young_rms(diameter_cm, airmass, elevation_m, exptime_s):
    """Relative flux rms of scintillation (Young 1967, AJ 72, 747, in the form of Dravins et
    al. 1998, PASP 110, 610): 0.09 D^(-2/3) X^1.75 exp(-h/8000) (2 t)^(-1/2), D cm, h m, t s."""
    return (0.09 * diameter_cm ** (-2 / 3) * np.asarray(airmass, dtype=float) ** 1.75
            * np.exp(-elevation_m / 8000.0) / np.sqrt(2.0 * np.asarray(exptime_s, dtype=float)))
