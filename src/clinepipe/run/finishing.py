"""The end of a run, over the nights it touched: quality flags, star counts, colour terms and
the morning reports (the variable-star steps are in :mod:`clinepipe.aavso`)."""

from __future__ import annotations

import json
import logging
from collections import defaultdict

import numpy as np
from sqlalchemy import func, select, update

from clinepipe.config import Config
from clinepipe.finite import finite_or_none
from clinepipe.store.models import CatalogMatch, Frame, Measurement, Star, ZeroPoint

log = logging.getLogger("clinepipe")


def update_qc(cfg: Config, engine, nights: list[str] | None = None) -> None:
    """Recompute the QC flags of this telescope's lights of the given nights (all nights by
    default), with this telescope's thresholds.

    Flags are relative to the night, telescope and filter (another telescope has its own zero
    point, seeing and sky), so they are derived from the stored figures again whenever a night
    gains frames: the same data always gives the same flags.
    """
    from clinepipe.photometry.quality import QcThresholds, night_flags
    from clinepipe.store.db import session_scope

    q = cfg.qc
    thresholds = QcThresholds(q.clouds_mag, q.max_elongation, q.focus_factor, q.sky_factor,
                              q.few_stars_fraction, q.max_astrometric_rms)
    with session_scope(engine) as s:
        query = (select(Frame.id, Frame.night, Frame.filter, ZeroPoint.value, Frame.airmass,
                        Frame.fwhm, Frame.elongation, Frame.sky, Frame.n_stars,
                        Frame.astrometric_rms, Frame.qc)
                 .outerjoin(ZeroPoint, ZeroPoint.frame_id == Frame.id)
                 .where(Frame.telescope == cfg.site.telescope, Frame.kind == "light",
                        Frame.state.in_(("calibrated", "measured"))))
        if nights is not None:
            query = query.where(Frame.night.in_(nights))
        rows = s.execute(query.order_by(Frame.night, Frame.filter, Frame.jd_mid)).all()
        groups = defaultdict(list)
        for r in rows:  # one telescope: (night, filter)
            groups[(r[1], r[2])].append(r)
        for members in groups.values():
            cols = list(zip(*[[np.nan if v is None else v for v in r[3:10]] for r in members]))
            flags = night_flags(*cols, thresholds=thresholds)
            for r, f in zip(members, flags):
                text = ";".join(f)
                if text != (r[10] or ""):
                    s.execute(update(Frame).where(Frame.id == r[0]).values(qc=text))


def fit_colour_terms(cfg: Config, engine, run_id: int, also_runs=()) -> None:
    """Fit and record (``zero_points.color_term``) a colour term per night and filter of this
    run's telescope (each telescope's optics and camera have their own).

    From the ensemble stars' residuals ``catalog − calibrated`` against their catalog colour
    (``calibrate.COLOUR_INDEX``), each frame's mean removed. Reported, not applied: the
    magnitudes stay on the ensemble zero point, since stars outside the catalog have no
    colour to correct with. Not fitted (NULL, with the reason in the log) when the night has
    too few stars or too narrow a colour range.
    """
    from clinepipe.calibrate.colour_term import COLOUR_INDEX, fit_colour_term
    from clinepipe.store.db import session_scope

    if not cfg.catalog.color_term:
        return
    with session_scope(engine) as s:
        telescope = cfg.site.telescope
        # a set, not DISTINCT: with it SQLite walks every light by night, not the run's few
        nights = sorted(set(s.execute(select(Frame.night, Frame.filter).where(
            Frame.telescope == telescope, Frame.run_id.in_([run_id, *also_runs]),
            Frame.kind == "light", Frame.state == "calibrated")).all()),
            key=lambda r: (r[0] or "", r[1] or ""))
        for night, filt in nights:
            band = cfg.catalog.filters.get(filt or "")
            if band not in COLOUR_INDEX:
                continue
            blue, red = COLOUR_INDEX[band]
            rows = s.execute(
                select(Measurement.frame_id, Measurement.star_id, Measurement.mag,
                       Measurement.inst_mag_err, CatalogMatch.mags)
                .join(Frame, Frame.id == Measurement.frame_id)
                .join(CatalogMatch, CatalogMatch.star_id == Measurement.star_id)
                .where(Frame.telescope == telescope, Frame.night == night, Frame.filter == filt,
                       Measurement.in_ensemble.is_(True), Measurement.mag.is_not(None))).all()
            residual, colour, error, frame, star = [], [], [], [], []
            for frame_id, star_id, mag, mag_err, mags_json in rows:
                mags = json.loads(mags_json or "{}")
                if not all(mags.get(b) and mags[b][0] is not None for b in (band, blue, red)):
                    continue
                cat_err = mags[band][1] if mags[band][1] is not None else 0.03
                residual.append(mags[band][0] - mag)
                colour.append(mags[blue][0] - mags[red][0])
                error.append(float(np.hypot(mag_err or 0.01, cat_err)))
                frame.append(frame_id)
                star.append(star_id)
            term = fit_colour_term(residual, colour, error, frame, star=star,
                                   colour_name=f"{blue}-{red}")
            frame_ids = select(Frame.id).where(Frame.telescope == telescope,
                                               Frame.night == night, Frame.filter == filt)
            s.execute(update(ZeroPoint).where(ZeroPoint.frame_id.in_(frame_ids)).values(
                color_term=finite_or_none(term.value)))
            if term.reason:
                log.info("night %s, %s: colour term not fitted (%s)", night, filt, term.reason)
            else:
                log.info("night %s, %s: colour term %+.4f ± %.4f per mag of %s (%d points)",
                         night, filt, term.value, term.error, term.colour, term.n_used)


def write_night_reports(cfg: Config, engine, run_id: int, also_runs=(), mapper=None) -> None:
    """The morning report of every night this run (or a killed run in ``also_runs``, whose
    reports may be missing) touched, into ``archive/reports/<night>/``; ``mapper`` draws the
    plots (the run's pool, when it draws them)."""
    from clinepipe.products.report import write_report
    from clinepipe.store.db import session_scope

    with session_scope(engine) as s:
        nights = s.scalars(select(Frame.night).distinct().where(
            Frame.run_id.in_([run_id, *also_runs]), Frame.kind == "light",
            Frame.night.is_not(None))).all()
    for night in sorted(nights):
        try:
            write_report(engine, night, cfg.paths.archive / "reports" / night,
                         targets=cfg.aavso.targets, archive=cfg.paths.archive, mapper=mapper)
        except Exception:  # a report must never cost the night's data
            log.exception("the report of night %s could not be written", night)


def refresh_star_counts(engine, run_ids=None) -> None:
    """``stars.n_measurements`` from the measurements: of the stars measured on the frames of
    ``run_ids`` (a run touches few stars of a big archive), or of every star when None."""
    from clinepipe.store.db import session_scope

    with session_scope(engine) as s:
        # count(*), not count(id): PostgreSQL counts a star's rows from the (star_id, …) index
        # alone, where count(id) fetched every row from the table (ten years of archive: 1.06 s
        # for a night's 322 stars, 0.03 s on an empty database)
        counts = (select(func.count()).select_from(Measurement)
                  .where(Measurement.star_id == Star.id).scalar_subquery())
        stmt = update(Star).values(n_measurements=counts)
        if run_ids is not None:
            touched = (select(Measurement.star_id).join(Frame, Frame.id == Measurement.frame_id)
                       .where(Frame.run_id.in_(list(run_ids))))
            # and every star still at 0: made by a run killed before its counts were refreshed
            stmt = stmt.where(Star.id.in_(touched) | (Star.n_measurements == 0)
                              | Star.n_measurements.is_(None))
        s.execute(stmt)


def frame_states(engine, telescope: str | None = None) -> tuple[dict, list]:
    """Frames per state, and every file not fully processed with its stage and reason; of one
    telescope, or of all (``telescope=None``)."""
    from clinepipe.store.db import session_scope

    mine = [] if telescope is None else [Frame.telescope == telescope]
    with session_scope(engine) as s:
        states = dict(s.execute(select(Frame.state, func.count()).where(*mine)
                                .group_by(Frame.state)).all())
        failures = s.execute(select(Frame.raw_path, Frame.state, Frame.stage, Frame.reason)
                             .where(*mine, Frame.state.in_(("failed", "waiting", "rejected",
                                                            "duplicate", "skipped",
                                                            "measured")),
                                    Frame.reason.is_not(None))).all()
    # sorted here: an ORDER BY raw_path makes SQLite walk the (telescope, raw_path) index, every
    # frame of the archive, rather than look up the few in these states (revision 0009)
    return states, sorted((tuple(r) for r in failures), key=lambda r: r[0])
