"""The differential light curve of a transit host: its flux over a weighted ensemble of
comparison stars chosen automatically, at the aperture radius that scatters least.

Inputs are (frames x stars) matrices of aperture fluxes and their errors (ADU or e-, any
consistent unit). Each comparison's flux is normalised by its own median; the ensemble is
the weighted mean of those normalised fluxes with weights 1/sigma_j^2, sigma_j the scatter
of star j against the ensemble of the others (Broeg, Fernandez & Neuhauser 2005, AN 326,
134), iterated until the weights settle. The differential flux is target / ensemble, with
the relative errors of both added in quadrature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from clinepipe.errors import BadInput

__all__ = [
    "Comparisons",
    "DifferentialLightCurve",
    "choose_aperture",
    "differential_flux",
    "point_to_point_scatter",
    "select_comparisons",
]

#: largest brightness difference (mag) between the target and a comparison
MAX_DELTA_MAG = 1.5
#: largest colour difference (mag) where colours are known
MAX_DELTA_COLOUR = 0.5
#: a star whose scatter against the ensemble exceeds the typical one by this many robust
#: standard deviations (and by 50 %) is taken for a variable
VARIABLE_SIGMA = 5.0
MAX_COMPARISONS = 12


@dataclass(frozen=True)
class Comparisons:
    """Chosen comparison stars: column ``indices`` into the flux matrix, their ``weights``
    (sum 1), and for every rejected column the ``rejected`` reason."""

    indices: np.ndarray
    weights: np.ndarray
    rejected: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class DifferentialLightCurve:
    """Target flux over the ensemble, normalised to a median of 1 out of transit.

    ``flux``, ``flux_err`` (n_frames,); ``comparisons``; ``aperture`` the radius used (px,
    None when no grid); ``scatter`` the point-to-point scatter out of transit (fraction);
    ``scatter_by_aperture`` {radius: scatter} for every radius tried.
    """

    flux: np.ndarray
    flux_err: np.ndarray
    comparisons: Comparisons
    aperture: float | None = None
    scatter: float = float("nan")
    scatter_by_aperture: dict = field(default_factory=dict)


def point_to_point_scatter(values) -> float:
    """Robust white-noise scatter from successive differences: 1.4826 MAD(diff) / sqrt(2);
    insensitive to slow trends (airmass) that a standard deviation would count."""
    d = np.diff(np.asarray(values, dtype=np.float64))
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float("nan")
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def _ensemble(norm, norm_err, weights):
    """Weighted ensemble (n_frames,) and its error from normalised fluxes (n_frames, k)."""
    ens = norm @ weights
    ens_err = np.sqrt((norm_err**2) @ (weights**2))
    return ens, ens_err


def _leave_one_out_scatter(norm, weights, oot) -> np.ndarray:
    """Scatter of each star over the weighted ensemble of the others (fraction)."""
    total = norm @ weights                                        # (n,)
    others = (total[:, None] - norm * weights[None, :]) / (1.0 - weights)[None, :]
    ratio = norm / others
    ratio = ratio / np.median(ratio[oot], axis=0)
    centred = ratio[oot] - np.median(ratio[oot], axis=0)
    return 1.4826 * np.median(np.abs(centred), axis=0)


def select_comparisons(flux, flux_err, target: int, *, mag=None, colour=None, flags=None,
                       variable=None, oot=None, max_comparisons: int = MAX_COMPARISONS,
                       max_delta_mag: float = MAX_DELTA_MAG,
                       max_delta_colour: float = MAX_DELTA_COLOUR) -> Comparisons:
    """Choose and weight comparison stars for ``target``.

    Parameters
    ----------
    flux, flux_err : array (n_frames, n_stars)
        Aperture fluxes and errors; NaN where a star was not measured.
    target : int
        Column of the target.
    mag, colour : array (n_stars,), optional
        Catalogue magnitude and colour (e.g. B-V); NaN where unknown. Without ``mag`` the
        brightness is -2.5 log10 of the median flux.
    flags : array (n_frames, n_stars) or (n_stars,), optional
        Non-zero where a measurement is saturated, blended or at an edge: such stars are
        never comparisons.
    variable : array (n_stars,) of bool, optional
        Stars known to vary (a catalogue of variables); excluded.
    oot : array (n_frames,) of bool, optional
        Out-of-transit frames, used to measure scatter (default: all).
    max_comparisons : int
        The best-weighted stars kept.

    Returns
    -------
    Comparisons

    Raises
    ------
    BadInput
        When fewer than one comparison remains.
    """
    flux = np.asarray(flux, dtype=np.float64)
    err = np.asarray(flux_err, dtype=np.float64)
    n_frames, n_stars = flux.shape
    oot = np.ones(n_frames, bool) if oot is None else np.asarray(oot, bool)
    rejected: dict[int, str] = {target: "target"}
    candidate = np.ones(n_stars, bool)
    candidate[target] = False

    def reject(mask, reason):
        for j in np.flatnonzero(candidate & mask):
            rejected[int(j)] = reason
        candidate[mask] = False

    present = np.all(np.isfinite(flux) & (flux > 0) & np.isfinite(err) & (err > 0), axis=0)
    reject(~present, "not on every frame")
    if flags is not None:
        f = np.asarray(flags)
        bad = np.any(f != 0, axis=0) if f.ndim == 2 else f != 0
        reject(bad, "flagged (saturated, blended or at an edge)")
    if variable is not None:
        reject(np.asarray(variable, bool), "known variable")
    median_flux = np.nanmedian(np.where(flux > 0, flux, np.nan), axis=0)
    brightness = (np.asarray(mag, np.float64) if mag is not None
                  else -2.5 * np.log10(median_flux))
    if not np.isfinite(brightness[target]):
        brightness = -2.5 * np.log10(median_flux)
    reject(np.abs(brightness - brightness[target]) > max_delta_mag,
           f"brightness differs by more than {max_delta_mag} mag")
    if colour is not None:
        c = np.asarray(colour, np.float64)
        if np.isfinite(c[target]):
            reject(np.isfinite(c) & (np.abs(c - c[target]) > max_delta_colour),
                   f"colour differs by more than {max_delta_colour} mag")
    if not candidate.any():
        raise BadInput(f"no comparison star for target column {target}: every star is "
                       "missing on some frame, flagged, variable or unlike the target.",
                       reason="no comparison stars")

    idx = np.flatnonzero(candidate)
    norm = flux[:, idx] / np.median(flux[oot][:, idx], axis=0)
    norm_err = err[:, idx] / np.median(flux[oot][:, idx], axis=0)
    expected = np.median(norm_err[oot], axis=0)
    weights = 1.0 / expected**2
    weights /= weights.sum()
    keep = np.ones(idx.size, bool)
    for _ in range(10):  # reject variables and re-weight by measured scatter until stable
        if keep.sum() < 3:
            break
        w = np.where(keep, weights, 0.0)
        w /= w.sum()
        scatter = _leave_one_out_scatter(norm[:, keep], w[keep], oot)
        excess = scatter / expected[keep]
        centre = np.median(excess)
        spread = 1.4826 * np.median(np.abs(excess - centre))
        outlier = (excess > centre + VARIABLE_SIGMA * max(spread, 0.05 * centre)) & (
            excess > 1.5 * centre)
        new_weights = np.zeros(idx.size)
        new_weights[keep] = 1.0 / np.maximum(scatter, expected[keep]) ** 2
        kept_positions = np.flatnonzero(keep)
        for j in kept_positions[outlier]:
            rejected[int(idx[j])] = "variable (scatters more than the ensemble)"
        keep[kept_positions[outlier]] = False
        new_weights[~keep] = 0.0
        new_weights /= new_weights.sum()
        settled = not outlier.any() and np.allclose(new_weights, weights, rtol=0.02, atol=1e-4)
        weights = new_weights
        if settled:
            break
    order = np.argsort(-weights)
    best = order[:max_comparisons]
    best = best[weights[best] > 0]
    for j in order[max_comparisons:]:
        if weights[j] > 0:
            rejected[int(idx[j])] = f"not among the {max_comparisons} best-weighted"
    w = weights[best] / weights[best].sum()
    sort = np.argsort(idx[best])
    return Comparisons(indices=idx[best][sort], weights=w[sort], rejected=rejected)


def differential_flux(flux, flux_err, target: int, comparisons: Comparisons, oot=None):
    """Target over the weighted ensemble: (flux, flux_err), each (n_frames,), normalised to a
    median of 1 over ``oot`` frames; errors propagate the target's and the ensemble's."""
    flux = np.asarray(flux, dtype=np.float64)
    err = np.asarray(flux_err, dtype=np.float64)
    oot = np.ones(flux.shape[0], bool) if oot is None else np.asarray(oot, bool)
    idx = comparisons.indices
    scale = np.median(flux[oot][:, idx], axis=0)
    ens, ens_err = _ensemble(flux[:, idx] / scale, err[:, idx] / scale, comparisons.weights)
    ratio = flux[:, target] / ens
    rel_err = np.sqrt((err[:, target] / flux[:, target]) ** 2 + (ens_err / ens) ** 2)
    norm = np.median(ratio[oot])
    return ratio / norm, np.abs(ratio / norm) * rel_err


def choose_aperture(grid: Mapping[float, tuple[np.ndarray, np.ndarray]], target: int, *,
                    oot=None, comparisons=None, **selection) -> DifferentialLightCurve:
    """The differential light curve at the aperture radius with the lowest out-of-transit
    point-to-point scatter.

    Parameters
    ----------
    grid : mapping radius (px) -> (flux, flux_err), each (n_frames, n_stars)
        Photometry of the same stars and frames at each radius.
    target : int
        Column of the target.
    oot : array (n_frames,) of bool, optional
        Out-of-transit frames.
    comparisons : sequence of int, optional
        Columns chosen by the user (``--comps``); weighted but not filtered.
    **selection
        Passed to :func:`select_comparisons` (``mag``, ``colour``, ``flags``, ...).

    Returns
    -------
    DifferentialLightCurve
        With ``aperture`` the chosen radius and ``scatter_by_aperture`` every radius's scatter.
    """
    if not grid:
        raise BadInput("no aperture photometry to build a light curve from.",
                       reason="no photometry")
    results = {}
    for radius, (flux, err) in grid.items():
        flux = np.asarray(flux, np.float64)
        mask = np.ones(flux.shape[0], bool) if oot is None else np.asarray(oot, bool)
        if comparisons is not None:
            idx = np.asarray(comparisons, int)
            norm_err = np.asarray(err, np.float64)[:, idx] / np.median(flux[mask][:, idx], axis=0)
            w = 1.0 / np.median(norm_err[mask], axis=0) ** 2
            comps = Comparisons(indices=idx, weights=w / w.sum(), rejected={})
        else:
            comps = select_comparisons(flux, err, target, oot=oot, **selection)
        f, e = differential_flux(flux, err, target, comps, oot)
        results[float(radius)] = (point_to_point_scatter(f[mask]), f, e, comps)
    best = min(results, key=lambda r: (not np.isfinite(results[r][0]), results[r][0]))
    scatter, f, e, comps = results[best]
    return DifferentialLightCurve(flux=f, flux_err=e, comparisons=comps, aperture=best,
                                  scatter=scatter,
                                  scatter_by_aperture={r: v[0] for r, v in results.items()})
