"""Light-curve plots (PNG) with error bars, flagged points told apart, optional phase folding."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clinepipe.atomic_files import atomic_open


def point_times(rows: list[dict]) -> np.ndarray:
    """Each point's time (days): BJD_TDB, else JD UTC (the light curve's own time axis)."""
    return np.array([r["bjd_tdb"] if r.get("bjd_tdb") is not None else r["jd_mid"]
                     for r in rows], dtype=float)


def minimum_light_epoch(rows: list[dict]) -> float | None:
    """The time (days, as :func:`point_times`) of minimum light: the point faintest relative to
    the median of its own filter (so a red star's B points do not win by colour), among the
    unflagged points (a saturated or blended point is not the star's own minimum); None when
    there is no magnitude."""
    use = [r for r in rows if r.get("mag") is not None and not r.get("flags")] or \
          [r for r in rows if r.get("mag") is not None]
    if not use:
        return None
    mag = np.array([r["mag"] for r in use], dtype=float)
    filt = np.array([str(r.get("filter") or "") for r in use])
    names, inverse = np.unique(filt, return_inverse=True)
    medians = np.array([np.median(mag[inverse == i]) for i in range(names.size)])
    return float(point_times(use)[int(np.argmax(mag - medians[inverse]))])


def fold_phase(t, period: float, epoch: float) -> np.ndarray:
    """Phase in [0, 1) of times ``t`` (days) for ``period`` (days), 0 at ``epoch`` (days)."""
    return np.mod((np.asarray(t, dtype=float) - epoch) / period, 1.0)


def plot_lightcurve(rows: list[dict], out: Path, *, title: str = "", fold: float | None = None,
                    epoch: float | None = None, time_axis: str = "bjd") -> Path:
    """PNG of a light curve: error bars, one colour per filter, magnitudes increasing down;
    flagged measurements (``flags`` ≠ 0: saturated, at the edge, a bad pixel, blended) are
    open circles.

    ``time_axis`` is ``"bjd"`` (BJD_TDB − 2,450,000) or ``"date"``; ``fold`` a period in days
    for a phase-folded plot (two cycles shown), phase 0 at ``epoch`` (days, BJD_TDB like the
    points), else at :func:`minimum_light_epoch`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    colours = {"B": "tab:blue", "V": "tab:green", "R": "tab:red", "I": "tab:brown"}
    filters = sorted({r["filter"] for r in rows})
    if fold and epoch is None:
        epoch = minimum_light_epoch(rows)
    for filt in filters:
        sel = [r for r in rows if r["filter"] == filt and r["mag"] is not None]
        if not sel:
            continue
        t = np.array([r["bjd_tdb"] if r["bjd_tdb"] is not None else r["jd_mid"] for r in sel])
        mag = np.array([r["mag"] for r in sel])
        err = np.array([r["mag_err"] or 0.0 for r in sel])
        if fold:
            phase = fold_phase(t, fold, epoch)
            x = np.concatenate([phase, phase + 1])
            mag, err = np.tile(mag, 2), np.tile(err, 2)
        elif time_axis == "date":
            from astropy.time import Time

            x = Time(t, format="jd").to_datetime()
        else:
            x = t - 2450000.0
        colour = colours.get(filt)
        flagged = np.array([bool(r.get("flags")) for r in sel])
        if fold:
            flagged = np.tile(flagged, 2)
        x = np.asarray(x)
        if not flagged.all():
            ax.errorbar(x[~flagged], mag[~flagged], yerr=err[~flagged], fmt="o", ms=3, lw=0.8,
                        capsize=0, label=filt, color=colour)
        if flagged.any():  # saturated, at the edge, a bad pixel or blended: an open circle
            ax.errorbar(x[flagged], mag[flagged], yerr=err[flagged], fmt="o", ms=4, lw=0.8,
                        capsize=0, mfc="none", color=colour,
                        label=f"{filt} flagged ({int(flagged.sum())})")
    ax.invert_yaxis()
    if fold or time_axis != "date":  # whole dates, not "+1.111e4" offsets
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_ylabel("magnitude")
    ax.set_xlabel(f"phase (P = {fold:g} d, 0 at {epoch:.5f})" if fold else
                  ("date (UTC)" if time_axis == "date" else "BJD$_{TDB}$ − 2450000"))
    ax.set_title(title)
    if filters:
        ax.legend(title="filter")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_open(out, "wb") as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)
    return out


