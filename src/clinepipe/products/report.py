"""The morning report: one self-contained HTML page per night (plots embedded as PNG data).

Zero point, FWHM and sky against time per filter with the QC-flagged frames highlighted,
frames per state, every failure with its reason, the night's most variable stars, and the
transits fitted for the night (light curve with the model, fitted values, O−C). When the
database holds several telescopes, the tables name each frame's telescope and the plots draw
one series per telescope and filter.
Nothing is fetched from outside: the page opens from a USB stick on a laptop with no network.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from clinepipe import __version__
from clinepipe.atomic_files import atomic_write_text
from clinepipe.store.models import Frame, Measurement, Star, ZeroPoint

__all__ = ["write_report", "latest_night"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2330;background:#fbfbfd;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #dde;padding-bottom:.2rem}
.sub{color:#667}table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .7rem;
border-bottom:1px solid #e4e6ee;text-align:left}th{background:#eef0f6}
.num{text-align:right;font-variant-numeric:tabular-nums}.flag{color:#b3261e;font-weight:600}
.plots img{max-width:100%;border:1px solid #e4e6ee;background:white;margin:.4rem 0}
.ok{color:#1b7f3b}
"""


def latest_night(session) -> str | None:
    """The latest observing night (``YYYYMMDD``) with a light in the database, None when there
    is none; ``session`` is an open SQLAlchemy session."""
    return session.scalar(select(func.max(Frame.night)).where(Frame.kind == "light"))


def write_report(engine, night: str | None, output_dir: Path, targets=(),
                 archive: Path | None = None, mapper=None) -> Path:
    """Write ``output_dir/index.html`` for ``night`` (default: the latest night with lights);
    ``targets`` (``[aavso] targets``) get their light curves of the night and the last 30 days;
    with the ``archive`` folder, the transits fitted for the night get a section
    (:func:`clinepipe.products.transit_summary.report_section`). ``mapper``: draws the plots
    (see :class:`~clinepipe.products.plot_batch.PlotBatch`)."""
    from types import SimpleNamespace

    from clinepipe.products.plot_batch import PlotBatch
    from clinepipe.store.db import session_scope
    from clinepipe.store.measurement_rows import several_telescopes

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with session_scope(engine) as s:
        night = night or latest_night(s)
        multi = several_telescopes(s)
        frames = s.execute(
            select(Frame.raw_path, Frame.kind, Frame.filter, Frame.state, Frame.stage, Frame.reason,
                   Frame.jd_mid, Frame.fwhm, Frame.sky, Frame.qc, ZeroPoint.value, ZeroPoint.error,
                   Frame.n_stars, Frame.airmass, Frame.telescope)
            .outerjoin(ZeroPoint, ZeroPoint.frame_id == Frame.id)
            .where(Frame.night == night)
            .order_by(Frame.jd_mid, Frame.telescope, Frame.raw_path)).all()
        variables = _night_variables(s, night)
        # a colour term belongs to one telescope's optics and camera (fitted per telescope)
        colour_terms = s.execute(
            select(Frame.telescope, Frame.filter, ZeroPoint.catalog_band,
                   func.max(ZeroPoint.color_term), func.count(ZeroPoint.id))
            .join(ZeroPoint, ZeroPoint.frame_id == Frame.id)
            .where(Frame.night == night)
            .group_by(Frame.telescope, Frame.filter, ZeroPoint.catalog_band)
            .order_by(Frame.telescope, Frame.filter)).all()
    lights = [f for f in frames if f.kind == "light" and f.jd_mid is not None]
    states: dict[str, int] = {}
    for f in frames:
        states[f.state] = states.get(f.state, 0) + 1
    failures = [f for f in frames if f.state in ("failed", "waiting", "rejected", "duplicate",
                                                 "measured") and f.reason]
    flagged = [f for f in lights if f.qc]

    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>clinepipe — night {html.escape(str(night))}</title><style>{_CSS}</style></head><body>",
             f"<h1>Night {html.escape(str(night))}</h1>",
             f"<p class='sub'>{len(frames)} frames, {len(lights)} lights, "
             f"{len(flagged)} flagged by quality control, {len(failures)} not fully processed"
             + (f"; telescopes {html.escape(', '.join(sorted({f.telescope for f in frames})))}"
                if multi else "")
             + f". clinepipe {html.escape(__version__)}.</p>"]
    parts.append("<h2>Frames per state</h2><table><tr><th>state</th><th>frames</th></tr>")
    parts += [f"<tr><td>{html.escape(k)}</td><td class='num'>{v}</td></tr>"
              for k, v in sorted(states.items())]
    parts.append("</table>")
    parts.append("<h2>Observing conditions</h2><div class='plots'>")
    plots = PlotBatch(mapper)
    if lights:
        points = [SimpleNamespace(**f._asdict()) for f in lights]  # to a worker process
        for title, column, unit, invert in (("Zero point", "value", "mag", False),
                                            ("FWHM", "fwhm", "pixels", False),
                                            ("Sky", "sky", "ADU / pixel", False)):
            png = plots.add(_plot, points, column, title, unit, invert, multi)
            parts.append(f"<img alt='{title} against time' data-plot='{column}' "
                         f"src='data:image/png;base64,{png}'>")
    else:
        parts.append("<p>No light frames this night.</p>")
    parts.append("</div>")
    if colour_terms:
        parts.append("<h2>Colour terms</h2><p class='sub'>Residual (catalog − calibrated) per "
                     "magnitude of catalog colour, fitted over the night's ensemble stars; "
                     f"reported, not applied.</p><table><tr>{_tel_th(multi)}<th>filter</th>"
                     "<th>catalog band</th><th>colour term</th><th>frames</th></tr>")
        for tel, filt, band, term, n in colour_terms:
            parts.append(f"<tr>{_tel_td(tel, multi)}<td>{html.escape(filt or '')}</td>"
                         f"<td>{html.escape(band or '')}</td>"
                         f"<td class='num'>{'not fitted' if term is None else format(term, '+.4f')}</td>"
                         f"<td class='num'>{n}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Flagged frames</h2>")
    if flagged:
        parts.append(f"<table><tr>{_tel_th(multi)}<th>frame</th><th>filter</th><th>flags</th>"
                     "<th>zero point</th><th>FWHM</th><th>sky</th><th>stars</th></tr>")
        for f in flagged:
            parts.append(f"<tr>{_tel_td(f.telescope, multi)}<td>{html.escape(f.raw_path)}</td>"
                         f"<td>{html.escape(f.filter or '')}</td>"
                         f"<td class='flag'>{html.escape(f.qc)}</td><td class='num'>{_fmt(f.value, '.3f')}</td>"
                         f"<td class='num'>{_fmt(f.fwhm, '.2f')}</td><td class='num'>{_fmt(f.sky, '.0f')}</td>"
                         f"<td class='num'>{_fmt(f.n_stars, 'd')}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p class='ok'>No frame flagged.</p>")
    parts.append("<h2>Files not fully processed</h2>")
    if failures:
        parts.append(f"<table><tr>{_tel_th(multi)}<th>file</th><th>state</th><th>stage</th>"
                     "<th>reason</th></tr>")
        for f in failures:
            parts.append(f"<tr>{_tel_td(f.telescope, multi)}<td>{html.escape(f.raw_path)}</td>"
                         f"<td>{html.escape(f.state)}</td>"
                         f"<td>{html.escape(f.stage or '')}</td><td>{html.escape(f.reason)}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p class='ok'>Every file was processed.</p>")
    parts.append("<h2>Most variable stars tonight</h2>")
    if variables:
        parts.append("<table><tr><th>star</th><th>name</th><th>filter</th><th>points</th>"
                     "<th>mean mag</th><th>rms</th><th>χ²<sub>red</sub></th></tr>")
        for v in variables:
            parts.append(f"<tr><td>{v['star_id']}</td><td>{html.escape(v['name'] or '')}</td>"
                         f"<td>{html.escape(v['filter'])}</td><td class='num'>{v['n']}</td>"
                         f"<td class='num'>{v['mean']:.3f}</td><td class='num'>{v['rms']:.3f}</td>"
                         f"<td class='num'>{v['chi2']:.1f}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>Not enough calibrated measurements for a variability ranking.</p>")
    from clinepipe.products.aavso import report_sections

    parts += report_sections(engine, night, targets, plots=plots)
    from clinepipe.products.transit_summary import report_section

    parts += report_section(archive, night)
    parts.append("</body></html>")
    out = output_dir / "index.html"
    atomic_write_text(out, plots.fill("\n".join(parts)))
    return out


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _tel_th(multi: bool) -> str:
    """The telescope column's header cell: only when the database has several telescopes."""
    return "<th>telescope</th>" if multi else ""


def _tel_td(telescope: str, multi: bool) -> str:
    return f"<td>{html.escape(telescope)}</td>" if multi else ""


def _plot(lights, column: str, title: str, unit: str, invert: bool, multi: bool = False) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.time import Time

    fig, ax = plt.subplots(figsize=(9, 2.8), dpi=100)
    colours = {"B": "tab:blue", "V": "tab:green", "R": "tab:red", "I": "tab:brown"}
    markers = "osD^v<>"
    telescopes = sorted({f.telescope for f in lights}) if multi else [None]
    filters = sorted({f.filter or "" for f in lights})
    for tel, filt in ((tel, filt) for tel in telescopes for filt in filters):
        # one series per telescope and filter: two instruments' zero points never join up
        sel = [f for f in lights if (f.filter or "") == filt and getattr(f, column) is not None
               and (tel is None or f.telescope == tel)]
        if not sel:
            continue
        t = Time([f.jd_mid for f in sel], format="jd").to_datetime()
        y = np.array([getattr(f, column) for f in sel], dtype=float)
        bad = np.array([bool(f.qc) for f in sel])
        label = filt or "none"
        marker = "o"
        if tel is not None:
            label = f"{tel or '(unnamed)'} {label}"
            marker = markers[telescopes.index(tel) % len(markers)]
        ax.plot(t, y, marker + "-", ms=3, lw=0.6, color=colours.get(filt), label=label)
        if bad.any():
            ax.plot(np.array(t)[bad], y[bad], "o", ms=9, mfc="none", mec="crimson", mew=1.5)
    ax.set_title(f"{title} ({unit}); red circles: flagged frames", fontsize=10)
    ax.set_xlabel("UTC")
    if invert:
        ax.invert_yaxis()
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    else:  # no frame has this value yet (all waiting or failed): say so; a legend would warn
        ax.text(0.5, 0.5, "no frame has a value yet", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
    fig.autofmt_xdate(bottom=0.3)
    # fixed margins that fit the rotated times: tight_layout would draw the figure once more
    # only to measure it (a third of each plot's time)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _night_variables(session, night: str, top: int = 10) -> list[dict]:
    """The night's ``top`` most variable stars by reduced chi-square (frames with any QC flag
    left out), computed as ``clinepipe variables`` does, with at least 5 points per filter."""
    from clinepipe.variability.statistics import lightcurve_statistics

    rows = session.execute(
        select(Measurement.star_id, Star.name, Measurement.filter, Frame.jd_mid, Measurement.mag,
               Measurement.mag_err)
        .join(Frame, Frame.id == Measurement.frame_id).join(Star, Star.id == Measurement.star_id)
        .where(Frame.night == night, Measurement.mag.is_not(None), Measurement.flags == 0,
               Frame.qc == "")
        .order_by(Measurement.star_id, Measurement.filter)).all()
    if not rows:
        return []
    names = {r[0]: r[1] for r in rows}
    res = lightcurve_statistics([r[0] for r in rows], [r[2] for r in rows],
                                [r[3] for r in rows], [r[4] for r in rows],
                                [r[5] for r in rows], min_points=5, find_periods=False)
    g = res.groups
    out = [{"star_id": sid, "name": names[sid], "filter": f, "n": n, "mean": mean, "rms": rms,
            "chi2": chi2}
           for sid, f, n, mean, rms, chi2 in zip(g.labels[0].tolist(), g.labels[1].tolist(),
                                                 g.n.tolist(), g.mean_mag.tolist(),
                                                 g.rms.tolist(), g.chi2_red.tolist())]
    out.sort(key=lambda r: -r["chi2"])
    return out[:top]
