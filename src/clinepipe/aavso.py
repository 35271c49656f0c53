"""Known and suspected variables, the AAVSO check star, and the nightly AAVSO reports.

**Known variables** (``[known_variables]``: a local CSV or the AAVSO VSX) are matched during
calibration (``pipeline``): the star gets the variable's name, type and period and is never in a
frame's ensemble.

**Suspected new variables.** After every run, :func:`flag_suspected_variables` looks at the
nights the run touched. For each catalog star (an ensemble candidate) that is not a known
variable it computes, per night and filter, the reduced chi-square of its calibrated magnitudes
(frames with the QC flags of ``[qc] exclude_from_variability`` left out, isolated one-frame
outliers such as cosmic rays removed, at least ``[variables] suspect_min_points`` points). A star
with ``chi2_red > suspect_chi2 × max(1, median chi2_red of the catalog stars within 0.75 mag of
it that night)`` is a *suspected new variable*: ``Star.var_type = "suspected"`` (its name stays
empty), a warning names it, the morning report lists it, and it is left out of the ensemble of
every later frame (the pipeline masks it by position, like a known variable). Frames already
calibrated with it in their ensemble are re-calibrated (:func:`recalibrate_frames`: the zero
point is fitted again from the stored instrumental magnitudes and the catalog, exactly as the
pipeline would now calibrate the frame, and its measurements and zero point are rewritten in one
transaction per frame). The comparison with stars of similar brightness keeps bright constant
stars, whose scintillation is not in the CCD-equation errors, out of the list.

**Check star** (:func:`choose_check_star`), chosen by a deterministic rule so that it is the same
every night without being stored:

1. candidates: stars with a catalog match, not a known or suspected variable, measured (calibrated,
   no photometry flags) on at least 80 % of the frames on which the target is, and in the
   ensemble on at least half of those;
2. ranked by catalog data only: ``|Δmag| + |Δcolour|`` to the target, the magnitude in the
   catalog band of ``V`` (else the first band of the target's filters) and the colour
   ``B−V`` (else ``V−R``, …) from ``catalog_matches.mags``; the target's own catalog values
   (or its median measured magnitude when it has no catalog match); ties by star id;
3. the first one in that order whose reduced chi-square within nights (each night's mean
   removed, per filter) is below 2 in every filter.

The ranking never changes; the choice moves on only when the chosen star stops qualifying
(e.g. it turns out to vary).

**Nightly reports.** With ``[aavso] targets`` set, :func:`write_aavso_reports` (called by
``clinepipe run`` after the morning reports) writes one AAVSO Extended Format file per target
and night the run touched: ``archive/aavso/<night>/<target>.txt`` (STARID the VSX name, CNAME
``ENSEMBLE``, KNAME/KMAG the check star, AIRMASS, GROUP per multi-filter sequence, NOTES the
software and the zero-point error; frames with the QC flags of
``[qc] exclude_from_variability`` are left out). A target that matches no star is logged once
per run and skipped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import re
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import aliased

from .config import Config
from .errors import ClinepipeError
from .store.models import CatalogMatch, Frame, Measurement, Star, ZeroPoint

log = logging.getLogger("clinepipe")

__all__ = ["SUSPECTED", "Suspect", "suspected_positions", "find_suspected_variables",
           "flag_suspected_variables", "recalibrate_frames", "choose_check_star",
           "resolve_targets", "write_night_aavso", "write_aavso_reports", "report_sections",
           "sanitise_name"]

#: ``Star.var_type`` of a star our own data shows to vary (not in the known-variable list)
SUSPECTED = "suspected"

#: check-star rule (see the module docstring)
CHECK_MIN_COVERAGE = 0.8      # measured on this fraction of the target's frames
CHECK_MIN_ENSEMBLE = 0.5      # in the ensemble on this fraction of those
CHECK_MAX_CHI2 = 2.0          # reduced chi-square within nights, every filter
CHECK_MAX_TRIED = 25          # candidates tested for constancy, in ranking order
#: neighbours in brightness for the suspected-variable test (mag), and how many are needed
NEIGHBOUR_DMAG = 0.75
MIN_NEIGHBOURS = 5
#: colour indices tried in this order for the check star
COLOUR_PAIRS = (("B", "V"), ("V", "R"), ("V", "I"), ("g", "r"), ("r", "i"), ("BP", "RP"),
                ("Bmag", "Vmag"))


def _session(engine):
    from .store.db import session_scope

    return session_scope(engine)


def _float(value):
    """A float for the database, None for NaN / missing."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _qc_bad(qc: str | None, excluded: set) -> bool:
    return bool(excluded & set(filter(None, (qc or "").split(";"))))


# ----------------------------------------------------------------------------- suspects

@dataclass(frozen=True)
class Suspect:
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
    from .catalogs import KnownVariables

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


def _chi2(mag: np.ndarray, err: np.ndarray) -> tuple[float, float, float]:
    """Weighted mean, reduced chi-square about it, rms."""
    w = 1.0 / err ** 2
    mean = float(np.sum(w * mag) / np.sum(w))
    chi2 = float(np.sum(((mag - mean) / err) ** 2) / (mag.size - 1))
    return mean, chi2, float(np.std(mag, ddof=1))


def _one_frame_outliers(mag: np.ndarray, err: np.ndarray, nsigma: float = 5.0) -> np.ndarray:
    """Single points (time-ordered) far off while both neighbours agree with the rest: a cosmic
    ray or a satellite, not variability, which lasts several exposures."""
    med = np.median(mag)
    scatter = 1.4826 * np.median(np.abs(mag - med))
    z = np.abs(mag - med) / np.sqrt(err ** 2 + scatter ** 2)
    calm_before = np.concatenate([[True], z[:-1] < nsigma / 2])
    calm_after = np.concatenate([z[1:] < nsigma / 2, [True]])
    return (z > nsigma) & calm_before & calm_after


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
        rows = s.execute(
            select(F.night, M.star_id, M.filter, F.jd_mid, M.mag, M.mag_err, F.qc,
                   Star.name, Star.var_type, Star.catalog_id, Star.ra, Star.dec)
            .join(F, F.id == M.frame_id).join(Star, Star.id == M.star_id)
            .where(F.night.in_(nights), M.mag.is_not(None), M.flags == 0,
                   Star.catalog_id.is_not(None))
            .order_by(F.night, M.star_id, M.filter, F.jd_mid)).all()
    info = {r[1]: (r[7], r[8], r[9], r[10], r[11]) for r in rows}
    # per (night, star, filter) -- contiguous in the query's order
    per_night: dict[str, dict[tuple[int, str], tuple]] = {}
    for (night, sid, f), group in groupby((r for r in rows if not _qc_bad(r[6], excluded)),
                                          key=lambda r: (r[0], r[1], r[2])):
        pts = list(group)
        if len(pts) < min_points:
            continue
        mag = np.array([r[4] for r in pts], dtype=float)
        err = np.array([max(r[5] or 0.0, 1e-4) for r in pts])
        keep = ~_one_frame_outliers(mag, err)
        if keep.sum() < min_points:
            continue
        mean, chi2, rms = _chi2(mag[keep], err[keep])
        per_night.setdefault(night, {})[(int(sid), str(f))] = (mean, chi2, rms, int(keep.sum()))
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


def _nights_of_runs(engine, run_ids) -> list[str]:
    with _session(engine) as s:
        return sorted(s.scalars(select(Frame.night).distinct().where(
            Frame.run_id.in_(list(run_ids)), Frame.kind == "light",
            Frame.night.is_not(None))).all())


def flag_suspected_variables(cfg: Config, engine, run_id: int, also_runs=()) -> list[Suspect]:
    """The run's step after the lights: find the suspected new variables of the nights this run
    (or the killed runs ``also_runs``) touched, mark them, and re-calibrate every frame that still
    has a suspected variable in its ensemble (also those a killed run left). Never raises: a
    failure is logged and costs nothing but this step."""
    found: list[Suspect] = []
    try:
        nights = _nights_of_runs(engine, [run_id, *also_runs])
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
            done = recalibrate_frames(cfg, engine, frame_ids)
            log.info("re-calibrated %d frame(s) without the suspected variable(s) in the ensemble",
                     done)
    except Exception:  # never cost the night's data
        log.exception("the search for suspected new variables failed")
    return found


def recalibrate_frames(cfg: Config, engine, frame_ids, context=None) -> int:
    """Fit the zero point of each frame again from its stored instrumental magnitudes and the
    catalog, with the current known and suspected variables left out of the ensemble, and
    rewrite its measurements' ``mag``, ``mag_err``, ``in_ensemble`` and its ``zero_points`` row in
    one transaction per frame. Returns how many frames were rewritten (a frame whose catalog is
    unavailable right now is left as it is and logged). QC flags of the nights are refreshed."""
    from .lightframe import MEASUREMENT_DTYPE
    from .finishing import update_qc
    from .lightstore import CalibrationContext, calibrate_measurements

    if context is None:
        context = CalibrationContext.load(cfg, engine)
    M = Measurement
    done = 0
    nights = set()
    for fid in sorted({int(f) for f in frame_ids}):
        with _session(engine) as s:
            frame = s.get(Frame, fid)
            if frame is None or frame.kind != "light":
                continue
            s.expunge(frame)
            rows = s.execute(select(M.id, M.x, M.y, M.ra, M.dec, M.flux, M.flux_err, M.background,
                                    M.inst_mag, M.inst_mag_err, M.fwhm, M.flags)
                             .where(M.frame_id == fid).order_by(M.id)).all()
        if not rows:
            continue
        m = np.zeros(len(rows), dtype=MEASUREMENT_DTYPE)
        for j, name in enumerate(("x", "y", "ra", "dec", "flux", "flux_err", "background",
                                  "inst_mag", "inst_mag_err", "fwhm")):
            m[name] = [np.nan if r[j + 1] is None else r[j + 1] for r in rows]
        m["x"] -= 1.0  # stored 1-based
        m["y"] -= 1.0
        m["flags"] = [r[11] or 0 for r in rows]
        calib = calibrate_measurements(cfg, frame, m, context)
        if calib.state == "waiting":
            log.info("%s: not re-calibrated now (%s)", frame.raw_path, calib.reason)
            continue
        with _session(engine) as s:
            s.execute(update(M), [{"id": r[0], "mag": _float(calib.mag[i]),
                                   "mag_err": _float(calib.mag_err[i]),
                                   "in_ensemble": bool(calib.in_ensemble[i])}
                                  for i, r in enumerate(rows)])
            zp = calib.zero_point
            if zp is None:
                s.query(ZeroPoint).filter(ZeroPoint.frame_id == fid).delete()
                s.execute(update(Frame).where(Frame.id == fid).values(
                    state=calib.state, stage=calib.stage, reason=calib.reason))
            else:
                values = dict(filter=frame.filter, catalog_band=calib.band, value=float(zp.value),
                              error=float(zp.error), n_used=int(zp.n_used),
                              n_candidates=int(zp.n_candidates),
                              scatter=_float(zp.scatter) or 0.0)
                row = s.scalars(select(ZeroPoint).where(ZeroPoint.frame_id == fid)).first()
                if row is None:
                    s.add(ZeroPoint(frame_id=fid, color_term=None, **values))
                else:
                    for k, v in values.items():
                        setattr(row, k, v)
                if frame.state != "calibrated":
                    s.execute(update(Frame).where(Frame.id == fid).values(
                        state="calibrated", stage=None, reason=None))
        done += 1
        nights.add(frame.night)
    if nights:
        update_qc(cfg, engine, sorted(n for n in nights if n))
    return done


# ----------------------------------------------------------------------------- check star

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
    (filter, night, mag, err) rows."""
    groups: dict[tuple, list] = {}
    for f, night, mag, err in rows:
        groups.setdefault((f, night), []).append((mag, max(err or 0.0, 1e-4)))
    total: dict[str, list] = {}
    for (f, _), pts in groups.items():
        if len(pts) < 2:
            continue
        mag = np.array([p[0] for p in pts])
        err = np.array([p[1] for p in pts])
        w = 1 / err ** 2
        mean = np.sum(w * mag) / np.sum(w)
        acc = total.setdefault(f, [0.0, 0])
        acc[0] += float(np.sum(((mag - mean) / err) ** 2))
        acc[1] += len(pts) - 1
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


# ----------------------------------------------------------------------------- targets

def sanitise_name(text: str) -> str:
    """A file name from a target name: letters, digits, ``.``, ``_``, ``+``, ``-``."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text).strip()).strip("._")
    return name or "target"


def resolve_targets(engine, targets, *, quiet: bool = False) -> list[tuple[str, int]]:
    """``[(target text, star id)]`` for the configured targets that match a star (a name, catalog
    id, star id or ``"RA DEC"``); the others are logged (once per call) and left out."""
    from .lightcurves import resolve_star

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


def write_night_aavso(cfg: Config, engine, night: str, *, resolved=None,
                      check_stars: dict | None = None) -> list[Path]:
    """One AAVSO Extended Format file per target measured on ``night``:
    ``archive/aavso/<night>/<target>.txt``; returns the files written. ``resolved`` (from
    :func:`resolve_targets`) and ``check_stars`` ({star id: check star id}) save the look-ups
    when several nights are written; by default they are made here."""
    from . import __version__
    from .store.export import AAVSO_FILTERS, export_aavso

    obscode = (cfg.aavso.obscode or "").strip()
    if not obscode:
        return []
    if resolved is None:
        resolved = resolve_targets(engine, cfg.aavso.targets)
    if not resolved:
        return []
    frames = _night_frames(cfg, engine, night)
    no_code = sorted({f or "" for _, f in frames if (f or "").strip().lower() not in AAVSO_FILTERS})
    if no_code:
        log.info("night %s: filter(s) %s have no AAVSO band code; left out of the AAVSO files",
                 night, ", ".join(repr(f) for f in no_code))
    frame_ids = [fid for fid, f in frames if (f or "").strip().lower() in AAVSO_FILTERS]
    if not frame_ids:
        return []
    check_stars = {} if check_stars is None else check_stars
    written = []
    for spec, sid in resolved:
        with _session(engine) as s:
            n = s.scalar(select(func.count()).select_from(Measurement).join(
                Frame, Frame.id == Measurement.frame_id).where(
                Measurement.star_id == sid, Measurement.mag.is_not(None),
                Measurement.flags == 0, Frame.night == night))
        if not n:
            log.info("AAVSO target %r has no calibrated measurement on night %s", spec, night)
            continue
        if sid not in check_stars:
            check_stars[sid] = choose_check_star(
                engine, sid, exclude_qc=tuple(cfg.qc.exclude_from_variability))
        out = cfg.paths.archive / "aavso" / night / f"{sanitise_name(spec)}.txt"
        rows = export_aavso(engine, out, obscode=obscode, star_ids=[sid],
                            check_star_id=check_stars[sid], software=f"clinepipe {__version__}",
                            frame_ids=frame_ids)
        log.info("AAVSO report of %s for night %s: %s (%d observation(s))", spec, night, out, rows)
        written.append(out)
    return written


def write_aavso_reports(cfg: Config, engine, run_id: int, also_runs=()) -> list[Path]:
    """The run's last step: the AAVSO files of every target for every night this run (or a
    killed run in ``also_runs``) touched. Never raises."""
    if not cfg.aavso.targets:
        return []
    written: list[Path] = []
    try:
        if not (cfg.aavso.obscode or "").strip():
            log.warning("[aavso] obscode is empty: no AAVSO files written (set it in %s)",
                        cfg.source_file or "the configuration")
            return []
        nights = _nights_of_runs(engine, [run_id, *also_runs])
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


# ----------------------------------------------------------------------------- morning report

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


def report_sections(engine, night: str | None, targets=()) -> list[str]:
    """HTML for the morning report: the targets' light curves (the night and the last 30 days)
    and the suspected new variables measured that night. Never raises (a failure becomes a line
    in the report)."""
    from .store.db import lightcurve

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
                    parts.append(f"<img alt='light curve of {html.escape(str(spec))}' "
                                 f"data-plot='target' src='data:image/png;base64,"
                                 f"{_target_plot(rows, jd0, jd1, str(spec))}'>")
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
            groups: dict[tuple, list] = {}
            for sid, cat, ra, dec, f, mag, err in rows:
                groups.setdefault((sid, cat, ra, dec, f), []).append((mag, max(err or 0, 1e-4)))
            parts.append("<h2>Suspected new variables</h2><p>Catalog stars that vary in our own "
                         "data and are in no known-variable list; they are left out of the "
                         "ensemble.</p><table><tr><th>star</th><th>catalog id</th><th>RA</th>"
                         "<th>Dec</th><th>filter</th><th>points</th><th>rms</th>"
                         "<th>χ²<sub>red</sub></th></tr>")
            for (sid, cat, ra, dec, f), pts in groups.items():
                mag = np.array([p[0] for p in pts])
                err = np.array([p[1] for p in pts])
                chi2 = _chi2(mag, err)[1] if mag.size > 1 else float("nan")
                rms = float(np.std(mag, ddof=1)) if mag.size > 1 else float("nan")
                parts.append(f"<tr><td>{sid}</td><td>{html.escape(cat or '')}</td>"
                             f"<td class='num'>{ra:.5f}</td><td class='num'>{dec:+.5f}</td>"
                             f"<td>{html.escape(f)}</td><td class='num'>{mag.size}</td>"
                             f"<td class='num'>{rms:.3f}</td><td class='num'>{chi2:.1f}</td></tr>")
            parts.append("</table>")
    except Exception:
        log.exception("the targets section of the report of night %s failed", night)
        parts.append("<p class='flag'>The targets section could not be made (see the log).</p>")
    return parts
