"""The run's catalog-free step: every night's lights without a catalog zero point on one scale.

After the lights, a light whose catalog could not calibrate it (``[catalog] source = "none"``,
fewer than ``[catalog] min_stars`` comparison stars, or no catalog band for its filter) is
left ``measured`` at stage ``relative`` (:data:`clinepipe.calibrate.light.RELATIVE_STAGE`).
This step takes each (night, filter) of this telescope holding such lights, builds the
night's (frames x stars) instrumental magnitudes from the stored measurements, and solves
them once with :func:`clinepipe.calibrate.relative.relative_zero_points`:

* relative lights get ``mag = inst_mag + zero_point``, the ensemble membership, and a
  ``zero_points`` row with ``catalog_band = "relative"`` (:data:`RELATIVE_BAND`): magnitudes
  on the instrumental scale of the night's best frame plus ``RELATIVE_ZERO_POINT`` (25);
* when the same night and filter also have lights the catalog calibrated, the relative ones
  are tied to those (:func:`~clinepipe.calibrate.relative.catalog_offset` over the frames'
  two zero points) and carry the catalog's band, so the night keeps one, standard, scale;
* a light the ensemble cannot place stays ``measured`` with the reason.

The whole (night, filter) is solved again from its stored rows whenever the run touched the
night, in one transaction: a rerun, or a run after a killed one, ends in the same database,
and the cost follows the night, not the archive.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
from sqlalchemy import delete, insert, select, update

from clinepipe.calibrate.light import RELATIVE_PENDING, RELATIVE_STAGE
from clinepipe.calibrate.relative import RELATIVE_BAND
from clinepipe.config import Config
from clinepipe.finite import finite_or_none
from clinepipe.store.measurement_rows import mark_stars_pending
from clinepipe.store.models import Frame, Measurement, Star, ZeroPoint

log = logging.getLogger("clinepipe")


_CHUNK = 500  # ids per IN (...) list: under every database's limit on bound parameters


def relative_photometry_step(cfg: Config, engine, run_id: int, also_runs=()) -> int:
    """Place this telescope's relative lights of the nights this run (or the killed runs
    ``also_runs``) touched, and of any night still holding lights waiting for it.

    Parameters
    ----------
    cfg : Config
        The run's configuration (``[site] telescope``, ``[catalog] source`` and ``min_stars``).
    engine : sqlalchemy.Engine
        The database.
    run_id : int
        This run.
    also_runs : iterable of int
        Runs that were killed; their nights are done again.

    Returns
    -------
    int
        Lights given relative (or catalog-tied) magnitudes.
    """
    from clinepipe.store.db import session_scope

    telescope = cfg.site.telescope
    with session_scope(engine) as s:
        mine = (Frame.telescope == telescope, Frame.kind == "light")
        touched = select(Frame.night).where(*mine, Frame.run_id.in_([run_id, *also_runs]))
        # lights a killed step (or a later recalibration) left unplaced
        pending = select(Frame.night).where(*mine, Frame.state == "measured",
                                            Frame.stage == RELATIVE_STAGE,
                                            Frame.reason.like(f"{RELATIVE_PENDING}%"))
        # (sets, not DISTINCT: with it SQLite walks every light by night, not the run's few)
        nights = set(s.scalars(touched)) | set(s.scalars(pending))
        nights.discard(None)
        groups = s.execute(select(Frame.night, Frame.filter).distinct().where(
            *mine, Frame.night.in_(sorted(nights)), Frame.stage == RELATIVE_STAGE)
            .order_by(Frame.night, Frame.filter)).all() if nights else []
    placed = 0
    for night, filt in groups:
        try:
            with session_scope(engine) as s:  # one transaction per night and filter
                placed += _place_night(cfg, s, night, filt)
        except Exception:  # one night's failure must not cost the others (they stay pending)
            log.exception("night %s, filter %s: the relative ensemble failed", night, filt)
    return placed


def _place_night(cfg: Config, s, night: str, filt: str | None) -> int:
    """Solve one (night, filter) of this telescope and write its relative lights back."""
    from clinepipe.calibrate.relative import catalog_offset, relative_zero_points

    frames = s.execute(
        select(Frame.id, Frame.state, Frame.stage, ZeroPoint.value, ZeroPoint.error,
               ZeroPoint.catalog_band)
        .outerjoin(ZeroPoint, ZeroPoint.frame_id == Frame.id)
        .where(Frame.telescope == cfg.site.telescope, Frame.kind == "light",
               Frame.night == night, _same_filter(filt),
               Frame.state.in_(("measured", "calibrated")))
        .order_by(Frame.id)).all()
    frame_ids = np.array([r[0] for r in frames], dtype=np.int64)
    relative = np.array([r[2] == RELATIVE_STAGE for r in frames], dtype=bool)
    on_catalog = np.array([r[1] == "calibrated" and r[2] != RELATIVE_STAGE and r[3] is not None
                           and r[5] != RELATIVE_BAND for r in frames], dtype=bool)
    if not relative.any():
        return 0
    rows = _measurements(s, frame_ids.tolist())
    if not rows:
        return 0
    cols = list(zip(*rows))
    meas_id, fid, sid = (np.array(c, dtype=np.int64) for c in cols[:3])
    f_index = np.searchsorted(frame_ids, fid)
    star_ids, s_index = np.unique(sid, return_inverse=True)
    shape = (len(frame_ids), len(star_ids))
    inst_m, inst_e = np.full(shape, np.nan), np.full(shape, np.nan)
    usable = np.zeros(shape, dtype=bool)
    inst_m[f_index, s_index] = np.array(cols[3], dtype=float)  # NULL becomes NaN
    inst_e[f_index, s_index] = np.array(cols[4], dtype=float)
    usable[f_index, s_index] = ((np.array(cols[5], dtype=np.int64) == 0)
                                & ~np.array(cols[6], dtype=bool))

    ens = relative_zero_points(inst_m, inst_e, usable, min_stars=max(cfg.catalog.min_stars, 1))
    shift, shift_err, band = 0.0, 0.0, RELATIVE_BAND
    how = "relative magnitudes"
    if on_catalog.any():
        zp_cat = np.array([frames[i][3] for i in np.flatnonzero(on_catalog)], dtype=float)
        zp_cat_err = np.array([frames[i][4] or 0.0 for i in np.flatnonzero(on_catalog)])
        tie = catalog_offset(ens.zero_point[on_catalog], ens.zero_point_err[on_catalog],
                             zp_cat, zp_cat_err)
        if np.isfinite(tie.value):
            shift, shift_err = tie.value, tie.error
            band = Counter(frames[i][5] for i in np.flatnonzero(on_catalog)).most_common(1)[0][0]
            how = f"tied to the catalog's {band} through {tie.n_used} catalog-calibrated frame(s)"
    if cfg.catalog.source != "none":
        log.warning("night %s, filter %s: %d light(s) without enough catalog stars (min_stars "
                    "= %d) get magnitudes from the night's own ensemble (%s)", night, filt,
                    int(relative.sum()), cfg.catalog.min_stars, how)

    zero_point = ens.zero_point + shift
    zero_err = np.hypot(ens.zero_point_err, shift_err)
    mag = ens.mag + shift
    mag_err = np.hypot(ens.mag_err, shift_err)
    resid = np.where(ens.used, ens.mag - ens.star_mag[None, :], np.nan)
    n_used = ens.used.sum(axis=1)
    scatter = np.sqrt(np.nansum(resid ** 2, axis=1) / np.maximum(n_used, 1))
    candidates = (usable & ens.star_used[None, :]).sum(axis=1)

    mine = relative[f_index]
    mark_stars_pending(s, sid[mine].tolist())  # their star_stats rows are recomputed
    s.execute(update(Measurement), [
        {"id": int(i), "mag": finite_or_none(v), "mag_err": finite_or_none(e), "in_ensemble": bool(u)}
        for i, v, e, u in zip(meas_id[mine].tolist(), mag[f_index, s_index][mine].tolist(),
                              mag_err[f_index, s_index][mine].tolist(),
                              ens.used[f_index, s_index][mine].tolist())])
    rel_ids = frame_ids[relative].tolist()
    for chunk in _chunks(rel_ids):
        s.execute(delete(ZeroPoint).where(ZeroPoint.frame_id.in_(chunk)))
    done = 0
    for k in np.flatnonzero(relative):
        frame_id = int(frame_ids[k])
        if not np.isfinite(zero_point[k]):
            why = ens.frame_reason[k] or ens.reason or "no usable measurement"
            s.execute(update(Frame).where(Frame.id == frame_id).values(
                state="measured", stage=RELATIVE_STAGE,
                reason=f"not placed by the night's relative ensemble: {why}"))
            continue
        s.execute(insert(ZeroPoint).values(
            frame_id=frame_id, filter=filt or "", catalog_band=band,
            value=float(zero_point[k]), error=float(zero_err[k]), n_used=int(n_used[k]),
            n_candidates=int(candidates[k]), scatter=finite_or_none(scatter[k]) or 0.0,
            color_term=None))
        s.execute(update(Frame).where(Frame.id == frame_id).values(
            state="calibrated", stage=RELATIVE_STAGE,
            reason=None if band == RELATIVE_BAND and cfg.catalog.source == "none" else how))
        done += 1
    log.info("night %s, filter %s: %d of %d relative light(s) placed by an ensemble of %d "
             "stars (reference frame %s, %s)", night, filt, done, int(relative.sum()),
             int(ens.star_used.sum()), frame_ids[ens.reference] if ens.reference >= 0 else "none",
             how)
    return done


def _same_filter(filt):
    return Frame.filter.is_(None) if filt is None else Frame.filter == filt


def _measurements(s, frame_ids: list[int]) -> list[tuple]:
    """(id, frame id, star id, inst_mag, inst_mag_err, flags, known or suspected variable) of
    the frames' measurements."""
    out = []
    for chunk in _chunks(frame_ids):
        out += s.execute(
            select(Measurement.id, Measurement.frame_id, Measurement.star_id,
                   Measurement.inst_mag, Measurement.inst_mag_err, Measurement.flags,
                   Star.name.is_not(None) | Star.var_type.is_not(None))
            .join(Star, Star.id == Measurement.star_id)
            .where(Measurement.frame_id.in_(chunk))).all()
    return out


def _chunks(ids: list[int], size: int = _CHUNK):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]
