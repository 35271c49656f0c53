"""Scintillation: the atmosphere's fast intensity fluctuations, as a per-star, per-frame
multiplicative noise on the flux that reaches the telescope.

Young's formula (Young 1967, AJ 72, 747; in the form of Dravins et al. 1998, PASP 110, 610,
eq. 10) for the relative rms of a star's flux in an exposure:

    sigma = 0.09 D^(-2/3) X^1.75 exp(-h / 8000) (2 t)^(-1/2)

with D the telescope aperture (cm), X the airmass, h the site's elevation (m; 8000 m is the
scale height of the turbulence) and t the exposure (s). Osborn et al. 2015 (MNRAS 452, 1707)
compared it with turbulence profiles measured at eleven sites: it underestimates the median
scintillation by a factor ~1.5, so the simulator multiplies it by ``factor`` (1.5 by
default, :attr:`SimulationSpec.scintillation_factor`; 1 gives Young's original).

Stars further apart than the isoplanatic patch (a few arcseconds) scintillate independently,
so each star of a frame gets its own Gaussian draw.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OSBORN_FACTOR", "young_scintillation"]

#: Osborn et al. (2015): median ratio of measured to Young's scintillation
OSBORN_FACTOR = 1.5


def young_scintillation(diameter_cm: float, airmass, elevation_m: float, exptime_s: float,
                        factor: float = OSBORN_FACTOR):
    """Relative rms of a star's flux from scintillation (dimensionless, e.g. 0.001 = 0.1 %).

    Parameters
    ----------
    diameter_cm : float
        Telescope aperture (cm).
    airmass : float or array
        Airmass (sec z).
    elevation_m : float
        Site elevation (m).
    exptime_s : float
        Exposure (s); 0 or less gives NaN (an instantaneous exposure has no defined rms).
    factor : float
        Multiplies Young's value (see the module docstring).
    """
    x = np.asarray(airmass, dtype=np.float64)
    if not exptime_s > 0:
        return np.full(x.shape, np.nan) if x.ndim else float("nan")
    sigma = (factor * 0.09 * diameter_cm ** (-2.0 / 3.0) * x ** 1.75
             * np.exp(-elevation_m / 8000.0) / np.sqrt(2.0 * exptime_s))
    return sigma if x.ndim else float(sigma)
