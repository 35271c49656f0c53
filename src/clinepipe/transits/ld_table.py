"""Quadratic limb darkening interpolated in the Magic et al. (2015) 3D-atmosphere table.

The table (``data/magic2015_quadratic.csv``, written by ``scripts/extract_limb_darkening.py``)
holds u1, u2 of the 3D STAGGER-grid models (Magic, Chiavassa, Collet & Asplund 2015,
A&A 573, A90) for Johnson-Cousins U B V R I and SDSS u g r i z: 98 models per band,
Teff ~3940-6990 K, logg 1.5-5.0, [Fe/H] -3.0 to 0.0.

The grid is not regular: each model has its own Teff (e.g. 5767.92 K for the solar model,
4523.76 K for the "4500 K" one at logg 2.5), the solar model sits at logg 4.44 between the
4.0 and 4.5 rows, and whole corners are missing (few hot giants, few metal-poor cool
dwarfs). So instead of a RegularGridInterpolator the models are joined by a Delaunay
triangulation in units of one grid step (500 K, 0.5 dex, 1 dex), and a star's coefficients
are the barycentric (piecewise linear) mix of the models at the corners of its tetrahedron:
exact at every model, linear in Teff, logg and [Fe/H] between them. A tetrahedron that
bridges a hole of the grid (its used corners more than about one step apart on an axis)
is not trusted: such a star, like one outside the grid, is reported as not covered, and
the caller falls back to another model.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy.spatial import Delaunay

__all__ = ["TABLE_BANDS", "TABLE_FILE", "table_coefficients", "table_models"]

TABLE_FILE = "magic2015_quadratic.csv"
#: passbands the table covers (keys of transits.limbdark.PASSBANDS)
TABLE_BANDS = ("U", "B", "V", "R", "I", "u", "g", "r", "i", "z")
#: one grid step per axis (Teff K, logg dex, [Fe/H] dex): the triangulation's units
_STEP = np.array([500.0, 0.5, 1.0])
#: the widest spread of a tetrahedron's used corners, in steps, that still counts as
#: interpolation between neighbours: 1.3 steps in Teff because model Teffs scatter up to
#: ~80 K around the nominal grid; 1.2 in logg for the solar model (4.44) to the 5.0 row
_MAX_SPAN = np.array([1.3, 1.2, 1.0]) + 1e-6
#: barycentric weight below which a corner takes no part in the value
_UNUSED = 1e-9


@lru_cache(maxsize=1)
def _rows() -> dict[str, np.ndarray]:
    """band -> (n, 5) array of teff, logg, feh, u1, u2 from the packaged CSV."""
    text = resources.files("clinepipe.transits").joinpath("data").joinpath(TABLE_FILE).read_text("utf-8")
    reader = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    by_band: dict[str, list] = {}
    for row in reader:
        by_band.setdefault(row["band"], []).append(
            [float(row[k]) for k in ("teff", "logg", "feh", "u1", "u2")])
    return {band: np.array(rows) for band, rows in by_band.items()}


def table_models(band: str) -> np.ndarray:
    """The table's models for a band, shape (n, 5): Teff (K), logg (dex), [Fe/H] (dex), u1, u2.

    Raises
    ------
    KeyError
        For a band the table does not cover (see :data:`TABLE_BANDS`).
    """
    return _rows()[band]


@lru_cache(maxsize=len(TABLE_BANDS))
def _triangulation(band: str) -> Delaunay:
    return Delaunay(table_models(band)[:, :3] / _STEP)


def table_coefficients(band: str, teff, logg, feh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u1, u2 interpolated in the Magic et al. (2015) table, for arrays of stars.

    Parameters
    ----------
    band : str
        One of :data:`TABLE_BANDS`.
    teff, logg, feh : float or array_like
        Effective temperature (K), surface gravity (log10 cm s^-2), metallicity (dex);
        broadcast against each other.

    Returns
    -------
    u1, u2 : ndarray
        Quadratic coefficients (dimensionless); NaN where not covered.
    covered : ndarray of bool
        True where the star lies between neighbouring models of the table.
    """
    tri = _triangulation(band)
    values = table_models(band)[:, 3:]
    teff, logg, feh = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (teff, logg, feh)))
    shape = teff.shape
    query = np.column_stack([teff.ravel(), logg.ravel(), feh.ravel()]) / _STEP
    finite = np.all(np.isfinite(query), axis=1)
    simplex = np.where(finite, tri.find_simplex(np.where(finite[:, None], query, 0.0)), -1)
    found = simplex >= 0
    s = np.where(found, simplex, 0)
    transform = tri.transform[s]                                   # (n, 4, 3)
    bary = np.einsum("nij,nj->ni", transform[:, :3], query - transform[:, 3])
    weights = np.column_stack([bary, 1.0 - bary.sum(axis=1)])      # (n, 4)
    corners = tri.simplices[s]                                     # (n, 4)
    used = weights > _UNUSED
    where = tri.points[corners]                                    # (n, 4, 3)
    top = np.where(used[..., None], where, -np.inf).max(axis=1)
    bottom = np.where(used[..., None], where, np.inf).min(axis=1)
    near = np.all(top - bottom <= _MAX_SPAN, axis=1)
    u = np.einsum("ni,nij->nj", weights, values[corners])
    covered = found & near & np.all(np.isfinite(u), axis=1)
    u[~covered] = np.nan
    return u[:, 0].reshape(shape), u[:, 1].reshape(shape), covered.reshape(shape)
