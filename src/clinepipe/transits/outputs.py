"""What a transit fit leaves in its folder: ``fit.json``, ``lightcurve.csv`` and a plot, each
written to a temporary file and renamed, so a reader never sees half a file; plus the arrays
the AAVSO Exoplanet Database report is made of."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clinepipe.atomic_files import atomic_write_bytes
from clinepipe.transits.fit import TransitFit

__all__ = [
    "BIN_MINUTES",
    "LIGHTCURVE_COLUMNS",
    "aavso_columns",
    "fit_record",
    "plot_transit",
    "read_transit_fits",
    "write_fit_json",
    "write_lightcurve_csv",
    "write_transit_outputs",
]

LIGHTCURVE_COLUMNS = ("bjd_tdb", "flux", "flux_err", "model", "detrended", "airmass")
#: width of the binned points on the plot (min)
BIN_MINUTES = 10.0


def _atomic_write(path: Path, data: bytes) -> Path:
    """``data`` written to ``path`` whole or not at all (:func:`atomic_write_bytes`, which
    makes the folder)."""
    atomic_write_bytes(path, (data,))
    return path


def _finite(value):
    """JSON has no NaN: None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fit_record(fit: TransitFit, *, planet: str, night: str, filter: str,
               comps: Sequence[int], aperture: float | None, extra: dict | None = None) -> dict:
    """The ``fit.json`` content: the keys the README lists under "Exoplanet transits" (``planet``, ``night``, ``filter``,
    ``tmid``, ``tmid_err`` BJD_TDB d; ``rprs``, ``rprs_err``, ``depth``, ``depth_err``;
    ``ars``, ``ars_err``; ``inc``, ``inc_err`` deg; ``duration`` d; ``rms_residual``
    fraction; ``n_points``; ``comps`` star ids; ``aperture`` px; ``detrend`` names;
    ``oc_minutes``) and the fit's other figures (O-C error, error scale, limb darkening,
    convergence) under their own names."""
    record = {
        "planet": planet, "night": night, "filter": filter,
        "tmid": fit.tmid, "tmid_err": fit.tmid_err,
        "rprs": fit.rprs, "rprs_err": fit.rprs_err, "depth": fit.depth,
        "depth_err": fit.depth_err, "ars": fit.ars, "ars_err": fit.ars_err,
        "inc": fit.inc, "inc_err": fit.inc_err, "duration": fit.duration,
        "rms_residual": fit.rms_residual, "n_points": fit.n_points,
        "comps": [int(c) for c in comps],
        "aperture": None if aperture is None else float(aperture),
        "detrend": list(fit.detrend), "oc_minutes": fit.oc_minutes,
        # beyond the contract
        "oc_err_minutes": fit.oc_err_minutes, "predicted_tmid": fit.predicted_tmid,
        "period": fit.period, "b": fit.b, "b_err": fit.b_err,
        "duration_err": fit.duration_err, "error_scale": fit.error_scale,
        "error_scale_err": fit.error_scale_err, "red_noise_beta": fit.red_noise_beta,
        "chi2_red": fit.chi2_red,
        "limb_darkening": {"law": "quadratic", "u1": fit.u[0], "u2": fit.u[1]},
        "exptime_s": fit.exptime_s, "detrend_coefficients": fit.detrend_coefficients,
        "mcmc": {"walkers": fit.n_walkers, "steps": fit.n_steps,
                 "autocorr_steps": fit.autocorr_steps, "converged": fit.converged},
    }
    record.update(extra or {})
    return {k: _finite(v) for k, v in record.items()}


def write_fit_json(path, record: dict) -> Path:
    """Write a :func:`fit_record` as indented JSON (atomically)."""
    return _atomic_write(Path(path), (json.dumps(record, indent=2) + "\n").encode("utf-8"))


def write_lightcurve_csv(path, fit: TransitFit) -> Path:
    """``bjd_tdb,flux,flux_err,model,detrended,airmass``: the normalised differential flux
    and its error, the transit model (the model of ``detrended``; the model of ``flux`` is
    ``model * flux / detrended``), the detrended flux and the airmass, one row per point."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LIGHTCURVE_COLUMNS)
    for row in zip(fit.time, fit.flux, fit.flux_err, fit.transit_model, fit.detrended,
                   fit.airmass):
        writer.writerow([f"{row[0]:.6f}"] + [f"{v:.6f}" for v in row[1:]])
    return _atomic_write(Path(path), buf.getvalue().encode("utf-8"))


def _binned(t, y, width_days):
    edges = np.arange(t.min(), t.max() + width_days, width_days)
    which = np.digitize(t, edges)
    groups = [np.flatnonzero(which == k) for k in np.unique(which)]
    groups = [g for g in groups if g.size >= 2]
    tb = np.array([t[g].mean() for g in groups])
    yb = np.array([y[g].mean() for g in groups])
    eb = np.array([y[g].std(ddof=1) / np.sqrt(g.size) for g in groups])
    return tb, yb, eb


def plot_transit(path, fit: TransitFit, title: str = "") -> Path:
    """PNG: raw flux with the full model (offset above), detrended flux with the transit model
    and 10-min bins, and the residuals; time in hours from the fitted mid-time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = (fit.time - fit.tmid) * 24.0
    offset = max(3.0 * fit.depth, 5.0 * fit.rms_residual, 0.01)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), dpi=110, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.plot(hours, fit.flux + offset, ".", color="0.6", ms=3, label="raw (offset)")
    top.plot(hours, fit.model + offset, "-", color="tab:orange", lw=1, label="transit x systematics")
    top.plot(hours, fit.detrended, ".", color="tab:blue", ms=3, alpha=0.5, label="detrended")
    tb, yb, eb = _binned(hours, fit.detrended, BIN_MINUTES / 60.0)
    top.errorbar(tb, yb, eb, fmt="o", color="navy", ms=4, label=f"{BIN_MINUTES:g}-min bins")
    top.plot(hours, fit.transit_model, "-", color="tab:red", lw=1.5, label="transit model")
    top.set_ylabel("relative flux")
    top.legend(fontsize=7, loc="lower left", ncol=2)
    top.set_title(title or f"Tmid {fit.tmid:.5f} ± {fit.tmid_err * 1440:.2f} min, "
                  f"Rp/Rs {fit.rprs:.4f} ± {fit.rprs_err:.4f}, O-C {fit.oc_minutes:+.2f} min",
                  fontsize=9)
    bottom.plot(hours, fit.residuals, ".", color="tab:blue", ms=3, alpha=0.5)
    tb, rb, rbe = _binned(hours, fit.residuals, BIN_MINUTES / 60.0)
    bottom.errorbar(tb, rb, rbe, fmt="o", color="navy", ms=4)
    bottom.axhline(0.0, color="tab:red", lw=1)
    bottom.set_ylabel(f"residual (rms {fit.rms_residual * 1000:.2f} ppt)")
    bottom.set_xlabel("hours from mid-transit")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return _atomic_write(Path(path), buf.getvalue())


def write_transit_outputs(out_dir, fit: TransitFit, *, planet: str, night: str, filter: str,
                          comps: Sequence[int], aperture: float | None,
                          extra: dict | None = None) -> dict[str, Path]:
    """Write ``fit.json``, ``lightcurve.csv`` and ``lightcurve.png`` into ``out_dir``
    (created); returns their paths by name."""
    out = Path(out_dir)
    record = fit_record(fit, planet=planet, night=night, filter=filter, comps=comps,
                        aperture=aperture, extra=extra)
    return {"fit.json": write_fit_json(out / "fit.json", record),
            "lightcurve.csv": write_lightcurve_csv(out / "lightcurve.csv", fit),
            "lightcurve.png": plot_transit(out / "lightcurve.png", fit,
                                           title=f"{planet}  {night}  {filter}")}


def aavso_columns(fit: TransitFit) -> dict[str, np.ndarray]:
    """The AAVSO Exoplanet report's data columns, raw (not detrended) values: ``DATE``
    (BJD_TDB), ``DIFF`` (normalised differential flux), ``ERR`` (its error), then one column
    per detrending vector in fit order (``AIRMASS`` first when airmass is used)."""
    columns = {"DATE": fit.time, "DIFF": fit.flux, "ERR": fit.flux_err}
    for name in fit.detrend:
        if name in ("airmass", "airmass_exp"):
            columns["AIRMASS"] = fit.airmass
        else:
            columns[name.upper()] = fit.vectors[name]
    return columns


def read_transit_fits(archive, night: str | None = None) -> list[dict]:
    """The fits the run wrote under ``archive/transits/<night>/<planet>/``, for one night
    (YYYYMMDD) or all: each ``fit.json`` as a dict with ``folder`` (its Path) and ``plot``
    (the PNG's Path, or None) added; by night, then planet. Unreadable files are skipped."""
    root = Path(archive) / "transits"
    pattern = f"{night}/*/fit.json" if night else "*/*/fit.json"
    records = []
    for path in sorted(root.glob(pattern)):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        png = path.parent / "lightcurve.png"
        record.update(folder=path.parent, plot=png if png.is_file() else None)
        records.append(record)
    return records
