"""Suspected new variables: catalog stars that vary within a night leave the ensemble, and their frames are recalibrated."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import bindparam, func, select, update

from clinepipe.config import Config
from clinepipe.finite import finite_floats_or_none, finite_or_none
from clinepipe.store.fetch import fetch_tuples
from clinepipe.store.models import Frame, Measurement, Star, ZeroPoint
from clinepipe.store.queries import nights_of_runs
from clinepipe.store.tables import measurements

log = logging.getLogger("clinepipe")


#: ``Star.var_type`` of a star our own data shows to vary (not in the known-variable list)
SUSPECTED = "suspected"

def _session(engine):
    from clinepipe.store.db import session_scope

    return session_scope(engine)


def _qc_bad(qc: str | None, excluded: set) -> bool:
    return bool(excluded & set(filter(None, (qc or "").split(";"))))


@dataclass(frozen=True)
class Suspect:
    """A catalog star that varies within one night more than stars of its brightness: a suspected
    new variable, at its most variable night and filter.

    Attributes
    ----------
    star_id : int
        The star's id in the ``stars`` table.
    catalog_id : str or None
        Its identifier in the photometric catalog.
    ra, dec : float
        Its position (degrees, ICRS), the mean of its detections.
    night : str
        The observing night, ``YYYYMMDD`` (local noon to noon, see
        :func:`clinepipe.ingest.classify.observing_night`).
    filter : str
        The filter of that night's series.
    n : int
        Calibrated points in that series once isolated outliers are left out.
    rms : float
        Their sample standard deviation (mag).
    chi2_red : float
        Their reduced chi-square about the error-weighted mean.
    threshold : float
        The reduced chi-square it exceeded: ``[variables] suspect_chi2`` times the median of the
        stars of similar brightness that night (when that median is above 1).
    """
    star_id: int
    catalog_id: str | None
    ra: float
    dec: float
    night: str
    filter: str
    n: int
    rms: float
    chi2_red: float
    threshold: float


def suspected_positions(engine):
    """The suspected new variables as a :class:`~clinepipe.catalogs.KnownVariables` (names are
    ``clinepipe-<id>``), for masking them out of the ensemble by position; None if there are none."""
    from clinepipe.catalogs.types import KnownVariables

    with _session(engine) as s:
        rows = s.execute(select(Star.id, Star.ra, Star.dec).where(Star.var_type == SUSPECTED)
                         .order_by(Star.id)).all()
    if not rows:
        return None
    return KnownVariables(names=np.array([f"clinepipe-{r[0]}" for r in rows], dtype=str),
                          ra=np.array([r[1] for r in rows], dtype=float),
                          dec=np.array([r[2] for r in rows], dtype=float),
                          types=np.array([SUSPECTED] * len(rows), dtype=str),
                          periods=np.full(len(rows), np.nan))


#: the columns find_suspected_variables reads, as numpy takes the fetched tuples in one call
_ROW_DTYPE = np.dtype([("night", object), ("star", np.int64), ("filter", object), ("t", float),
                       ("mag", float), ("err", float), ("qc", object), ("name", object),
                       ("var_type", object), ("catalog_id", object), ("ra", float),
                       ("dec", float)])


def _night_statistics(a: np.ndarray, min_points: int) -> dict[str, dict[tuple[int, str], tuple]]:
    """{night: {(star, filter): (mean, chi2_red, rms, n)}} of the points ``a`` (an array of
    :data:`_ROW_DTYPE`) with at least ``min_points`` points once the isolated outliers (within
    the night's series of that star and filter) are left out."""
    from clinepipe.variability.statistics import (
        floor_errors,
        group_statistics,
        isolated_outliers,
    )

    if not a.size:
        return {}
    night, star, filt = a["night"].astype(str), a["star"], a["filter"].astype(str)
    t, mag, err = a["t"], a["mag"], floor_errors(a["err"])  # no error (None) became NaN
    labels = (night, star, filt)
    keep = ~isolated_outliers(t, mag, err, labels)
    g = group_statistics(tuple(lab[keep] for lab in labels), t[keep], mag[keep], err[keep],
                         min_points=min_points)
    out: dict[str, dict[tuple[int, str], tuple]] = {}
    for i in range(g.n.size):
        out.setdefault(str(g.labels[0][i]), {})[(int(g.labels[1][i]), str(g.labels[2][i]))] = (
            float(g.mean_mag[i]), float(g.chi2_red[i]), float(g.rms[i]), int(g.n[i]))
    return out


def find_suspected_variables(cfg: Config, engine, nights) -> list[Suspect]:
    """Catalog stars, not known variables nor already suspected, that vary within one of
    ``nights`` (see the module docstring); one entry per star (its most variable night and
    filter), sorted by star id. Reads only."""
    threshold = float(cfg.variables.suspect_chi2)
    nights = sorted(set(nights or ()))
    if threshold <= 0 or not nights:
        return []
    min_points = max(int(cfg.variables.suspect_min_points), 3)
    excluded = set(cfg.qc.exclude_from_variability)
    M, F = Measurement, Frame
    with _session(engine) as s:
        # the driver's plain tuples: a night of 200 lights is ~100,000 rows of 12 values
        rows = fetch_tuples(s, select(
            F.night, M.star_id, M.filter, F.jd_mid, M.mag, M.mag_err, F.qc,
            Star.name, Star.var_type, Star.catalog_id, Star.ra, Star.dec)
            .join(F, F.id == M.frame_id).join(Star, Star.id == M.star_id)
            .where(F.night.in_(nights), M.mag.is_not(None), M.flags == 0,
                   Star.catalog_id.is_not(None))
            .order_by(F.night, M.star_id, M.filter, F.jd_mid))
    a = np.array(rows, dtype=_ROW_DTYPE)
    # each star's name, type, catalog id and position, and each QC text's verdict, once
    stars, first = np.unique(a["star"], return_index=True)
    info = dict(zip(stars.tolist(), zip(*(a[c][first].tolist() for c in
                                          ("name", "var_type", "catalog_id", "ra", "dec")))))
    texts, which = np.unique(a["qc"].astype(str), return_inverse=True)
    bad = np.array([_qc_bad(q, excluded) for q in texts.tolist()], dtype=bool)
    per_night = _night_statistics(a[~bad[which.ravel()]], min_points)
    best: dict[int, Suspect] = {}
    for night, stats in sorted(per_night.items()):
        for f in sorted({k[1] for k in stats}):
            # the field's behaviour at each brightness: constant stars only (not known/suspected)
            pool = [(k[0], v[0], v[1]) for k, v in stats.items()
                    if k[1] == f and not info[k[0]][0] and not info[k[0]][1]]
            if not pool:
                continue
            pool_mean = np.array([p[1] for p in pool])
            pool_chi2 = np.array([p[2] for p in pool])
            pool_ids = np.array([p[0] for p in pool])
            for sid, mean, chi2 in pool:
                if chi2 <= threshold:
                    continue
                near = (np.abs(pool_mean - mean) <= NEIGHBOUR_DMAG) & (pool_ids != sid)
                ref = pool_chi2[near] if near.sum() >= MIN_NEIGHBOURS else pool_chi2[pool_ids != sid]
                level = float(np.median(ref)) if ref.size else 1.0
                limit = threshold * max(1.0, level)
                if chi2 <= limit:
                    continue
                _, _, cat_id, ra, dec = info[sid]
                _, _, rms, n = stats[(sid, f)]
                cand = Suspect(sid, cat_id, float(ra), float(dec), night, f, n, rms, chi2, limit)
                if sid not in best or chi2 / limit > best[sid].chi2_red / best[sid].threshold:
                    best[sid] = cand
    return [best[k] for k in sorted(best)]


def flag_suspected_variables(cfg: Config, engine, run_id: int, also_runs=(),
                             touched: set | None = None) -> list[Suspect]:
    """The run's step after the lights: find the suspected new variables of the nights this run
    (or the killed runs ``also_runs``) touched, mark them, and re-calibrate every frame that still
    has a suspected variable in its ensemble (also those a killed run left); the nights of those
    frames are added to ``touched``. Never raises: a failure is logged and costs nothing but
    this step."""
    found: list[Suspect] = []
    try:
        nights = nights_of_runs(engine, [run_id, *also_runs])
        found = find_suspected_variables(cfg, engine, nights)
        if found:
            with _session(engine) as s:
                for sus in found:
                    s.execute(update(Star).where(Star.id == sus.star_id, Star.name.is_(None),
                                                 Star.var_type.is_(None))
                              .values(var_type=SUSPECTED))
            for sus in found:
                log.warning("star %d (%s, RA %.5f Dec %+.5f) is a suspected new variable: reduced "
                            "chi-square %.1f (limit %.1f) in %s on night %s, rms %.3f mag over %d "
                            "points; it is left out of the ensemble from now on",
                            sus.star_id, sus.catalog_id or "no catalog id", sus.ra, sus.dec,
                            sus.chi2_red, sus.threshold, sus.filter, sus.night, sus.rms, sus.n)
        with _session(engine) as s:  # other telescopes' frames: by their own runs and configs
            frame_ids = sorted(s.scalars(
                select(Measurement.frame_id).distinct().join(Star, Star.id == Measurement.star_id)
                .join(Frame, Frame.id == Measurement.frame_id)
                .where(Frame.telescope == cfg.site.telescope, Star.var_type == SUSPECTED,
                       Star.name.is_(None), Measurement.in_ensemble.is_(True))).all())
        if frame_ids:
            done = recalibrate_frames(cfg, engine, frame_ids, touched=touched)
            log.info("re-calibrated %d frame(s) without the suspected variable(s) in the ensemble",
                     done)
    except Exception:  # never cost the night's data
        log.exception("the search for suspected new variables failed")
    return found


#: the stored columns recalibrate_frames reads back (id, then MEASUREMENT_DTYPE's names)
_STORED_DTYPE = np.dtype([("id", np.int64)] + [(n, float) for n in (
    "x", "y", "ra", "dec", "flux", "flux_err", "background", "inst_mag", "inst_mag_err",
    "fwhm")] + [("flags", np.int64)])

_SET_CALIBRATION = (update(measurements).where(measurements.c.id == bindparam("b_id"))
                    .values(mag=bindparam("b_mag"), mag_err=bindparam("b_err"),
                            in_ensemble=bindparam("b_ens")))


def recalibrate_frames(cfg: Config, engine, frame_ids, context=None,
                       touched: set | None = None) -> int:
    """Fit the zero point of each frame again from its stored instrumental magnitudes and the
    catalog, with the current known and suspected variables left out of the ensemble, and
    rewrite its measurements' ``mag``, ``mag_err``, ``in_ensemble`` and its ``zero_points`` row,
    a frame never split between transactions (batched as the lights are: ``[database]
    commit_lights``, ``commit_seconds``). Returns how many frames were rewritten (a frame whose
    catalog is unavailable right now is left as it is and logged). The run refreshes the
    nights' QC flags after this step (``run.finishing.update_qc``)."""
    from clinepipe.calibrate.light import CalibrationContext
    from clinepipe.store.db import BatchedTransaction

    if context is None:
        context = CalibrationContext.load(cfg, suspected_positions(engine))
    done = 0
    db = cfg.database
    # frames read, fitted and rewritten in batched transactions, as the lights are stored (a
    # transaction or two per frame cost more than the fit: ~20 ms a frame); a kill or an error
    # rolls back the open batch, whose frames the next run finds and redoes
    batch = BatchedTransaction(engine, db.commit_lights, db.commit_seconds)
    with batch:
        for fid in sorted({int(f) for f in frame_ids}):
            with batch.unit() as s:
                frame = _recalibrate_frame(cfg, s, fid, context)
            if frame is None:
                continue
            done += 1
            if touched is not None and frame.night:
                touched.add(frame.night)
    return done


def _recalibrate_frame(cfg: Config, s, fid: int, context):
    """:func:`recalibrate_frames` of one frame in the session ``s``; returns the frame, or None
    when it was left as it is."""
    from clinepipe.calibrate.light import RELATIVE_STAGE, calibrate_measurements
    from clinepipe.run.light_stages import MEASUREMENT_DTYPE
    from clinepipe.store.measurement_rows import mark_frame_stars_pending

    M = Measurement
    frame = s.get(Frame, fid)
    # a frame on the night's relative scale is placed by the relative step, not here
    if frame is None or frame.kind != "light" or frame.stage == RELATIVE_STAGE:
        return None
    s.expunge(frame)
    rows = fetch_tuples(s, select(
        M.id, M.x, M.y, M.ra, M.dec, M.flux, M.flux_err, M.background, M.inst_mag,
        M.inst_mag_err, M.fwhm, func.coalesce(M.flags, 0))
        .where(M.frame_id == fid).order_by(M.id))
    if not rows:
        return None
    # the stored columns in one call (None becomes NaN), then as the light's stages made them
    stored = np.array(rows, dtype=_STORED_DTYPE)
    m = np.zeros(len(rows), dtype=MEASUREMENT_DTYPE)
    for name in _STORED_DTYPE.names[1:]:
        m[name] = stored[name]
    m["x"] -= 1.0  # stored 1-based
    m["y"] -= 1.0
    ids = stored["id"].tolist()
    calib = calibrate_measurements(cfg, frame.filter, m, context)
    if calib.state == "waiting":
        log.info("%s: not re-calibrated now (%s)", frame.raw_path, calib.reason)
        return None
    mark_frame_stars_pending(s, [fid])  # their star_stats rows are recomputed
    # Core executemany by primary key, the values column-wise (NaN stored as NULL)
    s.execute(_SET_CALIBRATION, [
        {"b_id": i, "b_mag": mag, "b_err": err, "b_ens": ens} for i, mag, err, ens in
        zip(ids, finite_floats_or_none(calib.mag), finite_floats_or_none(calib.mag_err),
            np.asarray(calib.in_ensemble, dtype=bool).tolist())])
    zp = calib.zero_point
    if zp is None:
        s.query(ZeroPoint).filter(ZeroPoint.frame_id == fid).delete()
        s.execute(update(Frame).where(Frame.id == fid).values(
            state=calib.state, stage=calib.stage, reason=calib.reason))
    else:
        values = dict(filter=frame.filter, catalog_band=calib.band, value=float(zp.value),
                      error=float(zp.error), n_used=int(zp.n_used),
                      n_candidates=int(zp.n_candidates),
                      scatter=finite_or_none(zp.scatter) or 0.0)
        row = s.scalars(select(ZeroPoint).where(ZeroPoint.frame_id == fid)).first()
        if row is None:
            s.add(ZeroPoint(frame_id=fid, color_term=None, **values))
        else:
            for k, v in values.items():
                setattr(row, k, v)
        if frame.state != "calibrated":
            s.execute(update(Frame).where(Frame.id == fid).values(
                state="calibrated", stage=None, reason=None))
    return frame


#: neighbours in brightness for the suspected-variable test (mag), and how many are needed
NEIGHBOUR_DMAG = 0.75


MIN_NEIGHBOURS = 5
