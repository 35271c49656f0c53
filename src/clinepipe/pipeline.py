"""The daily job: every stage, for every new file, incrementally.

    run_pipeline(cfg)
      ├─ ingest_stage     new files in ``incoming`` → archive copies + ``frames`` rows
      ├─ masters_stage    calibration groups that changed → master FITS + ``masters`` rows
      ├─ lights_stage     each light not yet done, in time order:
      │     lightframe.process_light (reduce → sources → WCS → photometry; Dask-able)
      │     then, in this process (lightstore): catalog match, ensemble zero point, star
      │     identities, measurements (a frame never split between transactions; up to
      │     ``[database] commit_lights`` frames per commit)
      └─ finish           (finishing, aavso) QC flags, star counts, suspected variables,
                          colour terms, morning reports, AAVSO reports, run summary

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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from . import __version__
from .config import Config
from .errors import (BadInput, ClinepipeError, MissingCalibration, StorageError, Waiting,
                     storage_error)
from .frames import FrameInfo
from .lightframe import (LightResult, LightTask, MasterRef, finish_light, process_light,
                         start_light)
from .lock import RunLock
from .finishing import (fit_colour_terms, frame_states, refresh_star_counts, update_qc,
                        write_night_reports)
from .lightstore import CalibrationContext, store_light_result
from .store.models import Frame, Master, Run, utc_now as _now

log = logging.getLogger("clinepipe")

CALIBRATION_KINDS = ("bias", "dark", "flat")
#: states a light can be picked up from on a normal run
PENDING_LIGHT_STATES = ("ingested", "waiting", "reduced", "measured")


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
    from .store.db import session_scope

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
    from .masters import temperature_bucket

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
    chooser = MasterChooser(engine, cfg.paths.archive, cfg.site.telescope)
    for frame in lights:
        task = _light_task(cfg, chooser, frame)
        if isinstance(task, LightResult):
            unready.append((frame, task))
        else:
            tasks.append(task)
    with BatchedTransaction(engine) as batch:
        for frame, result in unready:
            with batch.unit() as s:
                store_light_result(cfg, s, run_id, frame, result, None)
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
                store_light_result(cfg, s, run_id, by_id[result.frame_id], result, context,
                                    task_by_id[result.frame_id])
            done += result.ok
            if progress:
                progress.advance()
    return done


def _light_task(cfg: Config, chooser: MasterChooser, frame: Frame) -> LightTask | LightResult:
    archive = cfg.paths.archive
    info = frame_info(frame, archive)
    age = cfg.reduction.max_master_age_days
    chosen = {}
    for kind, filt in (("bias", None), ("dark", None), ("flat", frame.filter)):
        m = chooser.choose(kind, frame.binning, filt, frame.jd_mid, age,
                           ccd_temp=frame.ccd_temp, temp_tolerance=cfg.camera.temp_tolerance)
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
        # the workers take a second or so to start on a small machine: until they are up,
        # this process measures the first lights itself (in time order, as the rest follow)
        done = 0
        while done < len(tasks) and not pool.ready():
            yield process_light(tasks[done])
            done += 1
        if done:
            log.info("lights: %d measured here while the Dask workers started", done)
        yield from pool.map(process_light, tasks[done:])
        return
    if not _use_dask(cfg, workers):
        # one light ahead: the next light is measured while this one's file reaches the disk
        pending = None
        for task in tasks:
            started = start_light(task)
            if pending is not None:
                yield finish_light(pending)
            pending = started
            if started.result.stop:  # the archive is full: start no more lights
                break
        if pending is not None:
            yield finish_light(pending)
        return
    from .parallel import dask_map

    yield from dask_map(process_light, tasks, workers=workers or cfg.execution.workers,
                        address=cfg.execution.address)
