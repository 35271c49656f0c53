"""Catalog bands on the Johnson-Cousins system: Gaia G, BP, RP to B, V, R, I (Riello et al.
2021 polynomials) and APASS/SDSS g', r', i' to Cousins R (Lupton 2005), with propagated errors.
"""

from __future__ import annotations

import numpy as np

# Riello et al. 2021, A&A 649, A3, Table C.2 (= Gaia DR3 documentation, section 5.5.1,
# Table 5.9): polynomial coefficients c0, c1, … in x = G_BP − G_RP, the relation's scatter
# sigma (mag) and its range of validity (Table C.1 / Table 5.10).
_GAIA_G_MINUS = {
    # band: (coefficients, sigma, (x_min, x_max))
    "V": ((-0.02704, 0.01424, -0.2156, 0.01426), 0.03017, (-0.5, 5.0)),
    "R": ((-0.02275, 0.3961, -0.1243, -0.01396, 0.003775), 0.03167, (0.0, 4.0)),
    "I": ((0.01753, 0.76, -0.0991), 0.03765, (-0.5, 4.5)),
    "B": ((0.01448, -0.6874, -0.3604, 0.06718, -0.006061), 0.0633, (-0.5, 4.0)),
}


# Lupton (2005), "Transformations between SDSS magnitudes and other systems" (SDSS DR4 pages,
# fitted to Stetson's standard stars): R = r − 0.1837 (g − r) − 0.0971, sigma = 0.0106.
_LUPTON_R = (0.1837, 0.0971, 0.0106)


#: Lupton gives no colour range; we apply it only to the colours of normal stars (our guard).
_LUPTON_GR_RANGE = (-0.5, 2.0)


def _poly(coeffs, x):
    return np.polynomial.polynomial.polyval(x, coeffs)


def _dpoly(coeffs, x):
    return np.polynomial.polynomial.polyval(x, np.polynomial.polynomial.polyder(coeffs))


def gaia_to_johnson_cousins(g, bp, rp, e_g=None, e_bp=None, e_rp=None):
    """Johnson–Cousins V, R, I and B from Gaia DR3 G, G_BP, G_RP (magnitudes and errors).

    Relations: Gaia DR3 documentation §5.5.1 Table 5.9 (the DR3 restatement of Riello et
    al. 2021, A&A 649, A3, Appendix C), with x = G_BP − G_RP:

    ========================================================================  =======  ==============
    relation                                                                  sigma    valid for
    ========================================================================  =======  ==============
    G − V  = −0.02704 + 0.01424 x − 0.2156 x² + 0.01426 x³                    0.03017  −0.5 < x < 5.0
    G − R  = −0.02275 + 0.3961 x − 0.1243 x² − 0.01396 x³ + 0.003775 x⁴       0.03167   0.0 < x < 4.0
    G − I  =  0.01753 + 0.76 x − 0.0991 x²                                    0.03765  −0.5 < x < 4.5
    G − B  =  0.01448 − 0.6874 x − 0.3604 x² + 0.06718 x³ − 0.006061 x⁴       0.0633   −0.5 < x < 4.0
    ========================================================================  =======  ==============

    (The coefficients were checked against several independent implementations of that
    table.) Outside a relation's range the band is NaN. Errors (1 sigma) add in quadrature
    the Gaia errors propagated through the polynomial (σ_x² = σ_BP² + σ_RP²) and the
    relation's scatter: ``σ² = σ_G² + (dP/dx)² σ_x² + σ_rel²``. Correlations between bands
    are ignored.

    Returns ``{band: (mag, err)}`` for ``V``, ``R``, ``I``, ``B``.
    """
    g = np.asarray(g, dtype=float)
    bp = np.asarray(bp, dtype=float)
    rp = np.asarray(rp, dtype=float)
    zeros = np.zeros(g.shape)
    eg = zeros if e_g is None else np.nan_to_num(np.asarray(e_g, dtype=float), nan=0.0)
    ebp = zeros if e_bp is None else np.nan_to_num(np.asarray(e_bp, dtype=float), nan=0.0)
    erp = zeros if e_rp is None else np.nan_to_num(np.asarray(e_rp, dtype=float), nan=0.0)
    x = bp - rp
    var_x = ebp ** 2 + erp ** 2
    out = {}
    with np.errstate(invalid="ignore"):
        for band, (coeffs, sigma, (lo, hi)) in _GAIA_G_MINUS.items():
            ok = np.isfinite(g) & np.isfinite(x) & (x >= lo) & (x <= hi)
            mag = np.where(ok, g - _poly(coeffs, x), np.nan)
            err = np.where(ok, np.sqrt(eg ** 2 + _dpoly(coeffs, x) ** 2 * var_x + sigma ** 2), np.nan)
            out[band] = (mag, err)
    return out


def sloan_to_cousins_r(g, r, e_g=None, e_r=None):
    """Cousins R from Sloan g, r: ``R = r − 0.1837 (g − r) − 0.0971`` (Lupton 2005, σ = 0.0106).

    The relation was fitted to SDSS ugriz photometry of Stetson's standards; APASS's g′r′i′
    (the USNO-40 primed system) differs from it by at most a few hundredths for normal
    colours, which the relation's scatter does not include. Lupton gives no colour range; we
    apply it for −0.5 ≤ g − r ≤ 2.0 and return NaN outside. Error:
    ``σ_R² = (1.1837 σ_r)² + (0.1837 σ_g)² + 0.0106²``. Returns ``(mag, err)``.
    """
    a, b, sigma = _LUPTON_R
    g = np.asarray(g, dtype=float)
    r = np.asarray(r, dtype=float)
    zeros = np.zeros(g.shape)
    eg = zeros if e_g is None else np.nan_to_num(np.asarray(e_g, dtype=float), nan=0.0)
    er = zeros if e_r is None else np.nan_to_num(np.asarray(e_r, dtype=float), nan=0.0)
    gr = g - r
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(gr) & (gr >= _LUPTON_GR_RANGE[0]) & (gr <= _LUPTON_GR_RANGE[1])
    mag = np.where(ok, r - a * gr - b, np.nan)
    err = np.where(ok, np.sqrt(((1 + a) * er) ** 2 + (a * eg) ** 2 + sigma ** 2), np.nan)
    return mag, err
