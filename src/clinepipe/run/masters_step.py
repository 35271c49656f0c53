"""The masters step of a run: build masters whose inputs changed; choose the nearest valid master for a light."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from pathlib import Path
import numpy as np
from sqlalchemy import select, update
from clinepipe import __version__
from clinepipe.config import Config
from clinepipe.errors import (BadInput, MissingCalibration, Waiting)
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
    """Build the masters of every calibration group (night, binning, filter) that changed.

    Bias first, then darks (need a bias), then flats (need both). A group is rebuilt only
    when its set of input files (or the reduction mode) differs from its latest master.
    """
    from clinepipe.store.db import session_scope

    built = 0
    for kind in CALIBRATION_KINDS:
        with session_scope(engine) as s:
            frames = s.scalars(select(Frame).where(
                Frame.telescope == cfg.site.telescope, Frame.kind == kind,
                Frame.state.in_(("ingested", "used", "rejected", "waiting")))).all()
            s.expunge_all()
        frames = [f for f in frames if in_archive(cfg.paths.archive, f.archive_path)]
        from clinepipe.ccd.masters import temperature_bucket

        groups: dict[tuple, list[Frame]] = defaultdict(list)
        for f in frames:  # darks also by CCD temperature: dark current doubles every ~6 degC
            temp = temperature_bucket(f.ccd_temp, cfg.camera.temp_tolerance) if kind == "dark" else None
            groups[(f.night, f.binning, f.filter if kind == "flat" else None, temp)].append(f)
        for (night, binning, filt, _), members in sorted(groups.items(), key=lambda kv: str(kv[0])):
            key = _group_key(cfg.reduction.mode, kind, members)
            with session_scope(engine) as s:
                exists = s.scalars(select(Master.id).where(Master.input_key == key)).first()
            if exists is not None:  # same inputs and mode as a master already built
                continue
            built += _build_master(cfg, engine, run_id, kind, night, binning, filt, members, key)
    return built


def _group_key(mode: str, kind: str, members: list[Frame]) -> str:
    digest = hashlib.sha256(f"{mode}|{kind}|".encode())
    for sha in sorted(f.sha256 for f in members):
        digest.update(sha.encode())
    return digest.hexdigest()


def _build_master(cfg, engine, run_id, kind, night, binning, filt, members, key) -> int:
    from clinepipe.ccd.masters import build_bias, build_dark, build_flat, write_master
    from clinepipe.store.db import session_scope

    archive = cfg.paths.archive
    paths = [archive / f.archive_path for f in members]
    by_path = {archive / f.archive_path: f for f in members}
    jd = float(np.mean([f.jd_mid for f in members]))
    label = f"{kind} frames for binning {binning}" + (f" ({filt})" if filt else "") + f" on {night}"
    red = cfg.reduction
    try:
        if kind == "bias":
            result = build_bias(paths, min_frames=red.min_frames, chunk_rows=red.chunk_rows)
            inputs_used = {}
        else:
            bias = choose_master(engine, "bias", binning, None, jd, red.max_master_age_days,
                                 archive, telescope=cfg.site.telescope)
            if bias is None:
                raise MissingCalibration(f"waiting for calibration: no bias for binning {binning}")
            if kind == "dark":
                result = build_dark(paths, archive / bias.path, min_frames=red.min_frames,
                                    chunk_rows=red.chunk_rows)
                inputs_used = {"bias": bias}
            else:
                dark = choose_master(engine, "dark", binning, None, jd,
                                     red.max_master_age_days, archive,
                                     ccd_temp=_mean([f.ccd_temp for f in members]),
                                     temp_tolerance=cfg.camera.temp_tolerance,
                                     telescope=cfg.site.telescope)
                if dark is None:
                    raise MissingCalibration(f"waiting for calibration: no dark for binning {binning}")
                result = build_flat(paths, archive / bias.path, archive / dark.path, dark.exptime,
                                    mode=red.mode, min_frames=red.min_frames,
                                    chunk_rows=red.chunk_rows, saturation=cfg.camera.saturation)
                inputs_used = {"bias": bias, "dark": dark}
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
                  **{k: v.path for k, v in inputs_used.items()}}
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


def choose_master(engine, kind: str, binning: int, filt: str | None, jd: float,
                  max_age_days: float, archive: Path | None = None, ccd_temp: float | None = None,
                  temp_tolerance: float = 0.0, telescope: str = "") -> Master | None:
    """The master of ``telescope`` nearest in time to ``jd`` within the allowed age (latest
    build per group); with ``archive``, only masters whose file is in that archive; with
    ``ccd_temp``, masters within ``temp_tolerance`` of it are preferred (darks)."""
    rows = _master_rows(engine, kind, binning, filt, telescope, archive)
    return _nearest_master(rows, kind, jd, max_age_days, ccd_temp, temp_tolerance)


class MasterChooser:
    """:func:`choose_master` for the lights of one run: the masters of each (kind, binning,
    filter) are read from the database once, not three queries per light (the masters stage
    is over, so they do not change meanwhile)."""

    def __init__(self, engine, archive: Path | None, telescope: str = ""):
        self.engine, self.archive, self.telescope = engine, archive, telescope
        self._rows: dict[tuple, list[Master]] = {}

    def choose(self, kind: str, binning: int, filt: str | None, jd: float, max_age_days: float,
               ccd_temp: float | None = None, temp_tolerance: float = 0.0) -> Master | None:
        key = (kind, binning, filt)
        if key not in self._rows:
            self._rows[key] = _master_rows(self.engine, kind, binning, filt, self.telescope,
                                           self.archive)
        return _nearest_master(self._rows[key], kind, jd, max_age_days, ccd_temp, temp_tolerance)


def _master_rows(engine, kind: str, binning: int, filt: str | None, telescope: str,
                 archive: Path | None) -> list[Master]:
    from clinepipe.store.db import session_scope

    with session_scope(engine) as s:
        q = select(Master).where(Master.telescope == telescope, Master.kind == kind,
                                 Master.binning == binning)
        if filt is not None:
            q = q.where(Master.filter == filt)
        rows = s.scalars(q).all()
        s.expunge_all()
    if archive is not None:
        rows = [m for m in rows if in_archive(archive, m.path)]
    return rows


def _nearest_master(rows: list[Master], kind: str, jd: float, max_age_days: float,
                    ccd_temp: float | None, temp_tolerance: float) -> Master | None:
    from clinepipe.ccd.masters import temperature_bucket

    rows = [m for m in rows if abs(m.jd - jd) <= max_age_days]
    if not rows:
        return None
    latest: dict[tuple, Master] = {}
    for m in rows:  # a night's group rebuilt later supersedes its earlier master
        group = (m.night, temperature_bucket(m.ccd_temp, temp_tolerance) if kind == "dark" else None)
        if group not in latest or m.id > latest[group].id:
            latest[group] = m
    candidates = list(latest.values())
    if ccd_temp is not None and temp_tolerance > 0:
        close = [m for m in candidates
                 if m.ccd_temp is not None and abs(m.ccd_temp - ccd_temp) <= temp_tolerance]
        candidates = close or candidates
    return min(candidates, key=lambda m: (abs(m.jd - jd), -m.id))


CALIBRATION_KINDS = ("bias", "dark", "flat")
