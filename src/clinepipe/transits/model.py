"""The transit light curve: Mandel & Agol (2002) with quadratic limb darkening, computed by
``batman`` (Kreidberg 2015, PASP 127, 1161), averaged over each exposure."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "TransitCurve",
    "impact_parameter",
    "supersample_factor",
    "total_duration",
    "transit_flux",
]

SECONDS_PER_DAY = 86400.0
#: sub-exposure length (s) for the exposure average: an ingress lasts >~ 10 min, so a
#: 20 s step keeps the smearing error well under 1e-5 of the flux
SUBEXPOSURE_S = 20.0


def supersample_factor(exptime_s: float) -> int:
    """Sub-exposures per exposure for an exposure of ``exptime_s`` seconds (1 = none)."""
    if not exptime_s or exptime_s <= SUBEXPOSURE_S:
        return 1
    return min(int(math.ceil(exptime_s / SUBEXPOSURE_S)), 31)


class TransitCurve:
    """A reusable batman model over fixed times: ``curve(tmid, rprs, ars, inc)`` -> flux.

    Parameters
    ----------
    time : array (n,)
        Mid-exposure times (BJD_TDB, d).
    period : float
        Orbital period (d).
    u : (float, float)
        Quadratic limb-darkening coefficients.
    exptime_s : float
        Exposure time (s); the model is averaged over it (0 = instantaneous).
    ecc, omega : float
        Eccentricity and argument of periastron (deg); circular by default.
    """

    def __init__(self, time, period: float, u, exptime_s: float = 0.0, ecc: float = 0.0,
                 omega: float = 90.0):
        import batman

        self.time = np.asarray(time, dtype=np.float64)
        params = batman.TransitParams()
        params.t0, params.per, params.rp, params.a, params.inc = (
            float(np.median(self.time)), float(period), 0.1, 10.0, 89.0)
        params.ecc, params.w = float(ecc), float(omega)
        params.u, params.limb_dark = [float(u[0]), float(u[1])], "quadratic"
        factor = supersample_factor(exptime_s)
        # batman spreads the sub-exposures over exp_time; with factor 1 it ignores it
        self._params = params
        self._model = batman.TransitModel(params, self.time, supersample_factor=factor,
                                          exp_time=float(exptime_s) / SECONDS_PER_DAY)

    def __call__(self, tmid: float, rprs: float, ars: float, inc: float) -> np.ndarray:
        """Relative flux (1 out of transit) at each time, for mid-time ``tmid`` (BJD_TDB),
        radius ratio ``rprs``, scaled semi-major axis ``ars`` and inclination ``inc`` (deg)."""
        p = self._params
        p.t0, p.rp, p.a, p.inc = float(tmid), float(rprs), float(ars), float(inc)
        return self._model.light_curve(p)


def transit_flux(time, tmid: float, period: float, rprs: float, ars: float, inc: float,
                 u=(0.4, 0.25), exptime_s: float = 0.0) -> np.ndarray:
    """One-off model flux (1 out of transit) at ``time`` (BJD_TDB, d); see TransitCurve."""
    return TransitCurve(time, period, u, exptime_s)(tmid, rprs, ars, inc)


def impact_parameter(ars, inc_deg):
    """b = a/Rs cos(i) for a circular orbit (stellar radii)."""
    return np.asarray(ars) * np.cos(np.radians(inc_deg))


def total_duration(period, rprs, ars, inc_deg):
    """First-to-fourth-contact duration T14 (d) of a circular orbit (Winn 2010, eq. 14);
    0 where the planet misses the star."""
    b = impact_parameter(ars, inc_deg)
    sin_i = np.sin(np.radians(inc_deg))
    chord = np.sqrt(np.clip((1.0 + np.asarray(rprs)) ** 2 - b**2, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):  # i = 0 or a/Rs = 0: no transit
        arg = np.clip(chord / (np.asarray(ars) * sin_i), 0.0, 1.0)
    return np.asarray(period) / np.pi * np.arcsin(arg)
