"""Quadratic limb-darkening coefficients for a filter and a host star.

I(mu) / I(1) = 1 - u1 (1 - mu) - u2 (1 - mu)^2.

The coefficients are *computed*, not looked up: the tabulated grids (Claret & Bloemen 2011,
A&A 529, A75) live on VizieR, which this pipeline cannot reach at run time and does not
ship. Instead the specific intensity of a grey plane-parallel atmosphere in radiative
equilibrium is integrated exactly at each wavelength of the band:

* temperature structure T^4(tau) = 3/4 Teff^4 (tau + q(tau)) with the Hopf function
  approximated as q(tau) = 0.7104 - 0.1331 exp(-3.4488 tau) (Mihalas 1978, Stellar
  Atmospheres, sect. 3-4; exact at tau = 0 and tau -> infinity to 1e-4);
* formal solution I_lambda(mu) = int_0^inf B_lambda(T(tau)) exp(-tau/mu) dtau/mu, by
  64-point Gauss-Laguerre quadrature (LTE, grey opacity);
* photon-weighted over a Gaussian passband (centre and FWHM below, after Bessell 2005,
  ARA&A 43, 293 for Johnson-Cousins and Fukugita et al. 1996, AJ 111, 1748 for Sloan);
* least-squares fit of the quadratic law on 100 mu points in (0, 1], as Claret does.

A grey atmosphere darkens the limb somewhat more than real solar-type atmospheres (for the
Sun in V it gives u1 + u2 = 0.72, I(0.2)/I(1) = 0.44); the coefficients are held fixed in
the fit, so this is a systematic on Rp/Rs of order 1 % of its value. The grey model depends
on Teff and wavelength only: ``logg`` and ``feh`` are accepted so that a
tabulated grid can replace this module without changing its callers, and are not used
(their effect on u1 + u2 is a few hundredths, below what one ground-based night measures).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["DEFAULT_TEFF", "FILTER_ALIASES", "PASSBANDS", "LimbDarkening", "quadratic_ld"]

#: passband centre and FWHM (nm) as Gaussians
PASSBANDS = {"B": (436.0, 94.0), "V": (545.0, 85.0), "R": (641.0, 160.0), "I": (798.0, 154.0),
             "g": (477.0, 137.0), "r": (623.0, 138.0), "i": (763.0, 153.0),
             "clear": (560.0, 300.0)}
#: FILTER header values -> passband (case-insensitive); broad RGB filters as their Johnson twin
FILTER_ALIASES = {"b": "B", "v": "V", "r": "R", "i": "I", "rc": "R", "ic": "I",
                  "johnson b": "B", "johnson v": "V", "cousins r": "R", "cousins i": "I",
                  "blue": "B", "green": "V", "red": "R", "g'": "g", "r'": "r", "i'": "i",
                  "sg": "g", "sr": "r", "si": "i", "gp": "g", "rp": "r", "ip": "i",
                  "sloan g": "g", "sloan r": "r", "sloan i": "i",
                  "lum": "clear", "l": "clear", "clear": "clear", "cv": "clear", "cr": "clear",
                  "cbb": "clear", "none": "clear", "": "clear"}
#: host Teff (K) used when the table gives none: a Sun-like host, the most common case
DEFAULT_TEFF = 5750.0

_HC_OVER_K = 1.438776877e7  # nm K
_MU = np.linspace(0.01, 1.0, 100)
_NODES, _WEIGHTS = np.polynomial.laguerre.laggauss(64)


@dataclass(frozen=True)
class LimbDarkening:
    """Quadratic coefficients ``u1``, ``u2`` and what they were computed for."""

    u1: float
    u2: float
    band: str          #: passband used (key of PASSBANDS)
    teff: float        #: K
    source: str        #: how they were obtained

    @property
    def u(self) -> tuple[float, float]:
        return (self.u1, self.u2)


def _band(filter_name: str) -> str:
    key = str(filter_name or "").strip()
    if key in PASSBANDS:
        return key
    if key.lower() in FILTER_ALIASES:
        return FILTER_ALIASES[key.lower()]
    raise ValueError(f"filter {filter_name!r} has no passband for limb darkening "
                     f"(known: {', '.join(PASSBANDS)} and aliases such as Rc, Ic, g', SR, Lum)")


def _temperature(tau: np.ndarray, teff: float) -> np.ndarray:
    hopf = 0.7104 - 0.1331 * np.exp(-3.4488 * tau)
    return (0.75 * teff**4 * (tau + hopf)) ** 0.25


def _planck_shape(wavelength_nm: np.ndarray, temperature: np.ndarray) -> np.ndarray:
    """B_lambda up to a factor constant in T: 1 / (lambda^5 (exp(hc/lambda k T) - 1))."""
    return 1.0 / (wavelength_nm**5 * np.expm1(_HC_OVER_K / (wavelength_nm * temperature)))


@lru_cache(maxsize=256)
def _coefficients(band: str, teff: float) -> tuple[float, float]:
    centre, fwhm = PASSBANDS[band]
    sigma = fwhm / 2.3548
    lam = centre + sigma * np.linspace(-2.5, 2.5, 41)
    throughput = np.exp(-0.5 * ((lam - centre) / sigma) ** 2) * lam  # photons, not energy
    tau = _MU[:, None, None] * _NODES[None, :, None]                   # (mu, node, lambda)
    intensity = np.sum(_WEIGHTS[None, :, None]
                       * _planck_shape(lam[None, None, :], _temperature(tau, teff)), axis=1)
    band_intensity = intensity @ throughput
    profile = band_intensity / band_intensity[-1]
    x = 1.0 - _MU
    design = np.column_stack([x, x**2])
    u1, u2 = np.linalg.lstsq(design, 1.0 - profile, rcond=None)[0]
    return float(u1), float(u2)


def quadratic_ld(filter_name: str, teff: float | None = None, logg: float | None = None,
                 feh: float | None = None) -> LimbDarkening:
    """Quadratic limb-darkening coefficients of a host star seen through a filter.

    Parameters
    ----------
    filter_name : str
        FILTER header value: B, V, R/Rc, I/Ic, g/r/i (Sloan; also g', SG, ...), Blue/Green/Red
        (as B/V/R) or Lum/Clear (a broad 410-710 nm band).
    teff : float, optional
        Host effective temperature (K), clipped to 3000-10000 K; None: :data:`DEFAULT_TEFF`.
    logg, feh : float, optional
        Surface gravity (cgs dex) and metallicity (dex): accepted, not used (see module notes).

    Returns
    -------
    LimbDarkening
        ``u1``, ``u2`` (dimensionless), the band and Teff used, and the source.

    Raises
    ------
    ValueError
        For a filter without a passband.
    """
    band = _band(filter_name)
    known = teff is not None and np.isfinite(teff)
    t = float(np.clip(teff, 3000.0, 10000.0)) if known else DEFAULT_TEFF
    u1, u2 = _coefficients(band, round(t))
    source = "grey atmosphere, Hopf q(tau), Gauss-Laguerre formal solution"
    if not known:
        source += f"; host Teff unknown, {DEFAULT_TEFF:.0f} K assumed"
    return LimbDarkening(u1=u1, u2=u2, band=band, teff=t, source=source)
