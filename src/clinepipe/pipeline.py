"""The daily job: every stage, for every new file, incrementally.

    run_pipeline(cfg)
      ├─ ingest_stage     new files in ``incoming`` → archive copies + ``frames`` rows
      ├─ masters_stage    calibration groups that changed → master FITS + ``masters`` rows
      ├─ lights_stage     each light not yet done, in time order:
      │     lightframe.process_light (reduce → sources → WCS → photometry; Dask-able)
      │     then, in this process: catalog match, ensemble zero point, star
      │     identities, measurements (a frame never split between transactions; up to
      │     ``[database] commit_lights`` frames per commit)
      └─ finish           run summary, known-variable names, star counts

Every frame ends in a named state; a frame that cannot be finished gets a reason and the
night goes on. Each frame's results are written whole in one transaction (several frames
share a commit), so a run killed at any point and started again, which redoes the frames
whose commit was lost, ends with the same database.

Several telescopes may share the database: a run works on the frames and masters of its own
telescope (``[site] telescope``, the ``telescope`` column) only, so two telescopes may both have
a ``20260314/Light_001.fit``; stars are shared.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from . import __version__
from .config import Config
from .errors import (BadInput, CatalogUnavailable, ClinepipeError, MissingCalibration,
                     StorageError, Waiting, storage_error)
from .frames import FrameInfo
from .lightframe import LightResult, LightTask, MasterRef, process_light
from .lock import RunLock
from .store.models import CatalogMatch, Frame, Master, Measurement, Run, Star, ZeroPoint

log = logging.getLogger("clinepipe")

CALIBRATION_KINDS = ("bias", "dark", "flat")
#: PostgreSQL advisory-lock key held while a frame's stars are identified (ASCII "clinestr")
STARS_LOCK_KEY = 0x636C696E65737472
#: states a light can be picked up from on a normal run
PENDING_LIGHT_STATES = ("ingested", "waiting", "reduced", "measured")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class RunSummary:
    run_id: int
    new_files: int = 0
    masters_built: int = 0
    lights_done: int = 0
    states: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)  # (raw_path, state, stage, reason)
    elapsed: float = 0.0


def run_pipeline(cfg: Config, *, reprocess: bool = False, workers: int | None = None,
                 settle_seconds: float | None = None, progress=None) -> RunSummary:
    """Run every stage on whatever is new; returns a summary. Raises LockHeld (exit 3), and
    StorageError when the archive cannot be written (full disk…): the run stops there, and the
    next one resumes."""
    from .store.db import open_database, session_scope

    t0 = time.perf_counter()
    archive = cfg.paths.archive
    with _storage_errors(archive):
        archive.mkdir(parents=True, exist_ok=True)
    with _storage_errors(archive), RunLock(archive / "clinepipe.lock") as lock:
        handler = _attach_log_file(archive / "logs" / "clinepipe.log")
        run_id = None
        pool = None
        engine = None
        try:
            engine = open_database(cfg.database.url)
            with session_scope(engine) as s:
                run = Run(started_at=_now(), software_version=__version__,
                          telescope=cfg.site.telescope, config_text=cfg.source_text,
                          config_sha256=hashlib.sha256(cfg.source_text.encode()).hexdigest(),
                          host=socket.gethostname(), pid=os.getpid(), status="running")
                s.add(run)
                s.flush()
                run_id = run.id
            log.info("run %d started (clinepipe %s)", run_id, __version__)
            killed = _close_killed_runs(engine, run_id, lock.previous_holder)
            adopt_untagged_rows(cfg, engine)
            summary = RunSummary(run_id)
            settle = cfg.paths.settle_seconds if settle_seconds is None else settle_seconds
            summary.new_files = ingest_stage(cfg, engine, run_id, settle, progress)
            pool = _start_pool(cfg, engine, workers, reprocess)  # comes up while masters build
            summary.masters_built = masters_stage(cfg, engine, run_id)
            summary.lights_done = lights_stage(cfg, engine, run_id, reprocess=reprocess,
                                               workers=workers, progress=progress, pool=pool)
            if pool is not None:  # shuts down while the run finishes
                pool.close(wait=False)
            update_qc(cfg, engine)
            refresh_star_counts(engine)
            from .aavso import flag_suspected_variables, write_aavso_reports

            flag_suspected_variables(cfg, engine, run_id, also_runs=killed)  # never raises
            fit_colour_terms(cfg, engine, run_id, also_runs=killed)
            write_night_reports(cfg, engine, run_id, also_runs=killed)
            write_aavso_reports(cfg, engine, run_id, also_runs=killed)  # never raises
            summary.states, summary.failures = frame_states(engine, cfg.site.telescope)
            summary.elapsed = time.perf_counter() - t0
            with session_scope(engine) as s:
                s.execute(update(Run).where(Run.id == run_id).values(
                    finished_at=_now(), status="finished",
                    summary=json.dumps({"states": summary.states, "new_files": summary.new_files,
                                        "masters_built": summary.masters_built,
                                        "lights_done": summary.lights_done,
                                        "failures": len(summary.failures)})))
            log.info("run %d finished in %.1f s: %s", run_id, summary.elapsed,
                     ", ".join(f"{k} {v}" for k, v in sorted(summary.states.items())))
            return summary
        except BaseException as exc:
            stop = storage_error(exc, getattr(exc, "filename", None) or archive)
            if stop is not None:
                log.error("%s", stop.message)
            _mark_run(engine, run_id, "crashed", _why(stop or exc))  # best effort
            raise
        finally:
            if pool is not None:
                pool.close()
            logging.getLogger("clinepipe").removeHandler(handler)
            handler.close()


def _use_dask(cfg: Config, workers: int | None) -> bool:
    return cfg.execution.scheduler == "dask" or (workers is not None and workers > 1)


def _start_pool(cfg: Config, engine, workers: int | None, reprocess: bool = False):
    """The Dask pool of a run that uses Dask and has lights to do (its workers come up in the
    background), else None.

    Started after ingest: the worker processes' start-up would compete with ingest for the
    CPUs, while building the masters leaves them room."""
    from .store.db import session_scope

    if not _use_dask(cfg, workers):
        return None
    states = PENDING_LIGHT_STATES + (("calibrated", "failed") if reprocess else ())
    with session_scope(engine) as s:
        pending = s.scalars(select(Frame.id).where(Frame.telescope == cfg.site.telescope,
                                                   Frame.kind == "light",
                                                   Frame.state.in_(states)).limit(1)).first()
    if pending is None:
        return None
    from .parallel import DaskPool

    return DaskPool(workers or cfg.execution.workers, cfg.execution.address,
                    warm=_warm_worker)


def _warm_worker() -> None:
    """Run on each new Dask worker while the main process ingests: import what the per-light
    work needs and load the time tables of the BJD computation (half a second on a cold
    process), so the first light costs what the others do."""
    from . import astrometry, lightframe, photometry, qc, reduce, sky  # noqa: F401

    sky.bjd_tdb(2460000.5, 10.0, 20.0, 0.0, 0.0, 0.0)


def _close_killed_runs(engine, run_id: int, previous_holder: str | None) -> list[int]:
    """Mark as ``crashed`` the run(s) of this archive that were killed (the lock file still
    named their ``pid N on HOST``); returns their ids, whose nights' reports are written again."""
    from .store.db import session_scope

    if not previous_holder:
        return []
    try:
        _, pid, _, host = previous_holder.split(" ", 3)
        pid = int(pid)
    except ValueError:
        return []
    with session_scope(engine) as s:
        ids = list(s.scalars(select(Run.id).where(Run.status == "running", Run.pid == pid,
                                                  Run.host == host, Run.id != run_id)))
        if ids:
            s.execute(update(Run).where(Run.id.in_(ids)).values(status="crashed"))
    if ids:
        log.warning("run(s) %s of this archive were killed (%s); this run finishes their work",
                    ", ".join(map(str, ids)), previous_holder)
    return ids


def adopt_untagged_rows(cfg: Config, engine) -> int:
    """Give this telescope the frames and masters that carry no telescope ("", the rows of a
    database from before revision 0002) but are evidently its own: their archive copy is in this
    run's archive (a frame that never reached the archive: its file is in this incoming folder).

    Telescopes that shared a database before telescope names existed each claim their own rows
    on their first run with ``[site] telescope`` set, instead of ingesting every file again.
    Returns how many rows were claimed."""
    from .store.db import session_scope

    telescope = cfg.site.telescope
    if not telescope:
        return 0
    archive, incoming = cfg.paths.archive, cfg.paths.incoming
    with session_scope(engine) as s:
        frames = s.execute(select(Frame.id, Frame.raw_path, Frame.archive_path)
                           .where(Frame.telescope == "")).all()
        masters = s.execute(select(Master.id, Master.path).where(Master.telescope == "")).all()
        taken = set(s.scalars(select(Frame.raw_path).where(Frame.telescope == telescope)))
        frame_ids = [fid for fid, raw, copy in frames if raw not in taken and (
            in_archive(archive, copy) if copy else (incoming / raw).is_file())]
        master_ids = [mid for mid, path in masters if in_archive(archive, path)]
        for chunk in _chunks(frame_ids):
            s.execute(update(Frame).where(Frame.id.in_(chunk)).values(telescope=telescope))
        for chunk in _chunks(master_ids):
            s.execute(update(Master).where(Master.id.in_(chunk)).values(telescope=telescope))
    if frame_ids or master_ids:
        log.info("telescope %r: claimed %d frame(s) and %d master(s) recorded without a telescope",
                 telescope, len(frame_ids), len(master_ids))
    return len(frame_ids) + len(master_ids)


def _chunks(ids: list[int], size: int = 500):
    """``ids`` in slices small enough for any database's limit on bound parameters."""
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


@contextlib.contextmanager
def _storage_errors(archive: Path):
    """Turn an OSError that means "the archive cannot take our files" (full disk, quota,
    read-only, permissions) into one :class:`~clinepipe.errors.StorageError` sentence: the run
    stops there (per-frame transactions and atomic files leave nothing half done), and the
    next run resumes."""
    try:
        yield
    except OSError as exc:
        stop = storage_error(exc, exc.filename or archive)
        if stop is None:
            raise
        raise stop from exc
    except DBAPIError as exc:  # SQLite's "database or disk is full"
        if "disk is full" not in str(exc.orig):
            raise
        raise StorageError("cannot write the database: the disk is full (make room, then run "
                           "again: nothing is lost, the next run resumes where this one "
                           "stopped).", reason="cannot write: disk full") from exc


def _mark_run(engine, run_id: int | None, status: str, error: str = "") -> None:
    """Best effort: record how a run ended, and why it stopped (``summary`` JSON ``error``,
    shown by ``clinepipe status``); the database may be what failed."""
    from .store.db import session_scope

    if engine is None or run_id is None:
        return
    try:
        with session_scope(engine) as s:
            s.execute(update(Run).where(Run.id == run_id).values(
                finished_at=_now(), status=status,
                summary=json.dumps({"error": error}) if error else ""))
    except Exception:
        pass


def _why(exc: BaseException) -> str:
    """One line on why a run stopped."""
    if isinstance(exc, ClinepipeError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"internal error ({type(exc).__name__}: {exc})"


class _LogFile(logging.FileHandler):
    """The run's log file; when it cannot be written (a full disk) it says so once on stderr
    instead of printing a traceback for every record."""

    _warned = False

    def handleError(self, record) -> None:
        if not self._warned:
            self._warned = True
            exc = sys.exc_info()[1]
            print(f"clinepipe: cannot write the log file {self.baseFilename} ({exc}); "
                  "going on without it.", file=sys.stderr)


def _attach_log_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _LogFile(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("clinepipe")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


# ----------------------------------------------------------------------------- ingest

def ingest_stage(cfg: Config, engine, run_id: int, settle_seconds: float, progress=None) -> int:
    """Record every new file of ``incoming``: archive copy + frame row, or a failure reason.

    A file that failed at ingest before is tried again on every run (a fixed permission, a
    re-saved header or a configuration change may have cured it); its row changes only when
    the outcome does. Returns how many files were new."""
    from .ingest import find_new_files
    from .store.db import session_scope

    incoming = cfg.paths.incoming
    if not incoming.is_dir():
        raise ClinepipeError(f"{incoming}: the incoming folder does not exist.", reason="no incoming")
    files = find_new_files(incoming, settle_seconds=settle_seconds)
    telescope = cfg.site.telescope
    with session_scope(engine) as s:  # other telescopes' files of the same names are theirs
        known = {r.raw_path: r for r in s.execute(
            select(Frame.id, Frame.raw_path, Frame.state, Frame.stage, Frame.reason,
                   Frame.sha256).where(Frame.telescope == telescope))}
    rel = {p: p.relative_to(incoming).as_posix() for p in files}
    new = [p for p in files if rel[p] not in known]
    retry = [p for p in files if rel[p] in known and known[rel[p]].state == "failed"
             and known[rel[p]].stage == "ingest"]
    if progress:
        progress.start("ingest", len(new))
    for path in new:
        row, message = _ingest_file(cfg, engine, path, rel[path], run_id)
        _insert_frame(engine, row)
        _log_ingest(row, message)
        if progress:
            progress.advance()
    cured = 0
    for path in retry:
        old = known[rel[path]]
        row, message = _ingest_file(cfg, engine, path, rel[path], run_id, frame_id=old.id)
        if (row.get("state"), row.get("reason"), row.get("sha256")) == (old.state, old.reason,
                                                                        old.sha256):
            continue  # the same failure again: nothing to write or to say twice
        with session_scope(engine) as s:
            s.execute(update(Frame).where(Frame.id == old.id).values(**row))
        cured += row.get("state") != "failed"
        log.info("%s: tried again after it failed at ingest (%s): now %s", rel[path], old.reason,
                 row.get("state") if row.get("state") != "failed" else row.get("reason"))
        _log_ingest(row, message)
    log.info("ingest: %d new file(s)%s", len(new),
             f"; {len(retry)} earlier failure(s) tried again, {cured} ingested now"
             if retry else "")
    return len(new)


def _ingest_file(cfg: Config, engine, path: Path, rel: str, run_id: int,
                 frame_id: int | None = None) -> tuple[dict, str]:
    """The ``frames`` row of one incoming file (archive copy made when it is good) and the
    log message of a failure (or "")."""
    from .ingest import archive_copy, read_frame_info, sha256_file

    telescope = cfg.site.telescope
    row = {"telescope": telescope, "raw_path": rel, "run_id": run_id, "updated_at": _now(),
           "sha256": None, "size": None}
    try:
        digest = sha256_file(path)
        row.update(sha256=digest, size=path.stat().st_size)
    except OSError as exc:
        row.update(state="failed", stage="ingest",
                   reason=f"unreadable file ({exc.strerror or exc})")
        return row, f"{rel}: cannot be read ({exc.strerror or exc})"
    twin = _twin_of(engine, digest, telescope, exclude_id=frame_id)
    if twin is not None:
        row.update(state="duplicate", stage="ingest", reason=f"duplicate of {twin}")
        return row, ""
    try:
        info = read_frame_info(path, cfg.camera, cfg.site)
        copy = archive_copy(path, cfg.paths.archive, info, digest)
        _copy_src_list(path, copy)
        row.update(_info_columns(info), state="ingested", stage=None, reason=None,
                   archive_path=copy.relative_to(cfg.paths.archive).as_posix())
    except BadInput as exc:
        row.update(state="failed", stage="ingest", reason=exc.reason)
        return row, exc.message
    return row, ""


def _log_ingest(row: dict, message: str) -> None:
    if row.get("state") == "duplicate":
        log.info("%s: %s", row["raw_path"], row["reason"])
    elif message:
        log.warning("%s", message)


def _twin_of(engine, digest: str, telescope: str, exclude_id: int | None = None) -> str | None:
    """The file (not itself a duplicate) with these bytes already in the database, named as in
    messages: its path, prefixed ``telescope:`` when another telescope has it. Looked for over
    every telescope: the same bytes twice would put the same measurements twice in the light
    curves."""
    from .store.db import session_scope

    q = (select(Frame.telescope, Frame.raw_path)
         .where(Frame.sha256 == digest, Frame.state != "duplicate").order_by(Frame.id))
    if exclude_id is not None:  # a file tried again is not its own twin
        q = q.where(Frame.id != exclude_id)
    with session_scope(engine) as s:
        twin = s.execute(q).first()
    if twin is None:
        return None
    return twin.raw_path if twin.telescope == telescope else f"{twin.telescope}:{twin.raw_path}"


def _insert_frame(engine, row: dict) -> None:
    from .store.db import session_scope

    with session_scope(engine) as s:
        s.add(Frame(**row))


def _copy_src_list(raw: Path, copy: Path) -> None:
    """Keep the Image Link ``.SRC`` list beside the archive copy of its light."""
    for suffix in (".SRC", ".src", ".Src"):
        src = raw.with_suffix(suffix)
        if src.is_file():
            dest = copy.with_suffix(".SRC")
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
            return


def _info_columns(info: FrameInfo) -> dict:
    return {"night": info.night, "kind": info.kind, "filter": info.filter,
            "binning": info.binning, "exptime": info.exptime, "ccd_temp": info.ccd_temp,
            "date_obs": info.date_obs, "jd_mid": info.jd_mid, "object": info.object,
            "naxis1": info.shape[1], "naxis2": info.shape[0], "xorg": info.xorg,
            "yorg": info.yorg, "gain": info.gain}


def frame_info(frame: Frame, archive: Path) -> FrameInfo:
    """Rebuild the FrameInfo of a stored frame (its archive copy as the path)."""
    jd_start = frame.jd_mid - (frame.exptime or 0.0) / 2.0 / 86400.0
    return FrameInfo(path=archive / frame.archive_path, kind=frame.kind, binning=frame.binning,
                     filter=frame.filter, exptime=frame.exptime, ccd_temp=frame.ccd_temp,
                     date_obs=frame.date_obs, jd_start=jd_start, jd_mid=frame.jd_mid,
                     night=frame.night, shape=(frame.naxis2, frame.naxis1), xorg=frame.xorg,
                     yorg=frame.yorg, gain=frame.gain, object=frame.object)


# ----------------------------------------------------------------------------- masters

def masters_stage(cfg: Config, engine, run_id: int) -> int:
    """Build the masters of every calibration group (night, binning, filter) that changed.

    Bias first, then darks (need a bias), then flats (need both). A group is rebuilt only
    when its set of input files (or the reduction mode) differs from its latest master.
    """
    from .store.db import session_scope

    built = 0
    for kind in CALIBRATION_KINDS:
        with session_scope(engine) as s:
            frames = s.scalars(select(Frame).where(
                Frame.telescope == cfg.site.telescope, Frame.kind == kind,
                Frame.state.in_(("ingested", "used", "rejected", "waiting")))).all()
            s.expunge_all()
        frames = [f for f in frames if in_archive(cfg.paths.archive, f.archive_path)]
        from .masters import temperature_bucket

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
    from .masters import build_bias, build_dark, build_flat, write_master
    from .store.db import session_scope

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
    from .store.db import session_scope

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
    from .store.db import session_scope

    with session_scope(engine) as s:
        q = select(Master).where(Master.telescope == telescope, Master.kind == kind,
                                 Master.binning == binning,
                                 func.abs(Master.jd - jd) <= max_age_days)
        if filt is not None:
            q = q.where(Master.filter == filt)
        rows = s.scalars(q).all()
        s.expunge_all()
    if archive is not None:
        rows = [m for m in rows if in_archive(archive, m.path)]
    if not rows:
        return None
    from .masters import temperature_bucket

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


# ----------------------------------------------------------------------------- lights

def lights_stage(cfg: Config, engine, run_id: int, *, reprocess: bool = False,
                 workers: int | None = None, progress=None, pool=None) -> int:
    """Process every pending light in time order; returns how many were finished.

    ``pool``: a started :class:`~clinepipe.parallel.DaskPool` to use (else one is started
    here when the run uses Dask)."""
    from .store.db import BatchedTransaction, session_scope

    states = PENDING_LIGHT_STATES + (("calibrated", "failed") if reprocess else ())
    with session_scope(engine) as s:  # other telescopes' lights are left to their own runs
        lights = s.scalars(select(Frame).where(Frame.telescope == cfg.site.telescope,
                                               Frame.kind == "light", Frame.state.in_(states))
                           .order_by(Frame.jd_mid, Frame.raw_path)).all()
        s.expunge_all()
    # a failed light that never reached the archive cannot be retried
    mine = [f for f in lights if in_archive(cfg.paths.archive, f.archive_path)]
    if len(mine) < len(lights) and not reprocess:
        log.info("lights: %d pending light(s) whose archive copy is missing left as they are",
                 len(lights) - len(mine))
    lights = mine
    tasks: list[LightTask] = []
    unready: list[tuple[Frame, LightResult]] = []  # no masters yet: stored as waiting
    for frame in lights:
        task = _light_task(cfg, engine, frame)
        if isinstance(task, LightResult):
            unready.append((frame, task))
        else:
            tasks.append(task)
    with BatchedTransaction(engine) as batch:
        for frame, result in unready:
            with batch.unit() as s:
                _store_light_result(cfg, s, run_id, frame, result, None)
    if not tasks:
        return 0
    context = CalibrationContext.load(cfg, engine)
    by_id = {f.id: f for f in lights}
    task_by_id = {t.frame_id: t for t in tasks}
    if progress:
        progress.start("lights", len(tasks))
    done = 0
    db = cfg.database
    with BatchedTransaction(engine, db.commit_lights, db.commit_seconds) as batch:
        for result in _execute(cfg, tasks, workers, pool):
            if result.stop:  # the archive is full: keep what is done, stop, resume next run
                batch.commit()
                raise StorageError(result.message, reason=result.reason)
            with batch.unit() as s:
                _store_light_result(cfg, s, run_id, by_id[result.frame_id], result, context,
                                    task_by_id[result.frame_id])
            done += result.ok
            if progress:
                progress.advance()
    return done


def _light_task(cfg: Config, engine, frame: Frame) -> LightTask | LightResult:
    archive = cfg.paths.archive
    info = frame_info(frame, archive)
    age = cfg.reduction.max_master_age_days
    chosen = {}
    for kind, filt in (("bias", None), ("dark", None), ("flat", frame.filter)):
        m = choose_master(engine, kind, frame.binning, filt, frame.jd_mid, age, archive,
                          ccd_temp=frame.ccd_temp, temp_tolerance=cfg.camera.temp_tolerance,
                          telescope=frame.telescope)
        if m is None:
            what = f"{filt}-band flat" if kind == "flat" else kind
            reason = f"waiting for calibration: no {what} for binning {frame.binning}"
            return LightResult(frame.id, False, stage="reduce", reason=reason,
                               message=f"{frame.raw_path}: {reason}.", waiting=True)
        chosen[kind] = MasterRef(m.id, archive / m.path, m.exptime)
    raw = archive / frame.archive_path
    src = raw.with_suffix(".SRC")
    out = archive / "calibrated" / frame.night / f"{raw.stem}_calibrated.fits"
    return LightTask(frame.id, raw, src if src.is_file() else None, info, chosen["bias"],
                     chosen["dark"], chosen["flat"], out, cfg)


def _execute(cfg: Config, tasks: list[LightTask], workers: int | None, pool=None):
    """Yield results in the tasks' order (time order), computed serially or on Dask."""
    if pool is not None:
        yield from pool.map(process_light, tasks)
        return
    if not _use_dask(cfg, workers):
        for task in tasks:
            yield process_light(task)
        return
    from .parallel import dask_map

    yield from dask_map(process_light, tasks, workers=workers or cfg.execution.workers,
                        address=cfg.execution.address)


@dataclass
class CalibrationContext:
    """The catalog and known-variable sources of a run, opened once."""

    catalog: object            # .field(ra, dec, radius_deg) -> Catalog
    known: object | None       # .field(ra, dec, radius_deg) -> KnownVariables, or None
    suspects: object | None = None  # KnownVariables of our suspected new variables (aavso.py)

    @classmethod
    def load(cls, cfg: Config, engine=None) -> "CalibrationContext":
        from .aavso import suspected_positions
        from .catalogs import catalog_source, known_variables_source

        return cls(catalog_source(cfg), known_variables_source(cfg),
                   suspected_positions(engine) if engine is not None else None)


def _field_of(m: np.ndarray) -> tuple[float, float, float] | None:
    """Centre (deg) and radius (deg) covering a frame's measured positions."""
    ok = np.isfinite(m["ra"]) & np.isfinite(m["dec"])
    if not ok.any():
        return None
    ra, dec = m["ra"][ok], m["dec"][ok]
    ra0 = float(np.degrees(np.arctan2(np.mean(np.sin(np.radians(ra))), np.mean(np.cos(np.radians(ra))))) % 360)
    dec0 = float(np.mean(dec))
    d = np.hypot(((ra - ra0 + 180) % 360 - 180) * np.cos(np.radians(dec0)), dec - dec0)
    return ra0, dec0, float(d.max()) + 1.0 / 60


def _store_light_result(cfg: Config, s, run_id: int, frame: Frame, result: LightResult,
                        context: CalibrationContext | None, task: LightTask | None = None) -> None:
    """Write one light's outcome (replacing earlier results) in the session ``s``, whose
    transaction the caller commits: all of the light's rows go in that one transaction."""
    from .store.db import delete_frame_results, insert_measurements

    if not result.ok:
        delete_frame_results(s, frame.id)
        s.execute(update(Frame).where(Frame.id == frame.id).values(
            state="waiting" if result.waiting else "failed", stage=result.stage,
            reason=result.reason, run_id=run_id, updated_at=_now()))
        (log.info if result.waiting else log.warning)("%s", result.message)
        return

    m = result.measurements
    stats = result.stats
    calib = calibrate_measurements(cfg, frame, m, context)
    # a note of the per-light work (e.g. a damaged .SRC replaced by own detection) is kept
    # with the frame: the worker that made it may have been a Dask process with its own log
    note = stats.get("notes")
    reason = "; ".join(r for r in (calib.reason, note) if r) or None
    if result.bjd_tdb is not None and result.airmass is not None:  # computed with the light
        bjd, x_air = result.bjd_tdb, result.airmass
    else:
        from .sky import airmass as airmass_of, bjd_tdb

        site = cfg.site
        jd = np.full(len(m), frame.jd_mid)
        finite = np.isfinite(m["ra"]) & np.isfinite(m["dec"])
        x_air = np.full(len(m), np.nan)
        bjd = np.full(len(m), np.nan)
        if finite.any():
            x_air[finite] = airmass_of(m["ra"][finite], m["dec"][finite], frame.jd_mid,
                                       site.latitude, site.longitude)
            bjd[finite] = bjd_tdb(jd[finite], m["ra"][finite], m["dec"][finite], site.latitude,
                                  site.longitude, site.elevation)
    delete_frame_results(s, frame.id)
    star_ids = _identify_stars(cfg, s, m, calib)
    _name_known_variables(cfg, s, m, star_ids, calib.known)
    keep = star_ids > 0
    rows = _measurement_rows(frame, m[keep], star_ids[keep], bjd[keep], x_air[keep],
                             calib.mag[keep], calib.mag_err[keep], calib.in_ensemble[keep])
    insert_measurements(s, rows)
    if calib.zero_point is not None:
        zp = calib.zero_point
        s.add(ZeroPoint(frame_id=frame.id, filter=frame.filter, catalog_band=calib.band,
                        value=zp.value, error=zp.error, n_used=zp.n_used,
                        n_candidates=zp.n_candidates, scatter=_f(zp.scatter) or 0.0,
                        color_term=None))
    centre_air = float(np.nanmedian(x_air)) if np.isfinite(x_air).any() else None
    s.execute(update(Frame).where(Frame.id == frame.id).values(
        state=calib.state, stage=calib.stage, reason=reason, run_id=run_id,
        calibrated_path=result.calibrated_path.relative_to(cfg.paths.archive).as_posix(),
        bias_master_id=task.bias.id if task else None,
        dark_master_id=task.dark.id if task else None,
        flat_master_id=task.flat.id if task else None, fwhm=_f(stats.get("fwhm")),
        elongation=_f(stats.get("elongation")), sky=_f(stats.get("sky")),
        n_stars=stats.get("n_stars"), airmass=centre_air,
        astrometric_rms=_f(calib.astrometric_rms), source_list=stats.get("source_list"),
        updated_at=_now()))
    log.info("%s: %s, %d stars%s%s", frame.raw_path, calib.state, int(keep.sum()),
             f", zero point {calib.zero_point.value:.3f} ± {calib.zero_point.error:.3f}"
             if calib.zero_point is not None else "", f" ({note})" if note else "")


def _nullable(values) -> list:
    """Floats for the database, one per element, with None for NaN (column-wise, no per-row
    function calls)."""
    a = np.asarray(values, dtype=float)
    out = a.astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist()


def _measurement_rows(frame: Frame, m: np.ndarray, star_ids, bjd, airmass, mag, mag_err,
                      in_ensemble) -> list[dict]:
    """``measurements`` rows of one frame, built column by column (pixels become 1-based)."""
    n = len(m)
    columns = {
        "frame_id": [frame.id] * n, "star_id": np.asarray(star_ids, dtype=np.int64).tolist(),
        "filter": [frame.filter] * n, "jd_mid": [frame.jd_mid] * n, "bjd_tdb": _nullable(bjd),
        "x": (m["x"] + 1.0).tolist(), "y": (m["y"] + 1.0).tolist(),
        "ra": _nullable(m["ra"]), "dec": _nullable(m["dec"]),
        "flux": m["flux"].astype(float).tolist(), "flux_err": m["flux_err"].astype(float).tolist(),
        "background": m["background"].astype(float).tolist(),
        "inst_mag": _nullable(m["inst_mag"]), "inst_mag_err": _nullable(m["inst_mag_err"]),
        "mag": _nullable(mag), "mag_err": _nullable(mag_err), "fwhm": _nullable(m["fwhm"]),
        "airmass": _nullable(airmass), "flags": m["flags"].astype(np.int64).tolist(),
        "in_ensemble": np.asarray(in_ensemble, dtype=bool).tolist(),
    }
    keys = list(columns)
    return [dict(zip(keys, values)) for values in zip(*columns.values())]


def _f(value):
    """A float for the database, or None for NaN / missing."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


@dataclass
class FrameCalibration:
    state: str
    stage: str | None
    reason: str | None
    band: str | None
    zero_point: object | None
    mag: np.ndarray
    mag_err: np.ndarray
    in_ensemble: np.ndarray
    cat_index: np.ndarray
    cat_sep: np.ndarray
    astrometric_rms: float | None
    catalog: object | None = None   # the Catalog the frame was matched against
    known: object | None = None     # the known variables of the field


def calibrate_measurements(cfg: Config, frame: Frame, m: np.ndarray,
                           context: CalibrationContext | None) -> FrameCalibration:
    """Match to the catalog and fit the frame's ensemble zero point (pure, no database)."""
    from .calibrate import apply_zero_point, ensemble_zero_point, match_catalog

    n = len(m)
    nan = np.full(n, np.nan)
    none = np.full(n, -1)
    empty = np.zeros(n, dtype=bool)
    band = cfg.catalog.filters.get(frame.filter or "")
    field = _field_of(m)
    if context is None or field is None:
        return FrameCalibration("measured", "calibrate", "no sky positions to match a catalog",
                                band, None, nan, nan, empty, none, nan, None, None, None)
    try:
        catalog = context.catalog.field(*field)
        known = context.known.field(*field) if context.known is not None else None
    except CatalogUnavailable as exc:
        log.info("%s", exc.message)
        return FrameCalibration("waiting", "calibrate", f"waiting for catalog: {exc.reason}", band,
                                None, nan, nan, empty, none, nan, None, None, None)
    idx, sep = match_catalog(m["ra"], m["dec"], catalog.ra, catalog.dec, cfg.catalog.match_radius)
    matched = idx >= 0
    rms = float(np.sqrt(np.mean(sep[matched] ** 2))) if matched.sum() >= 3 else None
    if band is None or band not in catalog.mags:
        reason = f"no catalog band for filter '{frame.filter}'"
        return FrameCalibration("measured", "calibrate", reason, band, None, nan, nan, empty,
                                idx, sep, rms, catalog, known)
    cat_mag, cat_err = catalog.band(band)
    cm = np.where(matched, cat_mag[np.clip(idx, 0, None)], np.nan)
    ce = np.where(matched, cat_err[np.clip(idx, 0, None)], np.nan)
    exclude = (m["flags"] != 0) | _known_variable_mask(cfg, m, known)
    exclude |= _known_variable_mask(cfg, m, getattr(context, "suspects", None))  # aavso.py
    zp = ensemble_zero_point(m["inst_mag"], cm, m["inst_mag_err"], ce, exclude=exclude)
    if zp.n_used < cfg.catalog.min_stars or not np.isfinite(zp.value):
        reason = f"too few comparison stars ({zp.n_used} < {cfg.catalog.min_stars})"
        return FrameCalibration("measured", "calibrate", reason, band, None, nan, nan, empty,
                                idx, sep, rms, catalog, known)
    mag, mag_err = apply_zero_point(m["inst_mag"], m["inst_mag_err"], zp)
    return FrameCalibration("calibrated", None, None, band, zp, mag, mag_err, zp.used, idx, sep,
                            rms, catalog, known)


def _known_variable_mask(cfg: Config, m: np.ndarray, known) -> np.ndarray:
    from .calibrate import match_catalog

    if known is None or len(known) == 0:
        return np.zeros(len(m), dtype=bool)
    idx, _ = match_catalog(m["ra"], m["dec"], known.ra, known.dec, cfg.stars.match_radius * 2)
    return idx >= 0


def _identify_stars(cfg: Config, s, m: np.ndarray, calib: FrameCalibration) -> np.ndarray:
    """Star ids for the frame's measurements (new stars are created); 0 = not stored."""
    from .stars import assign_stars

    ra, dec = m["ra"], m["dec"]
    ids = np.zeros(len(m), dtype=np.int64)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return ids
    if s.get_bind().dialect.name == "postgresql":
        # runs of other telescopes may write at the same time: one frame at a time reads the
        # star list and adds its new stars (until this frame's transaction ends), so a star
        # seen by two telescopes at once still gets one id
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STARS_LOCK_KEY})
    margin = cfg.stars.match_radius / 3600.0 * 2
    cosd = max(np.cos(np.radians(np.nanmedian(dec[ok]))), 1e-3)
    lo_ra, hi_ra = np.nanmin(ra[ok]) - margin / cosd, np.nanmax(ra[ok]) + margin / cosd
    lo_dec, hi_dec = np.nanmin(dec[ok]) - margin, np.nanmax(dec[ok]) + margin
    known = s.execute(select(Star.id, Star.ra, Star.dec).where(
        Star.dec.between(lo_dec, hi_dec), Star.ra.between(lo_ra, hi_ra))
        .order_by(Star.id)).all()
    k_id = np.array([r[0] for r in known], dtype=np.int64)
    k_ra = np.array([r[1] for r in known], dtype=float)
    k_dec = np.array([r[2] for r in known], dtype=float)
    where = np.flatnonzero(ok)
    index = assign_stars(ra[ok], dec[ok], k_ra, k_dec, cfg.stars.match_radius)
    matched = index >= 0
    ids[where[matched]] = k_id[index[matched]]
    catalog = calib.catalog
    new_rows = where[index == -1]
    new_stars = []
    for i in new_rows:
        cat_id = None
        if catalog is not None and calib.cat_index[i] >= 0:
            cat_id = str(catalog.ids[calib.cat_index[i]])
        new_stars.append(Star(ra=float(ra[i]), dec=float(dec[i]), catalog_id=cat_id,
                              n_measurements=0, created_at=_now()))
    if new_stars:
        s.add_all(new_stars)
        s.flush()
        for i, star in zip(new_rows, new_stars):
            ids[i] = star.id
            if star.catalog_id is not None:
                c = calib.cat_index[i]
                s.add(CatalogMatch(star_id=star.id, catalog=catalog.name,
                                   catalog_id=star.catalog_id, ra=float(catalog.ra[c]),
                                   dec=float(catalog.dec[c]), separation=float(calib.cat_sep[i]),
                                   mags=json.dumps({b: [_f(v[c]), _f(catalog.errors.get(b, v)[c])
                                                        if b in catalog.errors else None]
                                                    for b, v in catalog.mags.items()})))
    return ids


def _name_known_variables(cfg: Config, s, m: np.ndarray, star_ids: np.ndarray, known) -> None:
    """Give this frame's stars that match a known variable its name, type and period."""
    from .calibrate import match_catalog

    if known is None or len(known) == 0:
        return
    idx, _ = match_catalog(m["ra"], m["dec"], known.ra, known.dec, cfg.stars.match_radius * 2)
    for i in np.flatnonzero((idx >= 0) & (star_ids > 0)):
        k = idx[i]
        s.execute(update(Star).where(Star.id == int(star_ids[i]), Star.name.is_(None)).values(
            name=str(known.names[k]), var_type=str(known.types[k]) or None,
            var_period=_f(known.periods[k])))


# ----------------------------------------------------------------------------- finishing

def update_qc(cfg: Config, engine, nights: list[str] | None = None) -> None:
    """Recompute the QC flags of this telescope's lights of the given nights (all nights by
    default), with this telescope's thresholds.

    Flags are relative to the night, telescope and filter (another telescope has its own zero
    point, seeing and sky), so they are derived from the stored figures again whenever a night
    gains frames: the same data always gives the same flags.
    """
    from .qc import QcThresholds, night_flags
    from .store.db import session_scope

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
    from .calibrate import COLOUR_INDEX, fit_colour_term
    from .store.db import session_scope

    if not cfg.catalog.color_term:
        return
    with session_scope(engine) as s:
        telescope = cfg.site.telescope
        nights = s.execute(select(Frame.night, Frame.filter).distinct().where(
            Frame.telescope == telescope, Frame.run_id.in_([run_id, *also_runs]),
            Frame.kind == "light", Frame.state == "calibrated")).all()
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
                color_term=_f(term.value)))
            if term.reason:
                log.info("night %s, %s: colour term not fitted (%s)", night, filt, term.reason)
            else:
                log.info("night %s, %s: colour term %+.4f ± %.4f per mag of %s (%d points)",
                         night, filt, term.value, term.error, term.colour, term.n_used)


def write_night_reports(cfg: Config, engine, run_id: int, also_runs=()) -> None:
    """The morning report of every night this run (or a killed run in ``also_runs``, whose
    reports may be missing) touched, into ``archive/reports/<night>/``."""
    from .report import write_report
    from .store.db import session_scope

    with session_scope(engine) as s:
        nights = s.scalars(select(Frame.night).distinct().where(
            Frame.run_id.in_([run_id, *also_runs]), Frame.kind == "light",
            Frame.night.is_not(None))).all()
    for night in sorted(nights):
        try:
            write_report(engine, night, cfg.paths.archive / "reports" / night,
                         targets=cfg.aavso.targets)
        except Exception:  # a report must never cost the night's data
            log.exception("the report of night %s could not be written", night)


def refresh_star_counts(engine) -> None:
    from .store.db import session_scope

    with session_scope(engine) as s:
        counts = (select(func.count(Measurement.id)).where(Measurement.star_id == Star.id)
                  .scalar_subquery())
        s.execute(update(Star).values(n_measurements=counts))


def frame_states(engine, telescope: str | None = None) -> tuple[dict, list]:
    """Frames per state, and every file not fully processed with its stage and reason; of one
    telescope, or of all (``telescope=None``)."""
    from .store.db import session_scope

    mine = [] if telescope is None else [Frame.telescope == telescope]
    with session_scope(engine) as s:
        states = dict(s.execute(select(Frame.state, func.count()).where(*mine)
                                .group_by(Frame.state)).all())
        failures = s.execute(select(Frame.raw_path, Frame.state, Frame.stage, Frame.reason)
                             .where(*mine, Frame.state.in_(("failed", "waiting", "rejected",
                                                            "duplicate", "measured")),
                                    Frame.reason.is_not(None))
                             .order_by(Frame.raw_path)).all()
    return states, [tuple(r) for r in failures]
