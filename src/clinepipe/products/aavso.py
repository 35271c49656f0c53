"""The nightly AAVSO files of the configured targets, their check stars, and the report's target sections."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import aliased

from clinepipe.catalogs.vsp_sequence import sequence_for
from clinepipe.config import Config
from clinepipe.errors import ClinepipeError
from clinepipe.products.aavso_rules import aavso_filter_code, obscode_problem
from clinepipe.store.models import CatalogMatch, Frame, Measurement, Star, ZeroPoint

log = logging.getLogger("clinepipe")
from clinepipe.store.queries import nights_of_runs
from clinepipe.variability.statistics import group_statistics
from clinepipe.variability.suspects import SUSPECTED, _qc_bad, _session

#: check-star rule (see the module docstring)
CHECK_MIN_COVERAGE = 0.8      # measured on this fraction of the target's frames

CHECK_MIN_ENSEMBLE = 0.5      # in the ensemble on this fraction of those

CHECK_MAX_CHI2 = 2.0          # reduced chi-square within nights, every filter

CHECK_MAX_TRIED = 25          # candidates tested for constancy, in ranking order



#: colour indices tried in this order for the check star
COLOUR_PAIRS = (("B", "V"), ("V", "R"), ("V", "I"), ("g", "r"), ("r", "i"), ("BP", "RP"),
                ("Bmag", "Vmag"))

def _catalog_mags(text: str | None) -> dict[str, tuple[float, float | None]]:
    """``catalog_matches.mags`` JSON → {band: (mag, err)} with finite magnitudes only."""
    try:
        raw = json.loads(text or "{}")
    except ValueError:
        return {}
    out = {}
    for band, value in raw.items():
        if isinstance(value, (list, tuple)):
            mag = value[0] if value else None
            err = value[1] if len(value) > 1 else None
        else:
            mag, err = value, None
        if isinstance(mag, (int, float)) and math.isfinite(mag):
            out[band] = (float(mag), float(err) if isinstance(err, (int, float))
                         and math.isfinite(err) else None)
    return out


def _within_night_chi2(rows) -> dict[str, float]:
    """{filter: reduced chi-square about each night's weighted mean} from
    (filter, night, mag, err) rows: the chi-squares of the nights pooled over their degrees
    of freedom, so a star's night-to-night changes do not count, only its changes within a
    night."""
    if not rows:
        return {}
    filt = np.array([r[0] for r in rows], dtype=str)
    night = np.array([r[1] or "" for r in rows], dtype=str)
    mag = np.array([r[2] for r in rows], dtype=float)
    err = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=float)
    g = group_statistics((filt, night), np.zeros(mag.size), mag, err, min_points=2)
    total: dict[str, list] = {}
    for f, chi2, n in zip(g.labels[0].tolist(), g.chi2_red.tolist(), g.n.tolist()):
        acc = total.setdefault(f, [0.0, 0])
        acc[0] += chi2 * (n - 1)
        acc[1] += n - 1
    return {f: s / n for f, (s, n) in total.items() if n > 0}


def choose_check_star(engine, target_id: int, *, exclude_qc=("clouds", "trailed")) -> int | None:
    """The check star of ``target_id`` by the rule of the module docstring, or None when no
    star qualifies."""
    M, F = Measurement, Frame
    Mt = aliased(Measurement)
    excluded = set(exclude_qc)
    good_t = and_(Mt.star_id == int(target_id), Mt.mag.is_not(None), Mt.flags == 0)
    with _session(engine) as s:
        target = s.get(Star, int(target_id))
        if target is None:
            return None
        n_target = s.scalar(select(func.count()).select_from(Mt).where(good_t)) or 0
        if n_target == 0:
            return None
        bands = sorted({b for (b,) in s.execute(
            select(ZeroPoint.catalog_band).distinct()
            .join(Mt, Mt.frame_id == ZeroPoint.frame_id).where(good_t)).all() if b})
        band_of_filter = dict(s.execute(
            select(ZeroPoint.filter, ZeroPoint.catalog_band).distinct()
            .join(Mt, Mt.frame_id == ZeroPoint.frame_id).where(good_t)).all())
        co = (select(M.star_id.label("sid"), func.count().label("n"),
                     func.sum(case((M.in_ensemble.is_(True), 1), else_=0)).label("n_ens"))
              .join(Mt, and_(Mt.frame_id == M.frame_id, good_t))
              .where(M.star_id != int(target_id), M.mag.is_not(None), M.flags == 0)
              .group_by(M.star_id).subquery())
        cands = s.execute(
            select(Star.id, co.c.n, co.c.n_ens, CatalogMatch.mags)
            .join(co, co.c.sid == Star.id).join(CatalogMatch, CatalogMatch.star_id == Star.id)
            .where(Star.name.is_(None), Star.var_type.is_(None),
                   co.c.n >= CHECK_MIN_COVERAGE * n_target)
            .order_by(Star.id)).all()
        t_cat = _catalog_mags(s.scalar(select(CatalogMatch.mags).where(
            CatalogMatch.star_id == int(target_id)).order_by(CatalogMatch.id)))
        # a target without catalog values: its median calibrated magnitude per band
        if not all(b in t_cat for b in bands):
            for f, b in band_of_filter.items():
                if b in t_cat:
                    continue
                mags = s.scalars(select(Mt.mag).where(good_t, Mt.filter == f)).all()
                if mags:
                    t_cat[b] = (float(np.median(mags)), None)
    if not bands:
        return None
    main = "V" if "V" in bands else bands[0]
    if main not in t_cat:
        return None
    ranked = []
    for sid, n, n_ens, mags_json in cands:
        if (n_ens or 0) < CHECK_MIN_ENSEMBLE * n:
            continue
        mags = _catalog_mags(mags_json)
        if not all(b in mags for b in bands):
            continue
        score = abs(mags[main][0] - t_cat[main][0])
        for a, b in COLOUR_PAIRS:
            if a in t_cat and b in t_cat and a in mags and b in mags:
                score += abs((mags[a][0] - mags[b][0]) - (t_cat[a][0] - t_cat[b][0]))
                break
        ranked.append((round(score, 6), int(sid)))
    ranked.sort()
    for _, sid in ranked[:CHECK_MAX_TRIED]:
        with _session(engine) as s:
            rows = s.execute(select(M.filter, F.night, M.mag, M.mag_err, F.qc)
                             .join(F, F.id == M.frame_id)
                             .where(M.star_id == sid, M.mag.is_not(None), M.flags == 0)).all()
        chi2 = _within_night_chi2([r[:4] for r in rows if not _qc_bad(r[4], excluded)])
        if chi2 and max(chi2.values()) < CHECK_MAX_CHI2:
            return sid
    return None


def sanitise_name(text: str) -> str:
    """A file name from a target name: letters, digits, ``.``, ``_``, ``+``, ``-``."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text).strip()).strip("._")
    return name or "target"


def resolve_targets(engine, targets, *, quiet: bool = False) -> list[tuple[str, int]]:
    """``[(target text, star id)]`` for the configured targets that match a star (a name, catalog
    id, star id or ``"RA DEC"``); the others are logged (once per call) and left out."""
    from clinepipe.store.queries import resolve_star

    out = []
    for spec in targets or ():
        try:
            with _session(engine) as s:
                out.append((spec, resolve_star(s, str(spec))))
        except ClinepipeError:
            if not quiet:
                log.warning("AAVSO target %r matches no star in the database yet; skipped", spec)
    return out


def _night_frames(cfg: Config, engine, night: str) -> list[tuple[int, str]]:
    """(frame id, filter) of the night's calibrated lights, QC-excluded frames left out."""
    excluded = set(cfg.qc.exclude_from_variability)
    with _session(engine) as s:
        rows = s.execute(select(Frame.id, Frame.filter, Frame.qc).where(
            Frame.night == night, Frame.kind == "light", Frame.state == "calibrated")
            .order_by(Frame.id)).all()
    return [(r[0], r[1]) for r in rows if not _qc_bad(r[2], excluded)]


def no_obscode_warning(cfg: Config) -> str | None:
    """The one sentence said (run summary, log) when ``[aavso] targets`` are configured but
    there is no usable observer code, so no AAVSO file is written; None otherwise."""
    if not cfg.aavso.targets:
        return None
    why = obscode_problem(cfg.aavso.obscode)
    if why is None:
        return None
    where = cfg.source_file or "the configuration"
    return (f"no AAVSO files written: [aavso] obscode is {why}; set it to the observer code "
            f"AAVSO assigned you in {where}.")


def write_night_aavso(cfg: Config, engine, night: str, *, resolved=None,
                      check_stars: dict | None = None) -> list[Path]:
    """One AAVSO Extended Format file per target measured on ``night``:
    ``archive/aavso/<night>/<target>.txt``, validated before it is written (see
    :func:`clinepipe.products.export.export_aavso`); returns the files written. Nothing is written
    without a usable observer code. ``resolved`` (from :func:`resolve_targets`) and
    ``check_stars`` ({star id: check star id}) save the look-ups when several nights are
    written; by default they are made here."""
    from clinepipe import __version__
    from clinepipe.products.export import describe_left_out, export_aavso

    if obscode_problem(cfg.aavso.obscode) is not None:
        return []
    if resolved is None:
        resolved = resolve_targets(engine, cfg.aavso.targets)
    if not resolved:
        return []
    frames = _night_frames(cfg, engine, night)
    no_code = sorted({f or "" for _, f in frames if not _has_code(f)})
    if no_code:
        log.info("night %s: filter(s) %s have no AAVSO band code; left out of the AAVSO files",
                 night, ", ".join(repr(f) for f in no_code))
    frame_ids = [fid for fid, f in frames if _has_code(f)]
    if not frame_ids:
        return []
    check_stars = {} if check_stars is None else check_stars
    written = []
    for spec, sid in resolved:
        try:
            sequence = sequence_for(cfg, spec)
        except ClinepipeError as exc:  # the file the user named is missing or unreadable
            log.warning("AAVSO report of %s for night %s not written: %s", spec, night,
                        exc.message)
            continue
        with _session(engine) as s:
            n = s.scalar(select(func.count()).select_from(Measurement).join(
                Frame, Frame.id == Measurement.frame_id).where(
                Measurement.star_id == sid, Measurement.mag.is_not(None),
                Measurement.flags == 0, Frame.night == night))
        if not n:
            log.info("AAVSO target %r has no calibrated measurement on night %s", spec, night)
            continue
        if sequence is None and sid not in check_stars:
            check_stars[sid] = choose_check_star(
                engine, sid, exclude_qc=tuple(cfg.qc.exclude_from_variability))
        out = cfg.paths.archive / "aavso" / night / f"{sanitise_name(spec)}.txt"
        try:
            rows = export_aavso(engine, out, obscode=cfg.aavso.obscode, star_ids=[sid],
                                check_star_id=check_stars.get(sid),
                                software=f"clinepipe {__version__}", frame_ids=frame_ids,
                                sequence=sequence, match_radius=cfg.catalog.match_radius)
        except ClinepipeError as exc:
            log.warning("AAVSO report of %s for night %s not written: %s", spec, night,
                        exc.message)
            continue
        log.info("AAVSO report of %s for night %s: %s (%d observation(s))", spec, night, out, rows)
        if rows.left_out:
            log.info("AAVSO report of %s for night %s: left out %s", spec, night,
                     describe_left_out(rows.left_out))
        written.append(out)
    return written


def nights_with_lights(cfg: Config, engine, *, night: str | None = None,
                       since: str | None = None) -> list[str]:
    """The nights (``YYYYMMDD``, sorted) of this telescope's calibrated lights: ``night`` alone,
    those from ``since`` on, or all of them."""
    q = select(Frame.night).distinct().where(
        Frame.telescope == cfg.site.telescope, Frame.kind == "light",
        Frame.state == "calibrated", Frame.night.is_not(None))
    if night is not None:
        q = q.where(Frame.night == night)
    if since is not None:
        q = q.where(Frame.night >= since)
    with _session(engine) as s:
        return sorted(s.scalars(q).all())


def rewrite_aavso(cfg: Config, engine, nights, targets) -> tuple[list[Path], list[str]]:
    """``clinepipe aavso``: (again) the nightly AAVSO files of ``targets`` (names, catalog ids,
    star ids or ``"RA DEC"``) for ``nights``, as the run writes them
    (:func:`write_night_aavso`); returns the files written and the targets that match no star.
    The caller checks the observer code first (no code: no file)."""
    from clinepipe.store.queries import resolve_star

    resolved, unmatched = [], []
    for spec in targets:
        sequence_for(cfg, spec)  # a missing or unreadable sequence file: ConfigError, exit 2
        try:
            with _session(engine) as s:
                resolved.append((spec, resolve_star(s, str(spec))))
        except ClinepipeError:
            unmatched.append(str(spec))
    written: list[Path] = []
    checks: dict[int, int | None] = {}
    if resolved:
        for night in nights:
            written += write_night_aavso(cfg, engine, night, resolved=resolved,
                                         check_stars=checks)
    return written, unmatched


def _has_code(filter_name: str | None) -> bool:
    try:
        aavso_filter_code(filter_name)
    except ClinepipeError:
        return False
    return True


def write_aavso_reports(cfg: Config, engine, run_id: int, also_runs=()) -> list[Path]:
    """The run's last step: the AAVSO files of every target for every night this run (or a
    killed run in ``also_runs``) touched. Never raises; without an observer code nothing is
    written and :func:`no_obscode_warning` is logged."""
    if not cfg.aavso.targets:
        return []
    written: list[Path] = []
    try:
        warning = no_obscode_warning(cfg)
        if warning is not None:
            log.warning(warning)
            return []
        nights = nights_of_runs(engine, [run_id, *also_runs])
        if not nights:
            return []
        resolved = resolve_targets(engine, cfg.aavso.targets)
        checks: dict[int, int | None] = {}
        for night in nights:
            try:
                written += write_night_aavso(cfg, engine, night, resolved=resolved,
                                             check_stars=checks)
            except Exception:
                log.exception("the AAVSO files of night %s could not be written", night)
    except Exception:
        log.exception("the AAVSO files could not be written")
    return written


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _target_plot(rows: list[dict], jd0: float, jd1: float, title: str) -> str:
    """Two panels: the night (UTC hours) and the last 30 days (date); base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.time import Time

    colours = {"B": "tab:blue", "V": "tab:green", "R": "tab:red", "I": "tab:brown"}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2), dpi=100,
                                 gridspec_kw={"width_ratios": [1, 1.4]})
    for filt in sorted({r["filter"] for r in rows}):
        sel = [r for r in rows if r["filter"] == filt and r["mag"] is not None]
        if not sel:
            continue
        jd = np.array([r["jd_mid"] for r in sel])
        mag = np.array([r["mag"] for r in sel])
        err = np.array([r["mag_err"] or 0.0 for r in sel])
        tonight = (jd >= jd0) & (jd <= jd1)
        if tonight.any():
            a1.errorbar(Time(jd[tonight], format="jd").to_datetime(), mag[tonight],
                        yerr=err[tonight], fmt="o", ms=3, lw=0.7, color=colours.get(filt),
                        label=filt)
        a2.errorbar(Time(jd, format="jd").to_datetime(), mag, yerr=err, fmt="o", ms=2.5, lw=0.6,
                    color=colours.get(filt), label=filt)
    a1.set_title(f"{title}: tonight (UTC)", fontsize=10)
    a2.set_title(f"{title}: last 30 days", fontsize=10)
    for ax in (a1, a2):
        ax.invert_yaxis()
        ax.grid(alpha=0.3)
        ax.set_ylabel("magnitude")
        if ax.has_data():
            ax.legend(fontsize=8, loc="best")
    fig.autofmt_xdate()
    fig.tight_layout()
    return _png(fig)


def report_sections(engine, night: str | None, targets=(), plots=None) -> list[str]:
    """HTML for the morning report: the targets' light curves (the night and the last 30 days)
    and the suspected new variables measured that night. Never raises (a failure becomes a line
    in the report). ``plots``: the page's :class:`~clinepipe.products.plot_batch.PlotBatch`
    (the light curves are placeholders it fills), else they are drawn here."""
    from clinepipe.store.measurement_rows import lightcurve

    parts: list[str] = []
    try:
        with _session(engine) as s:
            jd0, jd1 = s.execute(select(func.min(Frame.jd_mid), func.max(Frame.jd_mid)).where(
                Frame.night == night, Frame.kind == "light")).one()
        if targets:
            parts.append("<h2>Targets</h2><div class='plots'>")
            for spec in targets:
                found = resolve_targets(engine, [spec], quiet=True)
                if not found or jd1 is None:
                    parts.append(f"<p>{html.escape(str(spec))}: no star of the database matches "
                                 f"it yet.</p>" if not found else
                                 f"<p>{html.escape(str(spec))}: no light frames this night.</p>")
                    continue
                sid = found[0][1]
                rows = lightcurve(engine, sid, since=jd1 - 30.0, until=jd1)
                n_night = sum(1 for r in rows if r["mag"] is not None and jd0 <= r["jd_mid"] <= jd1)
                title = f"{spec} (star {sid})"
                parts.append(f"<h3>{html.escape(title)}: {n_night} point(s) tonight, "
                             f"{sum(1 for r in rows if r['mag'] is not None)} in 30 days</h3>")
                if rows:
                    png = (_target_plot(rows, jd0, jd1, str(spec)) if plots is None
                           else plots.add(_target_plot, rows, jd0, jd1, str(spec)))
                    parts.append(f"<img alt='light curve of {html.escape(str(spec))}' "
                                 f"data-plot='target' src='data:image/png;base64,{png}'>")
            parts.append("</div>")
        with _session(engine) as s:
            rows = s.execute(
                select(Star.id, Star.catalog_id, Star.ra, Star.dec, Measurement.filter,
                       Measurement.mag, Measurement.mag_err)
                .join(Measurement, Measurement.star_id == Star.id)
                .join(Frame, Frame.id == Measurement.frame_id)
                .where(Star.var_type == SUSPECTED, Frame.night == night,
                       Measurement.mag.is_not(None), Measurement.flags == 0)
                .order_by(Star.id, Measurement.filter)).all()
        if rows:
            about = {r[0]: (r[1], r[2], r[3]) for r in rows}
            g = group_statistics((np.array([r[0] for r in rows]),
                                  np.array([r[4] or "" for r in rows], dtype=str)),
                                 np.zeros(len(rows)), np.array([r[5] for r in rows], dtype=float),
                                 np.array([np.nan if r[6] is None else r[6] for r in rows]))
            parts.append("<h2>Suspected new variables</h2><p>Catalog stars that vary in our own "
                         "data and are in no known-variable list; they are left out of the "
                         "ensemble.</p><table><tr><th>star</th><th>catalog id</th><th>RA</th>"
                         "<th>Dec</th><th>filter</th><th>points</th><th>rms</th>"
                         "<th>χ²<sub>red</sub></th></tr>")
            for sid, f, n, rms, chi2 in zip(g.labels[0].tolist(), g.labels[1].tolist(),
                                            g.n.tolist(), g.rms.tolist(), g.chi2_red.tolist()):
                cat, ra, dec = about[sid]
                parts.append(f"<tr><td>{sid}</td><td>{html.escape(cat or '')}</td>"
                             f"<td class='num'>{ra:.5f}</td><td class='num'>{dec:+.5f}</td>"
                             f"<td>{html.escape(f)}</td><td class='num'>{n}</td>"
                             f"<td class='num'>{rms:.3f}</td><td class='num'>{chi2:.1f}</td></tr>")
            parts.append("</table>")
    except Exception:
        log.exception("the targets section of the report of night %s failed", night)
        parts.append("<p class='flag'>The targets section could not be made (see the log).</p>")
    return parts


