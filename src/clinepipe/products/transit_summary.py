"""What a person reads of the transit fits: the fitted values as table rows, the O−C plot,
and the morning report's transit section. The web's transit pages use the same rows and plot
(:mod:`clinepipe.web.transits`), so the report and the dashboard never disagree.

The fits are read from where the run writes them, ``archive/transits/<night>/<planet>/``
(:func:`clinepipe.transits.outputs.read_transit_fits`): ``fit.json`` is the one record of a
fit; nothing about transits is kept in the database.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clinepipe.finite import finite_or_none
from clinepipe.transits.timing import OcSeries, oc_series

__all__ = ["FittedValue", "aperture_scatter", "comparison_rows", "fitted_values", "oc_plot_png",
           "report_section", "value_with_error"]

log = logging.getLogger("clinepipe")


@dataclass(frozen=True)
class FittedValue:
    """One row of the fitted-values table: ``key`` (the ``fit.json`` key), ``label``, the
    value and its 1-sigma error as text (``error`` empty when the fit gives none), ``unit``
    and a ``note`` (the same figure in another unit, or how it was obtained)."""

    key: str
    label: str
    value: str
    error: str
    unit: str
    note: str = ""


def value_with_error(value, error, scale: float = 1.0) -> tuple[str, str]:
    """``value`` and ``error`` (times ``scale``) as text, to the error's second significant
    digit (0.12034 ± 0.00412 → "0.1203", "0.0041"); "—" for a missing value, "" for a
    missing error (then four significant digits)."""
    v, e = finite_or_none(value), finite_or_none(error)
    if v is None:
        return "—", ""
    v *= scale
    if e is None or e <= 0:
        return f"{v:.4g}", ""
    e *= scale
    decimals = max(0, 1 - math.floor(math.log10(e)))
    return f"{v:.{decimals}f}", f"{e:.{decimals}f}"


def fitted_values(record: Mapping) -> list[FittedValue]:
    """The fitted values of a ``fit.json`` record with their errors: mid-time (BJD_TDB),
    O−C (min), Rp/Rs, depth (ppt), a/Rs, inclination (deg), impact parameter, duration (h),
    then the fit's quality (residual rms, error scale, red-noise β, points)."""
    r = record
    rows = []

    def row(key, label, unit, value, error=None, scale=1.0, note=""):
        v, e = value_with_error(value, error, scale)
        rows.append(FittedValue(key, label, v, e, unit, note))

    tmid_err_min = finite_or_none(r.get("tmid_err"))
    row("tmid", "Mid-transit time", "BJD_TDB", r.get("tmid"), r.get("tmid_err"),
        note="" if tmid_err_min is None else f"± {tmid_err_min * 1440:.2f} min")
    predicted = finite_or_none(r.get("predicted_tmid"))
    epoch = r.get("epoch")
    row("oc_minutes", "O−C", "min", r.get("oc_minutes"), r.get("oc_err_minutes"),
        note="" if predicted is None else
        f"against the predicted {predicted:.5f}" + ("" if epoch is None else f" (epoch {epoch})"))
    row("rprs", "Rp/Rs", "", r.get("rprs"), r.get("rprs_err"))
    row("depth", "Depth (Rp/Rs)²", "ppt", r.get("depth"), r.get("depth_err"), scale=1000.0)
    row("ars", "a/Rs", "", r.get("ars"), r.get("ars_err"))
    row("inc", "Inclination", "deg", r.get("inc"), r.get("inc_err"))
    row("b", "Impact parameter", "", r.get("b"), r.get("b_err"))
    row("duration", "Duration T14", "h", r.get("duration"), r.get("duration_err"), scale=24.0)
    row("rms_residual", "Residual rms", "ppt", r.get("rms_residual"), scale=1000.0,
        note=f"{r.get('n_points', '?')} points")
    row("error_scale", "Error scale", "", r.get("error_scale"), r.get("error_scale_err"),
        note="the per-point errors were multiplied by this")
    row("red_noise_beta", "Red-noise β", "", r.get("red_noise_beta"),
        note="errors widened by this for correlated noise")
    return rows


def comparison_rows(record: Mapping) -> list[tuple[int, float | None]]:
    """The comparison stars of a fit as (star id, weight) pairs, heaviest first."""
    comps = [int(c) for c in record.get("comps") or []]
    weights = list(record.get("comparison_weights") or [])
    weights = weights if len(weights) == len(comps) else [None] * len(comps)
    pairs = list(zip(comps, [finite_or_none(w) for w in weights]))
    return sorted(pairs, key=lambda p: -(p[1] or 0.0))


def aperture_scatter(record: Mapping) -> list[tuple[float, float]]:
    """The apertures tried (px) with their out-of-transit scatter (fraction), by radius."""
    pairs = []
    for radius, scatter in (record.get("aperture_scatter") or {}).items():
        try:
            pair = (float(radius), float(scatter))
        except (TypeError, ValueError):
            continue  # a hand-edited fit.json: the page shows what it can
        if all(map(math.isfinite, pair)):
            pairs.append(pair)
    return sorted(pairs)


def oc_plot_png(series: OcSeries, highlight: str | None = None) -> bytes:
    """PNG of O−C (min) against epoch with 1-sigma error bars; the night ``highlight``
    (YYYYMMDD) drawn in red; the refined linear ephemeris as a line when there is one."""
    # no pyplot: no global state (the web's requests run in threads)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7.5, 3.0), dpi=100)
    ax = fig.add_subplot()
    mark = series.nights == (highlight or "")
    ax.errorbar(series.epoch[~mark], series.oc_min[~mark], series.oc_err_min[~mark], fmt="o",
                color="tab:blue", ms=5, capsize=2, label="fitted mid-times")
    if mark.any():
        ax.errorbar(series.epoch[mark], series.oc_min[mark], series.oc_err_min[mark], fmt="o",
                    color="tab:red", ms=7, capsize=2, label=f"night {highlight}")
    ax.axhline(0.0, color="0.4", lw=1)
    ref = series.refined
    if ref is not None:
        eph = series.ephemeris
        lo, hi = float(series.epoch.min()), float(series.epoch.max())
        span = max(hi - lo, 1.0)
        e = [lo - 0.05 * span, hi + 0.05 * span]
        ax.plot(e, [((ref.t0 - eph.t0) + x * (ref.period - eph.period)) * 1440.0 for x in e],
                "--", color="tab:orange", lw=1, label="linear fit to these times")
    # epochs are whole transits: ticks at the observed ones while they are few
    epochs = sorted({int(e) for e in series.epoch})
    if len(epochs) <= 10:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("O−C (min)")
    ax.set_title(f"{series.planet}: O−C against P = {series.ephemeris.period:.6f} d, "
                 f"T0 = {series.ephemeris.t0:.5f}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _png_data(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _one_fit(record: Mapping, history: list[dict]) -> list[str]:
    esc = html.escape
    planet, night = str(record.get("planet", "")), str(record.get("night", ""))
    parts = [(f"<h3 data-planet='{esc(planet)}'>{esc(planet)} — filter "
             f"{esc(str(record.get('filter', '')))}</h3>")]
    plot = record.get("plot")
    if plot is not None and Path(plot).is_file():
        parts.append(f"<img alt='transit light curve of {esc(planet)} with the model' "
                     f"data-plot='transit' src='{_png_data(Path(plot).read_bytes())}'>")
    parts.append("<table class='transit-fit'><tr><th>quantity</th><th>value</th>"
                 "<th>± error</th><th>unit</th><th></th></tr>")
    for v in fitted_values(record):
        parts.append(f"<tr data-key='{esc(v.key)}'><td>{esc(v.label)}</td>"
                     f"<td class='num'>{esc(v.value)}</td><td class='num'>{esc(v.error)}</td>"
                     f"<td>{esc(v.unit)}</td><td class='sub'>{esc(v.note)}</td></tr>")
    parts.append("</table>")
    comps = comparison_rows(record)
    aperture = finite_or_none(record.get("aperture"))
    tried = ", ".join(f"{radius:g} px: {scatter * 1000:.2f} ppt"
                      for radius, scatter in aperture_scatter(record))
    parts.append(
        "<p>Comparison stars (id, weight): "
        + (", ".join(f"{c}" + ("" if w is None else f" ({w:.2f})") for c, w in comps) or "none")
        + f"; host star {esc(str(record.get('host_star_id', '—')))}.<br>"
        + "Aperture " + ("—" if aperture is None else f"{aperture:g} px")
        + (f", chosen by the lowest out-of-transit scatter ({tried})" if tried else "")
        + ". Detrending: " + esc(", ".join(record.get("detrend") or []) or "none") + ".</p>")
    ld = record.get("limb_darkening") or {}
    if ld:
        parts.append(f"<p class='sub'>Limb darkening (held fixed): u1 = "
                     f"{_fmt(ld.get('u1'))}, u2 = {_fmt(ld.get('u2'))} — "
                     f"{esc(str(record.get('limb_darkening_source', '')))}.</p>")
    series = oc_series(history, planet=planet)
    if series is not None and series.epoch.size >= 2:
        parts.append(f"<p>O−C of {esc(planet)} over {series.epoch.size} fitted nights "
                     f"(χ²<sub>red</sub> about the ephemeris {series.chi2_red:.2f}):</p>"
                     f"<img alt='O−C of {esc(planet)}' data-plot='oc' "
                     f"src='{_png_data(oc_plot_png(series, highlight=night))}'>")
    return parts


def _fmt(value, spec: str = ".3f") -> str:
    value = finite_or_none(value)
    return "—" if value is None else format(value, spec)


def report_section(archive, night: str | None) -> list[str]:
    """HTML for the morning report: every transit fitted for ``night`` (``archive/transits/
    <night>/*/fit.json``): the light curve with the model (the fit's own plot, embedded),
    the fitted values with errors, O−C against the ephemeris (and over all fitted nights of
    the planet), the comparison stars and the aperture chosen. Empty when nothing was
    fitted; never raises (a failure becomes a line in the report)."""
    from clinepipe.transits.outputs import read_transit_fits

    if archive is None or not night:
        return []
    try:
        fits = read_transit_fits(archive, night)
        if not fits:
            return []
        history = read_transit_fits(archive)
        parts = [("<h2>Transits</h2><p class='sub'>Fitted by the run into "
                 f"archive/transits/{html.escape(night)}/; times BJD_TDB, errors 1σ from the "
                 "MCMC.</p><div class='plots'>")]
        for record in fits:
            parts += _one_fit(record, history)
        parts.append("</div>")
        return parts
    except Exception:
        log.exception("the transit section of the report of night %s failed", night)
        return [("<h2>Transits</h2><p class='flag'>The transit section could not be made "
                "(see the log).</p>")]
