"""Quadratic limb-darkening coefficients for a filter and a host star.

I(mu) / I(1) = 1 - u1 (1 - mu) - u2 (1 - mu)^2.

Two sources, the better first:

1. **The Magic et al. (2015, A&A 573, A90) table** of 3D radiation-hydrodynamic STAGGER
   atmospheres, shipped with clinepipe (:mod:`clinepipe.transits.ld_table`): Johnson-Cousins
   U B V R I and SDSS u g r i z, Teff ~4000-7000 K, logg 1.5-5.0, [Fe/H] -3.0 to 0.0,
   interpolated linearly in Teff, logg and [Fe/H]. 3D models reproduce the solar
   centre-to-limb variation, which 1D and grey models over-darken: for the Sun in V the table
   gives u1 = 0.449, u2 = 0.278, the grey model below 0.610, 0.110. A table, not a package
   that carries it (meidem), because that package needs pandas and pyarrow at run time; and
   not Claret's grids, which live on VizieR, out of reach at run time.
2. **A grey atmosphere**, computed, for everything the table does not cover: M dwarfs and
   hot stars, giants in the table's holes, and bands it lacks (Clear/Lum). The specific
   intensity of a grey plane-parallel atmosphere in radiative equilibrium is integrated
   exactly at each wavelength of the band:

   * temperature structure T^4(tau) = 3/4 Teff^4 (tau + q(tau)) with the Hopf function
     approximated as q(tau) = 0.7104 - 0.1331 exp(-3.4488 tau) (Mihalas 1978, Stellar
     Atmospheres, sect. 3-4; exact at tau = 0 and tau -> infinity to 1e-4);
   * formal solution I_lambda(mu) = int_0^inf B_lambda(T(tau)) exp(-tau/mu) dtau/mu, by
     64-point Gauss-Laguerre quadrature (LTE, grey opacity);
   * photon-weighted over a Gaussian passband (centre and FWHM below, after Bessell 2005,
     ARA&A 43, 293 for Johnson-Cousins and Fukugita et al. 1996, AJ 111, 1748 for Sloan);
   * least-squares fit of the quadratic law on 100 mu points in (0, 1], as Claret does.

   It depends on Teff and wavelength only and darkens the limb more than real solar-type
   atmospheres (u1 + u2 = 0.72 against 0.73 from the table for the Sun in V, but a steeper
   profile near the limb); the coefficients are held fixed in the fit, so this is a
   systematic on Rp/Rs of order 1 % of its value.

Missing host values: Teff :data:`DEFAULT_TEFF`, logg :data:`DEFAULT_LOGG` (a dwarf),
[Fe/H] :data:`DEFAULT_FEH` (solar), each said in ``source``. Metal-rich hosts up to
[Fe/H] = +:data:`FEH_CLIP` are looked up at the table's top, 0.0: the table's own slope
(about 0.1 in u1 per dex) makes that a smaller error than the grey model's (0.16 in u1 for
the Sun in V).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from clinepipe.transits.ld_table import TABLE_BANDS, table_coefficients

__all__ = ["DEFAULT_FEH", "DEFAULT_LOGG", "DEFAULT_TEFF", "FEH_CLIP", "FILTER_ALIASES",
           "PASSBANDS", "LimbDarkening", "quadratic_ld"]

#: passband centre and FWHM (nm) as Gaussians, for the grey model
PASSBANDS = {"U": (366.0, 65.0), "B": (436.0, 94.0), "V": (545.0, 85.0), "R": (641.0, 160.0),
             "I": (798.0, 154.0),
             "u": (356.0, 60.0), "g": (477.0, 137.0), "r": (623.0, 138.0), "i": (763.0, 153.0),
             "z": (910.0, 137.0),
             "clear": (560.0, 300.0)}
#: FILTER header values -> passband (case-insensitive); broad RGB filters as their Johnson twin
FILTER_ALIASES = {"b": "B", "v": "V", "r": "R", "i": "I", "rc": "R", "ic": "I",
                  "johnson u": "U", "johnson b": "B", "johnson v": "V", "cousins r": "R",
                  "cousins i": "I",
                  "blue": "B", "green": "V", "red": "R", "u'": "u", "g'": "g", "r'": "r",
                  "i'": "i", "z'": "z",
                  "su": "u", "sg": "g", "sr": "r", "si": "i", "sz": "z",
                  "up": "u", "gp": "g", "rp": "r", "ip": "i", "zp": "z",
                  "sloan u": "u", "sloan g": "g", "sloan r": "r", "sloan i": "i", "sloan z": "z",
                  "lum": "clear", "l": "clear", "clear": "clear", "cv": "clear", "cr": "clear",
                  "cbb": "clear", "none": "clear", "": "clear"}
#: host Teff (K) used when the table gives none: a Sun-like host, the most common case
DEFAULT_TEFF = 5750.0
#: host logg (cgs dex) when unknown: a main-sequence host, as nearly all transit hosts are
DEFAULT_LOGG = 4.5
#: host [Fe/H] (dex) when unknown: solar
DEFAULT_FEH = 0.0
#: [Fe/H] (dex) up to which a metal-rich host is looked up at the table's top (0.0)
FEH_CLIP = 0.5

TABLE_NAME = "Magic et al. 2015 3D (STAGGER) table"
GREY_NAME = "grey atmosphere, Hopf q(tau), Gauss-Laguerre formal solution"

_HC_OVER_K = 1.438776877e7  # nm K
_MU = np.linspace(0.01, 1.0, 100)
_NODES, _WEIGHTS = np.polynomial.laguerre.laggauss(64)


@dataclass(frozen=True)
class LimbDarkening:
    """Quadratic coefficients ``u1``, ``u2`` and what they were obtained for."""

    u1: float
    u2: float
    band: str          #: passband used (key of PASSBANDS)
    teff: float        #: K
    source: str        #: how they were obtained, one sentence for people
    logg: float = DEFAULT_LOGG   #: cgs dex, as used (table) or assumed
    feh: float = DEFAULT_FEH     #: dex, as used (after clipping to the table's top)
    model: str = "grey"          #: "magic2015" (the table) or "grey" (the computed fallback)

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


def _given(value) -> bool:
    return value is not None and math.isfinite(float(value))


def quadratic_ld(filter_name: str, teff: float | None = None, logg: float | None = None,
                 feh: float | None = None) -> LimbDarkening:
    """Quadratic limb-darkening coefficients of a host star seen through a filter.

    From the Magic et al. (2015) table where it covers the band and the star, else from
    the grey model (see the module notes); ``model`` and ``source`` say which.

    Parameters
    ----------
    filter_name : str
        FILTER header value: U, B, V, R/Rc, I/Ic, u/g/r/i/z (Sloan; also g', SG, ...),
        Blue/Green/Red (as B/V/R) or Lum/Clear (a broad 410-710 nm band, grey model only).
    teff : float, optional
        Host effective temperature (K); None or NaN: :data:`DEFAULT_TEFF`. The grey model
        clips it to 3000-10000 K.
    logg : float, optional
        Host surface gravity (log10 cm s^-2); None or NaN: :data:`DEFAULT_LOGG`.
    feh : float, optional
        Host metallicity [Fe/H] (dex); None or NaN: :data:`DEFAULT_FEH`. Values in
        (0, :data:`FEH_CLIP`] are looked up at 0.0, the table's top.

    Returns
    -------
    LimbDarkening
        ``u1``, ``u2`` (dimensionless), the band, Teff, logg and [Fe/H] used, the model
        (``"magic2015"`` or ``"grey"``) and a one-sentence source.

    Raises
    ------
    ValueError
        For a filter without a passband.
    """
    band = _band(filter_name)
    notes = []
    t = float(teff) if _given(teff) else DEFAULT_TEFF
    g = float(logg) if _given(logg) else DEFAULT_LOGG
    f = float(feh) if _given(feh) else DEFAULT_FEH
    for name, given, shown in (("Teff", teff, f"{t:.0f} K"), ("logg", logg, f"{g:.1f}"),
                               ("[Fe/H]", feh, f"{f:+.1f}")):
        if not _given(given):
            notes.append(f"host {name} unknown, {shown} assumed")
    f_table = 0.0 if 0.0 < f <= FEH_CLIP else f
    if band in TABLE_BANDS:
        u1, u2, covered = table_coefficients(band, t, g, f_table)
        if covered:
            if f_table != f:
                notes.append(f"[Fe/H] {f:+.2f} looked up at 0.0, the table's top")
            source = (f"{TABLE_NAME}, {band} band, interpolated at Teff {t:.0f} K, "
                      f"logg {g:.2f}, [Fe/H] {f_table:+.2f}")
            return LimbDarkening(u1=float(u1), u2=float(u2), band=band, teff=t,
                                 source="; ".join([source, *notes]), logg=g, feh=f_table,
                                 model="magic2015")
        why = (f"Teff {t:.0f} K, logg {g:.2f}, [Fe/H] {f:+.2f} outside the coverage of the "
               f"{TABLE_NAME}")
    else:
        why = f"band {band} not in the {TABLE_NAME}"
    t_grey = float(np.clip(t, 3000.0, 10000.0))
    u1, u2 = _coefficients(band, round(t_grey))
    return LimbDarkening(u1=u1, u2=u2, band=band, teff=t_grey,
                         source="; ".join([GREY_NAME, why, *notes]), logg=g, feh=f,
                         model="grey")
