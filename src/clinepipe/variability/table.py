"""The variability table: per star and filter, n, rms, reduced chi-squared, period and its false-alarm probability."""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np
from sqlalchemy import select
from clinepipe.store.models import Frame, Measurement, Star


def _isolated_outliers(star, filt, t, mag, err, nsigma: float = 5.0) -> np.ndarray:
    """Single points far off while the star's neighbouring exposures in time (any filter)
    agree with it: a cosmic ray or a satellite in the aperture, not variability, since an
    eclipse or a flare lasts several exposures."""
    z = np.zeros(mag.size)
    groups = np.char.add(star.astype(str), np.char.add("|", filt.astype(str)))
    for g in np.unique(groups):
        sel = groups == g
        med = np.median(mag[sel])
        scatter = 1.4826 * np.median(np.abs(mag[sel] - med))
        z[sel] = np.abs(mag[sel] - med) / np.sqrt(err[sel] ** 2 + scatter ** 2)
    outlier = np.zeros(mag.size, dtype=bool)
    for sid in np.unique(star):
        idx = np.flatnonzero(star == sid)
        idx = idx[np.argsort(t[idx], kind="stable")]
        zz = z[idx]
        calm_before = np.concatenate([[True], zz[:-1] < nsigma / 2])
        calm_after = np.concatenate([zz[1:] < nsigma / 2, [True]])
        outlier[idx] = (zz > nsigma) & calm_before & calm_after
    return outlier


@dataclass(frozen=True)
class VariabilityRow:
    star_id: int
    name: str | None
    filter: str
    n: int
    mean_mag: float
    rms: float
    chi2_red: float
    stetson_j: float
    period_days: float | None
    fap: float | None


def variability_table(engine, *, min_points: int = 10, exclude_qc=("clouds", "trailed"),
                      min_period: float = 0.02, max_period: float = 10.0) -> list[VariabilityRow]:
    """Every star with enough calibrated points, ranked by reduced chi-square (most variable first).

    Frames whose QC flags include ``exclude_qc`` are left out. The Lomb–Scargle period is
    searched between ``min_period`` and ``max_period`` days (limited by the time span).
    """
    from clinepipe.variability.periods import find_period
    from clinepipe.store.db import session_scope

    with session_scope(engine) as s:
        rows = s.execute(select(Measurement.star_id, Measurement.filter, Measurement.bjd_tdb,
                                Measurement.jd_mid, Measurement.mag, Measurement.mag_err,
                                Frame.qc, Star.name)
                         .join(Frame, Frame.id == Measurement.frame_id)
                         .join(Star, Star.id == Measurement.star_id)
                         .where(Measurement.mag.is_not(None), Measurement.flags == 0)
                         .order_by(Measurement.star_id, Measurement.filter, Measurement.jd_mid)).all()
    if not rows:
        return []
    excluded = set(exclude_qc)
    keep = [r for r in rows if not (excluded & set(filter(None, (r[6] or "").split(";"))))]
    star = np.array([r[0] for r in keep])
    filt = np.array([r[1] for r in keep])
    t = np.array([r[2] if r[2] is not None else r[3] for r in keep])
    mag = np.array([r[4] for r in keep])
    err = np.array([max(r[5] or 0.0, 1e-4) for r in keep])
    names = {r[0]: r[7] for r in keep}
    outlier = _isolated_outliers(star, filt, t, mag, err)
    out = []
    keys = np.char.add(star.astype(str), np.char.add("|", filt.astype(str)))
    _, starts, counts = np.unique(keys, return_index=True, return_counts=True)
    stats = {}
    for start, count in zip(starts, counts):
        if count < min_points:
            continue
        sl = slice(start, start + count)
        keep = ~outlier[sl]
        mm, ee = mag[sl][keep], err[sl][keep]
        count = int(keep.sum())
        if count < min_points:
            continue
        w = 1 / ee ** 2
        mean = float(np.sum(w * mm) / np.sum(w))
        resid = mm - mean
        chi2 = float(np.sum((resid / ee) ** 2) / (count - 1))
        delta = np.sqrt(count / (count - 1)) * resid / ee
        pk = delta[:-1] * delta[1:]  # Stetson J from consecutive pairs
        stetson = float(np.mean(np.sign(pk) * np.sqrt(np.abs(pk))))
        stats[(int(star[start]), str(filt[start]))] = (sl, keep, mean, float(np.std(mm, ddof=1)),
                                                       chi2, stetson)
    # one period per star from all its filters together (each filter's mean removed)
    periods = {}
    for sid in sorted({k[0] for k in stats}):
        parts = [(sl, keep, mean) for (s_, _), (sl, keep, mean, *_r) in stats.items() if s_ == sid]
        tt = np.concatenate([t[sl][k] for sl, k, _ in parts])
        yy = np.concatenate([mag[sl][k] - mean for sl, k, mean in parts])
        ee = np.concatenate([err[sl][k] for sl, k, _ in parts])
        chi2_best = max(stats[k][4] for k in stats if k[0] == sid)
        # periods only for stars that vary: a search on noise costs time and means nothing
        periods[sid] = (find_period(tt, yy, ee, min_period=min_period, max_period=max_period)
                        if chi2_best > 3.0 else None)
    for (sid, f), (sl, keep, mean, rms, chi2, stetson) in stats.items():
        p = periods.get(sid)
        out.append(VariabilityRow(sid, names.get(sid), f, int(keep.sum()), mean, rms, chi2,
                                  stetson, p.period if p else None, p.fap if p else None))
    out.sort(key=lambda r: -r.chi2_red)
    return out


