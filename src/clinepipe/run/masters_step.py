"""The masters step of a run: build masters whose inputs changed; choose the nearest valid master for a light."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from sqlalchemy import select, update

from clinepipe import __version__
from clinepipe.config import Config
from clinepipe.ingest.frame_info import FrameInfo
from clinepipe.store.models import Frame, Master
from clinepipe.store.models import utc_now as _now

log = logging.getLogger("clinepipe")


def frame_info(frame: Frame, archive: Path) -> FrameInfo:
    """Rebuild the FrameInfo of a stored frame (its archive copy as the path)."""
    jd_start = frame.jd_mid - (frame.exptime or 0.0) / 2.0 / 86400.0
    return FrameInfo(path=archive / frame.archive_path, kind=frame.kind, binning=frame.binning,
                     filter=frame.filter, exptime=frame.exptime, ccd_temp=frame.ccd_temp,
                     date_obs=frame.date_obs, jd_start=jd_start, jd_mid=frame.jd_mid,
                     night=frame.night, shape=(frame.naxis2, frame.naxis1), xorg=frame.xorg,
                     yorg=frame.yorg, gain=frame.gain, object=frame.object)


def masters_stage(cfg: Config, engine, run_id: int, pool=None) -> int:
    """Build the masters of every calibration group (night + what its stacker groups by,
    :data:`clinepipe.ccd.master_groups.STACKERS`) that changed.

    Bias first, then darks (need a bias), then flats (need both), each on the nearest valid
    master of what it needs (:func:`clinepipe.ccd.master_groups.nearest_master`). A group is
    rebuilt only when its set of input files, the reduction mode or the masters it had to be
    made without (a flat with ``[reduction] without_masters = "measure"``) differ from its
    latest master's. ``pool``: a :class:`~clinepipe.run.parallel.DaskPool` on which the
    groups of each kind are built at once, one master per group (else here, one by one);
    the database is written here, in the same order either way.
    """
    from clinepipe.ccd.master_groups import (
        STACKERS,
        group_calibration_frames,
        input_key,
    )
    from clinepipe.run.cluster_jobs import make_master, run_jobs
    from clinepipe.run.master_nights import candidate_nights
    from clinepipe.store.db import session_scope

    archive = cfg.paths.archive
    built = 0
    changed: dict = {}
    for kind in STACKERS:
        with session_scope(engine) as s:
            nights = changed[kind] = candidate_nights(s, cfg, kind, changed)
            frames = _calibration_frames(s, cfg.site.telescope, kind, nights)
            s.expunge_all()
        rows = {archive / f.archive_path: f for f in frames if in_archive(archive, f.archive_path)}
        groups = group_calibration_frames([frame_info(f, archive) for f in rows.values()],
                                          cfg.camera.temp_tolerance, by_night=True)
        # the masters of the kinds before this one are all built by now
        chooser = MasterChooser(engine, archive, cfg.site.telescope)
        todo = []  # (group, members, key, needs, jd)
        for group, infos in groups.items():
            members = [rows[i.path] for i in infos]
            jd = float(np.mean([f.jd_mid for f in members]))
            needs = {need: chooser.choose(need, group.binning, None, jd,
                                          cfg.reduction.max_master_age_days,
                                          ccd_temp=_mean([f.ccd_temp for f in members]),
                                          temp_tolerance=cfg.camera.temp_tolerance)
                     for need in STACKERS[kind].needs}
            # a master made without one of its masters ("measure") is made again once it exists
            lacking = "+".join(k for k, m in needs.items() if m is None)
            key = input_key(cfg.reduction.mode + (f"|without {lacking}" if lacking else ""),
                            kind, [f.sha256 for f in members])
            with session_scope(engine) as s:
                exists = s.scalars(select(Master.id).where(Master.input_key == key)).first()
            if exists is not None:  # same inputs and mode as a master already built
                continue
            todo.append((group, members, key, needs, jd))
        jobs = [_master_job(cfg, group, members, key, needs) for group, members, key, needs, _
                in todo]
        outcomes = run_jobs(make_master, jobs, pool, what=f"{kind} masters")
        for (_, members, key, _, jd), job, outcome in zip(todo, jobs, outcomes):
            built += _record_master(cfg, engine, run_id, job, members, key, jd, outcome)
    return built


def _master_job(cfg: Config, group, members: list[Frame], key: str, needs: dict):
    """The :class:`~clinepipe.run.cluster_jobs.MasterJob` of one group on the masters it
    ``needs`` (``Master`` rows, None where there is none)."""
    from clinepipe.run.cluster_jobs import MasterJob

    archive = cfg.paths.archive
    kind, night, binning, filt = group.kind, group.night, group.binning, group.filter
    name = {"bias": "bias_master.fits", "dark": "dark_master.fits",
            "flat": f"flat_master_{filt}.fits"}[kind]
    rel = Path("masters") / night / f"binning{binning}" / f"{key[:8]}_{name}"
    provenance = {"night": night, "software_version": __version__,
                  **{k: v.path for k, v in needs.items() if v is not None}}
    if any(v is None for v in needs.values()):
        provenance["made without"] = ", ".join(k for k, v in needs.items() if v is None)
    return MasterJob(kind=kind, night=night, binning=binning, filter=filt,
                     paths=tuple(archive / f.archive_path for f in members),
                     needs={k: m and archive / m.path for k, m in needs.items()},
                     inputs={archive / f.archive_path: (f.raw_path, f.sha256) for f in members},
                     provenance=provenance, output=archive / rel, camera=cfg.camera,
                     reduction=cfg.reduction)


#: the states of calibration frames a master may be made of
_STACKABLE = ("ingested", "used", "rejected", "waiting")


def _calibration_frames(s, telescope: str, kind: str, nights) -> list[Frame]:
    """The telescope's calibration frames of ``kind`` a master may be made of, in ``nights``
    (and those without a night), or in every night (``nights`` None), in session ``s``.

    With nights, two lookups by (telescope, kind, night) and the state judged here: with the
    state in the query, or one ``night IN (...) OR night IS NULL``, SQLite walks every frame
    of the kind in the archive (thousands of old ``used`` ones) instead (revision 0009)."""
    mine = (Frame.telescope == telescope, Frame.kind == kind)
    if nights is None:
        return list(s.scalars(select(Frame).where(*mine, Frame.state.in_(_STACKABLE))).all())
    found = list(s.scalars(select(Frame).where(*mine, Frame.night.is_(None))).all())
    nights = sorted(nights)
    for lo in range(0, len(nights), 500):
        found += s.scalars(select(Frame).where(*mine, Frame.night.in_(nights[lo:lo + 500]))).all()
    return [f for f in found if f.state in _STACKABLE]


def _record_master(cfg, engine, run_id, job, members, key, jd: float, outcome) -> int:
    """Record the master ``job`` made (its row; its inputs ``used`` or ``rejected``), or the
    reason its frames wait or failed; 1 when a master was built."""
    from clinepipe.store.db import session_scope

    archive = cfg.paths.archive
    by_path = {archive / f.archive_path: f for f in members}
    label = (f"{job.kind} frames for binning {job.binning}"
             + (f" ({job.filter})" if job.filter else "") + f" on {job.night}")
    if outcome.state == "waiting":
        _set_states(engine, members, "waiting", "masters", outcome.reason)
        log.info("%s: %s", label, outcome.message)
        return 0
    if outcome.state == "failed":
        _set_states(engine, members, "failed", "masters", outcome.reason)
        log.warning("%s: %s", label, outcome.message)
        return 0
    rel = job.output.relative_to(archive)
    inputs = [{"raw_path": by_path[p].raw_path, "sha256": by_path[p].sha256}
              for p in outcome.used]
    with session_scope(engine) as s:
        s.add(Master(telescope=cfg.site.telescope, kind=job.kind, binning=job.binning,
                     filter=job.filter, exptime=outcome.exptime if job.kind == "dark" else None,
                     ccd_temp=_mean([by_path[p].ccd_temp for p in outcome.used]),
                     night=job.night, jd=jd, shape_y=outcome.shape[0], shape_x=outcome.shape[1],
                     path=rel.as_posix(), mode=job.reduction.mode, n_frames=len(outcome.used),
                     inputs=json.dumps(inputs), input_key=key, software_version=__version__,
                     run_id=run_id, created_at=_now()))
        for p in outcome.used:
            s.execute(update(Frame).where(Frame.id == by_path[p].id).values(
                state="used", stage=None, reason=None, updated_at=_now()))
        for p, reason in outcome.rejected.items():
            s.execute(update(Frame).where(Frame.id == by_path[Path(p)].id).values(
                state="rejected", stage="masters", reason=reason, updated_at=_now()))
    log.info("master %s built from %d frame(s) (%d rejected)", rel, len(outcome.used),
             len(outcome.rejected))
    return 1


def _mean(values):
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _set_states(engine, frames, state, stage, reason) -> None:
    from clinepipe.store.db import session_scope

    with session_scope(engine) as s:
        s.execute(update(Frame).where(Frame.id.in_([f.id for f in frames])).values(
            state=state, stage=stage, reason=reason, updated_at=_now()))


def in_archive(archive: Path, rel: str | None) -> bool:
    """Whether a frame's archive copy (or a master) is a file of this run's ``archive``.

    A run works only on its own telescope's rows (the ``telescope`` column); this also leaves
    out a row whose file is missing from the archive (a failed ingest, a deleted copy)."""
    return bool(rel) and (archive / rel).is_file()


class MasterChooser:
    """The database side of :func:`clinepipe.ccd.master_groups.nearest_master`, for one step of a
    run: the masters of each (kind, binning, filter) of ``telescope`` whose file is in
    ``archive`` are read from the database once, not three queries per light (no master of
    those kinds is built meanwhile)."""

    def __init__(self, engine, archive: Path | None, telescope: str = ""):
        self.engine, self.archive, self.telescope = engine, archive, telescope
        self._rows: dict[tuple, list[Master]] = {}

    def choose(self, kind: str, binning: int, filt: str | None, jd: float, max_age_days: float,
               ccd_temp: float | None = None, temp_tolerance: float = 0.0) -> Master | None:
        """The nearest valid master of ``kind`` for ``jd`` (days), or None; ``filt`` for
        flats, ``ccd_temp``/``temp_tolerance`` (°C) for darks."""
        from clinepipe.ccd.master_groups import nearest_master

        # only masters within the age limit can be chosen: read those of a window of days
        # around ``jd`` (one query per window, not every master of ten years)
        window = int(jd // _WINDOW_DAYS)
        key = (kind, binning, filt, window, max_age_days)
        if key not in self._rows:
            lo = window * _WINDOW_DAYS - max_age_days - 1.0
            hi = (window + 1) * _WINDOW_DAYS + max_age_days + 1.0
            self._rows[key] = _master_rows(self.engine, kind, binning, filt, self.telescope,
                                           self.archive, (lo, hi))
        return nearest_master(self._rows[key], kind, jd, max_age_days, ccd_temp=ccd_temp,
                              temp_tolerance=temp_tolerance)


#: days of the windows of master times :class:`MasterChooser` reads at once
_WINDOW_DAYS = 30.0


def _master_rows(engine, kind: str, binning: int, filt: str | None, telescope: str,
                 archive: Path | None, jd_range: tuple[float, float]) -> list[Master]:
    from clinepipe.store.db import session_scope

    with session_scope(engine) as s:
        q = select(Master).where(Master.telescope == telescope, Master.kind == kind,
                                 Master.binning == binning, Master.jd.between(*jd_range))
        if filt is not None:
            q = q.where(Master.filter == filt)
        rows = s.scalars(q).all()
        s.expunge_all()
    if archive is not None:
        rows = [m for m in rows if in_archive(archive, m.path)]
    return rows
