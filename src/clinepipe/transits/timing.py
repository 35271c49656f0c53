"""A planet's transit times over nights: observed − calculated (O−C) against one ephemeris,
and the linear ephemeris the fitted mid-times themselves give.

Each ``fit.json`` carries its own O−C (``oc_minutes``) against the ephemeris of
``transits.csv`` as it was that morning. Over several nights the table may have been updated,
so the O−C here is computed again against one reference: the ephemeris of the newest fit
(``predicted_tmid`` − ``epoch`` × ``period``, ``period``), which is the table's today. When
the table never changed, both agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["Ephemeris", "OcSeries", "fit_ephemeris", "oc_series"]

MINUTES_PER_DAY = 1440.0


@dataclass(frozen=True)
class Ephemeris:
    """A linear ephemeris T(E) = ``t0`` + E ``period`` (BJD_TDB, d) with 1-sigma errors (d;
    0 for a table's, which we take as given)."""

    t0: float
    period: float
    t0_err: float = 0.0
    period_err: float = 0.0


@dataclass(frozen=True)
class OcSeries:
    """One planet's fitted mid-times against :attr:`ephemeris`, oldest first.

    ``epoch`` (int), ``tmid`` and ``tmid_err`` (BJD_TDB, d), ``oc_min`` and ``oc_err_min``
    (observed − calculated, minutes) and ``nights`` (YYYYMMDD) are arrays of one length;
    ``chi2_red`` is the O−C's reduced chi-square about zero (about 1 when the ephemeris
    holds and the errors are honest; NaN without points); ``refined`` the weighted linear
    ephemeris of the fitted mid-times (None with fewer than two distinct epochs)."""

    planet: str
    ephemeris: Ephemeris
    epoch: np.ndarray
    tmid: np.ndarray
    tmid_err: np.ndarray
    oc_min: np.ndarray
    oc_err_min: np.ndarray
    nights: np.ndarray
    chi2_red: float
    refined: Ephemeris | None


def _reference(records: list[Mapping]) -> Ephemeris | None:
    """The newest record's ephemeris (its predicted mid-time moved back to epoch 0)."""
    for r in sorted(records, key=lambda r: str(r.get("night", "")), reverse=True):
        period, predicted, epoch = r.get("period"), r.get("predicted_tmid"), r.get("epoch")
        if period and predicted is not None and epoch is not None:
            return Ephemeris(t0=float(predicted) - int(epoch) * float(period),
                             period=float(period))
    return None


def fit_ephemeris(epoch, tmid, tmid_err) -> Ephemeris | None:
    """Weighted least-squares T = t0 + E P over fitted mid-times (BJD_TDB, d).

    Parameters
    ----------
    epoch : array of int
        Transit numbers.
    tmid, tmid_err : arrays
        Mid-times and their 1-sigma errors (d).

    Returns
    -------
    Ephemeris or None
        ``t0`` at epoch 0, ``period`` (d) and their errors from the weights, widened by
        sqrt(chi2_red) when the scatter exceeds the errors (three or more epochs); None with
        fewer than two distinct epochs or a non-positive error.
    """
    e = np.asarray(epoch, dtype=np.float64)
    t = np.asarray(tmid, dtype=np.float64)
    s = np.asarray(tmid_err, dtype=np.float64)
    if np.unique(e).size < 2 or not np.all(np.isfinite(s) & (s > 0)):
        return None
    design = np.column_stack([np.ones_like(e), e]) / s[:, None]
    (t0, period), *_ = np.linalg.lstsq(design, t / s, rcond=None)
    cov = np.linalg.inv(design.T @ design)
    dof = e.size - 2
    if dof > 0:
        chi2 = float(np.sum(((t - t0 - period * e) / s) ** 2)) / dof
        cov *= max(chi2, 1.0)  # never narrower than the errors alone say
    return Ephemeris(t0=float(t0), period=float(period), t0_err=float(math.sqrt(cov[0, 0])),
                     period_err=float(math.sqrt(cov[1, 1])))


def oc_series(records: Iterable[Mapping], planet: str | None = None,
              ephemeris: Ephemeris | None = None) -> OcSeries | None:
    """O−C of one planet's fits (``fit.json`` records) against one ephemeris.

    Parameters
    ----------
    records : iterable of mapping
        ``fit.json`` contents (keys ``planet``, ``night``, ``tmid``, ``tmid_err``, ``period``,
        ``predicted_tmid``, ``epoch``); records of other planets, or without a mid-time or
        its error, are left out.
    planet : str, optional
        The planet (``fit.json`` ``planet``); default: that of the first record.
    ephemeris : Ephemeris, optional
        The reference; default: the newest record's (see the module notes).

    Returns
    -------
    OcSeries or None
        None when no record has what an O−C needs.
    """
    records = list(records)
    if planet is None and records:
        planet = records[0].get("planet")
    mine = [r for r in records if r.get("planet") == planet
            and r.get("tmid") is not None and r.get("tmid_err") is not None]
    ephemeris = ephemeris or _reference(mine)
    if not mine or ephemeris is None:
        return None
    mine.sort(key=lambda r: float(r["tmid"]))
    tmid = np.array([float(r["tmid"]) for r in mine])
    err = np.array([float(r["tmid_err"]) for r in mine])
    epoch = np.rint((tmid - ephemeris.t0) / ephemeris.period).astype(np.int64)
    oc = (tmid - (ephemeris.t0 + epoch * ephemeris.period)) * MINUTES_PER_DAY
    oc_err = err * MINUTES_PER_DAY
    good = oc_err > 0
    chi2 = float(np.mean((oc[good] / oc_err[good]) ** 2)) if good.any() else float("nan")
    return OcSeries(planet=str(planet), ephemeris=ephemeris, epoch=epoch, tmid=tmid,
                    tmid_err=err, oc_min=oc, oc_err_min=oc_err,
                    nights=np.array([str(r.get("night", "")) for r in mine]),
                    chi2_red=chi2, refined=fit_ephemeris(epoch, tmid, err))
