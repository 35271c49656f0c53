"""The masters step of a run: build masters whose inputs changed; choose the nearest valid master for a light."""

from __future__ import annotations

import json
import logging
from pathlib import Path
import numpy as np
from sqlalchemy import select, update
from clinepipe import __version__
from clinepipe.config import Config
from clinepipe.errors import BadInput, Waiting
from clinepipe.ingest.frame_info import FrameInfo
from clinepipe.store.models import Frame, Master, utc_now as _now
log = logging.getLogger("clinepipe")


def frame_info(frame: Frame, archive: Path) -> FrameInfo:
    """Rebuild the FrameInfo of a stored frame (its archive copy as the path)."""
    jd_start = frame.jd_mid - (frame.exptime or 0.0) / 2.0 / 86400.0
    return FrameInfo(path=archive / frame.archive_path, kind=frame.kind, binning=frame.binning,
                     filter=frame.filter, exptime=frame.exptime, ccd_temp=frame.ccd_temp,
                     date_obs=frame.date_obs, jd_start=jd_start, jd_mid=frame.jd_mid,
                     night=frame.night, shape=(frame.naxis2, frame.naxis1), xorg=frame.xorg,
                     yorg=frame.yorg, gain=frame.gain, object=frame.object)


def masters_stage(cfg: Config, engine, run_id: int) -> int:
    """Build the masters of every calibration group (night + what its stacker groups by,
    :data:`clinepipe.ccd.masters.STACKERS`) that changed.

    Bias first, then darks (need a bias), then flats (need both), each on the nearest valid
    master of what it needs (:func:`clinepipe.ccd.masters.nearest_master`). A group is
    rebuilt only when its set of input files, the reduction mode or the masters it had to be
    made without (a flat with ``[reduction] without_masters = "measure"``) differ from its
    latest master's.
    """
    from clinepipe.ccd.masters import STACKERS, group_calibration_frames, input_key
    from clinepipe.store.db import session_scope

    from clinepipe.run.master_nights import candidate_nights

    archive = cfg.paths.archive
    built = 0
    changed: dict = {}
    for kind in STACKERS:
        with session_scope(engine) as s:
            nights = changed[kind] = candidate_nights(s, cfg, kind, changed)
            query = select(Frame).where(
                Frame.telescope == cfg.site.telescope, Frame.kind == kind,
                Frame.state.in_(("ingested", "used", "rejected", "waiting")))
            if nights is not None:  # only the groups that can have changed (issue #20)
                query = query.where(Frame.night.in_(nights) | Frame.night.is_(None))
            frames = s.scalars(query).all()
            s.expunge_all()
        rows = {archive / f.archive_path: f for f in frames if in_archive(archive, f.archive_path)}
        groups = group_calibration_frames([frame_info(f, archive) for f in rows.values()],
                                          cfg.camera.temp_tolerance, by_night=True)
        # the masters of the kinds before this one are all built by now
        chooser = MasterChooser(engine, archive, cfg.site.telescope)
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
            built += _build_master(cfg, engine, run_id, group, members, key, needs, jd)
    return built


def _build_master(cfg, engine, run_id, group, members, key, needs: dict, jd: float) -> int:
    """Build, write and record the master of one group on the masters it ``needs``
    (``Master`` rows, None where there is none)."""
    from clinepipe.ccd.masters import build_master, write_master
    from clinepipe.store.db import session_scope

    kind, night, binning, filt = group.kind, group.night, group.binning, group.filter
    archive = cfg.paths.archive
    paths = [archive / f.archive_path for f in members]
    by_path = {archive / f.archive_path: f for f in members}
    label = f"{kind} frames for binning {binning}" + (f" ({filt})" if filt else "") + f" on {night}"
    red = cfg.reduction
    try:
        result = build_master(kind, paths, {k: m and archive / m.path for k, m in needs.items()},
                              binning=binning, camera=cfg.camera, reduction=red, mode=red.mode)
    except Waiting as exc:
        _set_states(engine, members, "waiting", "masters", exc.reason)
        log.info("%s: %s", label, exc.reason)
        return 0
    except BadInput as exc:
        _set_states(engine, members, "failed", "masters", exc.reason)
        log.warning("%s: %s", label, exc.message)
        return 0

    name = {"bias": "bias_master.fits", "dark": "dark_master.fits",
            "flat": f"flat_master_{filt}.fits"}[kind]
    rel = Path("masters") / night / f"binning{binning}" / f"{key[:8]}_{name}"
    inputs = [{"raw_path": by_path[p].raw_path, "sha256": by_path[p].sha256} for p in result.used]
    provenance = {"inputs": inputs, "night": night, "software_version": __version__,
                  **{k: v.path for k, v in needs.items() if v is not None}}
    if any(v is None for v in needs.values()):
        provenance["made without"] = ", ".join(k for k, v in needs.items() if v is None)
    write_master(archive / rel, result, kind=kind, mode=red.mode, binning=binning, filter=filt,
                 provenance=provenance)
    shape = result.data.shape
    with session_scope(engine) as s:
        s.add(Master(telescope=cfg.site.telescope, kind=kind, binning=binning, filter=filt,
                     exptime=getattr(result, "exptime", None) if kind == "dark" else None,
                     ccd_temp=_mean([by_path[p].ccd_temp for p in result.used]),
                     night=night, jd=jd, shape_y=shape[0], shape_x=shape[1], path=rel.as_posix(),
                     mode=red.mode, n_frames=len(result.used), inputs=json.dumps(inputs),
                     input_key=key, software_version=__version__, run_id=run_id,
                     created_at=_now()))
        for p in result.used:
            s.execute(update(Frame).where(Frame.id == by_path[p].id).values(
                state="used", stage=None, reason=None, updated_at=_now()))
        for p, reason in result.rejected.items():
            s.execute(update(Frame).where(Frame.id == by_path[Path(p)].id).values(
                state="rejected", stage="masters", reason=reason, updated_at=_now()))
    log.info("master %s built from %d frame(s) (%d rejected)", rel, len(result.used),
             len(result.rejected))
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
    """The database side of :func:`clinepipe.ccd.masters.nearest_master`, for one step of a
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
        from clinepipe.ccd.masters import nearest_master

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
