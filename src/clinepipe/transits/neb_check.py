"""The nearby-eclipsing-binary (NEB) check of TESS follow-up: could a star near the target,
blended with it in TESS's 21-arcsec pixels, have made the transit TESS saw, and does our own
night rule it out?

The depth a neighbour would need. TESS measured a fractional depth ``d`` of the blended
light of the target (flux ``F_T``) and a neighbour (``F_N = F_T 10^(-0.4 dm)``, ``dm`` its
magnitude minus the target's). If the neighbour alone dims, by a fraction ``D`` of its own
flux, the blend loses ``D F_N``, so ``d = D F_N / (F_T + F_N)``, and

    D = d (1 + 10^(0.4 dm)).

``D`` cannot exceed 1 (a total eclipse), so only stars with ``dm <= 2.5 log10(1/d - 1)``
can cause the event; for a shallow ``d`` this is the familiar ``dm <= -2.5 log10(d)``
(``D ~ d 10^(0.4 dm)``, which neglects the neighbour's own light in the blend and is a
little smaller). Other stars within the radius are "too faint" to be the source.

The check on our light curve. Each neighbour's flux (measured in the smallest aperture of
the grid, which takes in least of the target's light) is divided by the target's comparison
ensemble (without the neighbour itself) and fitted with a line in airmass plus a trapezoid of
the predicted duration at the predicted mid-time, its ingress ``T14 k / (1 + k)`` with
``k = sqrt(depth)`` (a central transit): ``depth_seen``, its flat-bottom depth, with its error (the
least-squares error, widened by the ratio of the binned residual scatter to the white-noise
expectation when red noise makes it larger). ``rms_binned`` is the scatter of those
residuals in ``BIN_MINUTES`` bins. Verdicts, in order:

- ``too faint``: ``dm`` beyond the limit above (``D > 1``);
- ``flagged``: an eclipse of at least half the needed depth is seen at >= 3 sigma (a likely
  NEB: not cleared, and worth a look);
- ``cleared``: ``D >= 3 rms_binned`` (each bin would show the needed eclipse at 3 sigma) and
  it is not seen;
- ``not cleared``: the light curve is too noisy to see ``D``;
- ``not measured``: a star of the database within the radius that the night could not
  measure on every frame (near an edge), bright enough or of unknown brightness
  (:func:`unmeasured`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clinepipe.transits.differential import Comparisons, differential_flux

__all__ = ["BIN_MINUTES", "NEB_RADIUS_ARCSEC", "NebStar", "binned_rms", "eclipse_depth",
           "max_delta_mag", "neb_check", "needed_depth", "trapezoid",
           "unmeasured"]

#: TFOP's search radius around the target (arcsec)
NEB_RADIUS_ARCSEC = 150.0
#: bin width of the rms (min)
BIN_MINUTES = 10.0
#: an eclipse counts as seen at this significance, and cleared when the needed depth is this
#: many binned rms
SIGMA = 3.0
VERDICTS = ("cleared", "flagged", "not cleared", "not measured", "too faint")


@dataclass(frozen=True)
class NebStar:
    """One neighbour: ``column`` in the flux matrix, ``star_id``, position (deg), ``sep``
    (arcsec), ``delta_mag``, ``needed_depth`` (fraction of its own flux; > 1 impossible),
    ``rms_binned`` (fraction), ``depth_seen`` and ``depth_seen_err`` (fraction), ``verdict``."""

    column: int
    star_id: int
    ra: float
    dec: float
    sep: float
    delta_mag: float
    needed_depth: float
    rms_binned: float
    depth_seen: float
    depth_seen_err: float
    verdict: str


def needed_depth(depth: float, delta_mag) -> np.ndarray:
    """Depth (fraction of the neighbour's flux) a neighbour ``delta_mag`` fainter than the
    target needs to dim the blend by ``depth``: ``depth (1 + 10^(0.4 delta_mag))``."""
    return depth * (1.0 + 10.0 ** (0.4 * np.asarray(delta_mag, dtype=np.float64)))


def max_delta_mag(depth: float) -> float:
    """Faintest neighbour (mag fainter than the target) that can dim the blend by ``depth``
    with a total eclipse: ``2.5 log10(1/depth - 1)``."""
    return 2.5 * math.log10(1.0 / depth - 1.0)


def binned_rms(time, values, minutes: float = BIN_MINUTES) -> float:
    """Standard deviation of the means of ``values`` in bins of ``minutes`` (time in d);
    bins with fewer than 2 points are left out; NaN with fewer than 3 bins."""
    t, v = np.asarray(time, np.float64), np.asarray(values, np.float64)
    ok = np.isfinite(t) & np.isfinite(v)
    t, v = t[ok], v[ok]
    if t.size < 4:
        return float("nan")
    which = np.floor((t - t.min()) * 1440.0 / minutes).astype(np.int64)
    counts = np.bincount(which)
    means = np.bincount(which, weights=v) / np.maximum(counts, 1)
    means = means[counts >= 2]
    return float(np.std(means, ddof=1)) if means.size >= 3 else float("nan")


def trapezoid(time, tmid: float, duration: float, ingress: float) -> np.ndarray:
    """1 on the flat bottom, 0 outside ``duration`` (d) about ``tmid``, linear over the
    ``ingress`` (d) at either end."""
    edge = 0.5 * duration - np.abs(np.asarray(time, np.float64) - tmid)
    return np.clip(edge / max(ingress, 1e-9), 0.0, 1.0)


def eclipse_depth(time, flux, airmass, tmid: float, duration: float, ingress: float = 0.0):
    """Fit ``flux = c0 + c1 (airmass - mean) - depth * trapezoid`` (:func:`trapezoid`; d) by
    least squares. Returns (depth, depth_err, residuals); depth NaN when the eclipse holds
    fewer than 2 points or fewer than 3 lie outside it."""
    t, f = np.asarray(time, np.float64), np.asarray(flux, np.float64)
    x = np.asarray(airmass, np.float64)
    box = trapezoid(t, tmid, duration, ingress)
    ok = np.isfinite(f) & np.isfinite(x)
    nan = float("nan")
    if (box[ok] > 0).sum() < 2 or (box[ok] == 0).sum() < 3:
        return nan, nan, np.full(f.size, nan)
    a = np.column_stack([np.ones(f.size), x - x[ok].mean(), -box])
    coef, *_ = np.linalg.lstsq(a[ok], f[ok], rcond=None)
    resid = f - a @ coef
    sigma = float(np.std(resid[ok], ddof=3))
    cov = np.linalg.pinv(a[ok].T @ a[ok]) * sigma**2
    err = math.sqrt(cov[2, 2])
    # red noise: binned residuals scatter more than sigma / sqrt(points per bin)
    per_bin = max(BIN_MINUTES / 1440.0 / max(np.median(np.diff(np.sort(t[ok]))), 1e-6), 1.0)
    beta = binned_rms(t[ok], resid[ok]) / (sigma / math.sqrt(per_bin))
    if np.isfinite(beta) and beta > 1.0:
        err *= beta
    return float(coef[2]), err, resid


def _without(comparisons: Comparisons, column: int) -> Comparisons | None:
    keep = comparisons.indices != column
    if not keep.any():
        return None
    w = comparisons.weights[keep]
    return Comparisons(indices=comparisons.indices[keep], weights=w / w.sum())


def neb_check(time, flux, flux_err, airmass, *, comparisons: Comparisons, sep, delta_mag,
              star_ids, ra, dec, depth: float, tmid: float, duration: float, target: int = 0,
              radius: float = NEB_RADIUS_ARCSEC) -> list[NebStar]:
    """The NEB check of every star within ``radius`` of the target (see the module docstring).

    Parameters
    ----------
    time : array (n_frames,)
        BJD_TDB (d).
    flux, flux_err : array (n_frames, n_stars)
        Aperture fluxes (ADU); column ``target`` the target.
    airmass : array (n_frames,)
    comparisons : Comparisons
        The target's comparison ensemble.
    sep : array (n_stars,)
        Distance from the target (arcsec).
    delta_mag : array (n_stars,)
        Magnitude minus the target's (the band of the night).
    star_ids, ra, dec : arrays (n_stars,)
        Database ids and positions (deg), copied into the rows.
    depth : float
        The transit depth to explain (fraction of the blended flux), e.g. TESS's.
    tmid, duration : float
        Predicted mid-time (BJD_TDB, d) and first-to-fourth-contact duration (d).

    Returns
    -------
    list of NebStar
        By distance from the target.
    """
    t = np.asarray(time, np.float64)
    flux, err = np.asarray(flux, np.float64), np.asarray(flux_err, np.float64)
    sep, dm = np.asarray(sep, np.float64), np.asarray(delta_mag, np.float64)
    oot = np.abs(t - tmid) > 0.5 * duration
    limit = max_delta_mag(depth)
    ingress = duration * math.sqrt(depth) / (1.0 + math.sqrt(depth))
    need = needed_depth(depth, dm)
    rows = []
    for j in np.argsort(sep):
        if j == target or not sep[j] <= radius:
            continue
        d = e = rms = float("nan")
        comps = _without(comparisons, int(j))
        if comps is not None and dm[j] <= limit:
            ok = np.isfinite(flux[:, j]) & np.all(np.isfinite(flux[:, comps.indices]), axis=1)
            if (ok & oot).sum() >= 3:
                with np.errstate(invalid="ignore", divide="ignore"):
                    rel, _ = differential_flux(flux[ok], err[ok], int(j), comps, oot[ok])
                d, e, resid = eclipse_depth(t[ok], rel, np.asarray(airmass)[ok], tmid,
                                            duration, ingress)
                rms = binned_rms(t[ok], resid)
        if not dm[j] <= limit:
            verdict = "too faint"
        elif np.isfinite(d) and d >= SIGMA * e and d >= 0.5 * need[j]:
            verdict = "flagged"
        elif np.isfinite(rms) and need[j] >= SIGMA * rms:
            verdict = "cleared"
        else:
            verdict = "not cleared"
        rows.append(NebStar(column=int(j), star_id=int(star_ids[j]), ra=float(ra[j]),
                            dec=float(dec[j]), sep=float(sep[j]), delta_mag=float(dm[j]),
                            needed_depth=float(need[j]), rms_binned=rms, depth_seen=d,
                            depth_seen_err=e, verdict=verdict))
    return rows


def unmeasured(star_ids, ra, dec, sep, delta_mag, depth: float,
               radius: float = NEB_RADIUS_ARCSEC) -> list[NebStar]:
    """Rows for stars within ``radius`` (arcsec) that have no light curve: ``too faint``
    when ``delta_mag`` is beyond :func:`max_delta_mag`, else (brighter, or NaN: unknown)
    ``not measured``. ``column`` is -1."""
    limit, nan = max_delta_mag(depth), float("nan")
    return [NebStar(column=-1, star_id=int(i), ra=float(a), dec=float(d), sep=float(s),
                    delta_mag=float(m), needed_depth=float(needed_depth(depth, m)),
                    rms_binned=nan, depth_seen=nan, depth_seen_err=nan,
                    verdict="too faint" if m > limit else "not measured")
            for i, a, d, s, m in zip(star_ids, ra, dec, sep, delta_mag) if s <= radius]
