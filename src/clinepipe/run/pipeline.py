"""The daily run: lock, ingest, masters, lights, finishing; a killed run resumes where it stopped."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from clinepipe import __version__
from clinepipe.config import Config
from clinepipe.errors import ClinepipeError, ConfigError, StorageError, storage_error
from clinepipe.run.finishing import (
    fit_colour_terms,
    frame_states,
    refresh_star_counts,
    update_qc,
    write_night_reports,
)
from clinepipe.run.light_stages import (
    NO_MASTER,
    LightResult,
    LightTask,
    MasterRef,
    finish_light,
    process_light,
    start_light,
)
from clinepipe.run.light_store import CalibrationContext, store_light_result
from clinepipe.run.lock import RunLock
from clinepipe.store.models import Frame, Master, Run
from clinepipe.store.models import utc_now as _now

from clinepipe.run.relative_step import relative_photometry_step
log = logging.getLogger("clinepipe")
from clinepipe.run.ingest_step import ingest_stage
from clinepipe.run.masters_step import (
    MasterChooser,
    frame_info,
    in_archive,
    masters_stage,
)

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
    warnings: list = field(default_factory=list)  # sentences for the person reading the summary
    unsettled: int = 0             # files left for the next run: changed < settle_seconds ago
    settle_seconds: float = 0.0
    suspects: list = field(default_factory=list)  # the suspected new variables found (Suspect)

    @property
    def notes(self) -> list[str]:
        """Sentences about what this run left for later or found, for the printed summary."""
        out = []
        if self.unsettled:
            out.append(f"{self.unsettled} file(s) still being written (changed < "
                       f"{self.settle_seconds:g} s ago): the next run takes them.")
        for sus in self.suspects:
            out.append(f"suspected new variable: star {sus.star_id} "
                       f"({sus.catalog_id or 'no catalog id'}, RA {sus.ra:.5f} Dec {sus.dec:+.5f}): "
                       f"reduced chi-square {sus.chi2_red:.1f} (limit {sus.threshold:g}) in "
                       f"{sus.filter} on night {sus.night}, rms {sus.rms:.3f} mag over {sus.n} "
                       "points; left out of the ensemble.")
        return out


@dataclass
class RunContext:
    """What every step of a run sees: the configuration, the database and this run's ids."""

    cfg: Config
    engine: object
    run_id: int
    killed: tuple[int, ...]        #: runs killed before finishing: their nights are finished now
    summary: RunSummary
    reprocess: bool = False
    workers: int | None = None
    progress: object = None
    settle_seconds: float = 2.0
    pool: object = None            #: the Dask pool, when the run uses one
    #: nights whose frames this run changed beyond its own (the suspects' recalibration):
    #: the steps after it work on these and the run's own nights, never the whole archive
    touched_nights: set = field(default_factory=set)


def _ingest(run: RunContext) -> None:
    counts = ingest_stage(run.cfg, run.engine, run.run_id, run.settle_seconds, run.progress)
    run.summary.new_files = counts.new
    run.summary.unsettled, run.summary.settle_seconds = counts.unsettled, counts.settle_seconds
    run.pool = _start_pool(run.cfg, run.engine, run.workers, run.reprocess)  # up while masters build


def _masters(run: RunContext) -> None:
    run.summary.masters_built = masters_stage(run.cfg, run.engine, run.run_id)


def _lights(run: RunContext) -> None:
    run.summary.lights_done = lights_stage(run.cfg, run.engine, run.run_id,
                                           reprocess=run.reprocess, workers=run.workers,
                                           progress=run.progress, pool=run.pool)
    if run.pool is not None:  # shuts down while the run finishes
        run.pool.close(wait=False)


def _relative(run: RunContext) -> None:
    """The lights no catalog could calibrate, night by night, on the scale of the night's own
    ensemble (before QC, suspects and reports, which read their zero points and magnitudes)."""
    relative_photometry_step(run.cfg, run.engine, run.run_id, also_runs=run.killed)


def _suspects(run: RunContext) -> None:
    from clinepipe.variability.suspects import flag_suspected_variables

    run.summary.suspects = flag_suspected_variables(
        run.cfg, run.engine, run.run_id, also_runs=run.killed,
        touched=run.touched_nights)  # never raises


def _quality(run: RunContext) -> None:
    # after the suspects step: its recalibration moves zero points
    from clinepipe.store.queries import nights_of_runs

    nights = set(nights_of_runs(run.engine, [run.run_id, *run.killed])) | run.touched_nights
    update_qc(run.cfg, run.engine, sorted(nights))


def _star_stats(run: RunContext) -> None:
    # after the suspects and QC steps: both change magnitudes and flags of the nights touched
    from clinepipe.store.queries import nights_of_runs
    from clinepipe.variability.star_stats import update_star_stats

    nights = set(nights_of_runs(run.engine, [run.run_id, *run.killed])) | run.touched_nights
    n = update_star_stats(run.engine, run.cfg.qc.exclude_from_variability,
                          run.cfg.site.telescope, nights)
    log.info("variability statistics of %d star(s) recomputed", n)


def _star_counts(run: RunContext) -> None:
    refresh_star_counts(run.engine, [run.run_id, *run.killed])


def _colour_terms(run: RunContext) -> None:
    fit_colour_terms(run.cfg, run.engine, run.run_id, also_runs=run.killed)


def _transform(run: RunContext) -> None:
    """Transformed magnitudes (``[transform]``) of the nights observed in two or more
    filters; before the AAVSO files, which report them with TRANS=YES."""
    from clinepipe.run.transform_step import transform_step

    transform_step(run.cfg, run.engine, run.run_id, also_runs=run.killed)  # never raises


def _night_reports(run: RunContext) -> None:
    write_night_reports(run.cfg, run.engine, run.run_id, also_runs=run.killed)


def _aavso_files(run: RunContext) -> None:
    from clinepipe.products.aavso import no_obscode_warning, write_aavso_reports

    write_aavso_reports(run.cfg, run.engine, run.run_id, also_runs=run.killed)  # never raises
    run.summary.warnings += [w for w in (no_obscode_warning(run.cfg),) if w]


def _transits(run: RunContext) -> None:
    from clinepipe.run.transit_fits import transits_stage

    transits_stage(run.cfg, run.engine, run.run_id, also_runs=run.killed)  # never raises


#: The daily run, in order. Each step takes the run's context; a step that finds a frame
#: unusable records the reason on the frame and goes on, so only a broken archive or database
#: stops the list (the next run resumes where it stopped).
RUN_STEPS = (_ingest, _masters, _lights, _relative, _suspects, _quality, _star_stats,
             _star_counts, _colour_terms, _transform, _night_reports, _aavso_files, _transits)


def run_pipeline(cfg: Config, *, reprocess: bool = False, workers: int | None = None,
                 settle_seconds: float | None = None, progress=None) -> RunSummary:
    """Run every stage on whatever is new; returns a summary. Raises LockHeld (exit 3), and
    StorageError when the archive cannot be written (full disk…): the run stops there, and the
    next one resumes."""
    from clinepipe.store.db import open_database, session_scope

    t0 = time.perf_counter()
    if not cfg.paths.incoming.is_dir():  # before anything is made: a typo'd path creates nothing
        raise ConfigError(f"{cfg.paths.incoming}: the incoming folder does not exist (set "
                          f"[paths] incoming in {cfg.source_file or 'the configuration'}).",
                          reason="no incoming")
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
            run = RunContext(cfg, engine, run_id, tuple(killed), summary, reprocess, workers,
                             progress, cfg.paths.settle_seconds if settle_seconds is None
                             else settle_seconds)
            try:
                for step in RUN_STEPS:
                    step(run)
            finally:
                pool = run.pool
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
    from clinepipe.store.db import session_scope

    if not _use_dask(cfg, workers):
        return None
    states = PENDING_LIGHT_STATES + (("calibrated", "failed") if reprocess else ())
    with session_scope(engine) as s:
        pending = s.scalars(select(Frame.id).where(Frame.telescope == cfg.site.telescope,
                                                   Frame.kind == "light",
                                                   Frame.state.in_(states)).limit(1)).first()
    if pending is None:
        return None
    from clinepipe.run.parallel import DaskPool

    return DaskPool(workers or cfg.execution.workers, cfg.execution.address,
                    warm=_warm_worker)


def _warm_worker() -> None:
    """Run on each new Dask worker while the main process ingests: import what the per-light
    work needs and load the time tables of the BJD computation (half a second on a cold
    process), so the first light costs what the others do."""
    import clinepipe.run.light_stages  # noqa: F401  (imports every per-light stage)
    from clinepipe.photometry.times import bjd_tdb

    bjd_tdb(2460000.5, 10.0, 20.0, 0.0, 0.0, 0.0)


def _close_killed_runs(engine, run_id: int, previous_holder: str | None) -> list[int]:
    """Mark as ``crashed`` the run(s) of this archive that were killed (the lock file still
    named their ``pid N on HOST``); returns their ids, whose nights' reports are written again."""
    from clinepipe.store.db import session_scope

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
    from clinepipe.store.db import session_scope

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
    from clinepipe.store.db import session_scope

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


def lights_stage(cfg: Config, engine, run_id: int, *, reprocess: bool = False,
                 workers: int | None = None, progress=None, pool=None) -> int:
    """Process every pending light in time order; returns how many were finished.

    ``pool``: a started :class:`~clinepipe.parallel.DaskPool` to use (else one is started
    here when the run uses Dask)."""
    from clinepipe.store.db import BatchedTransaction, session_scope

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
    from clinepipe.variability.suspects import suspected_positions

    context = CalibrationContext.load(cfg, suspected_positions(engine))
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
    """The light's work with the nearest valid masters; a master that does not exist makes
    it wait (with ``[reduction] without_masters = "wait"``) or is left out ("measure")."""
    from clinepipe.ccd.reduce import MEASURE_HINT

    archive = cfg.paths.archive
    info = frame_info(frame, archive)
    age = cfg.reduction.max_master_age_days
    chosen = {}
    for kind, filt in (("bias", None), ("dark", None), ("flat", frame.filter)):
        m = chooser.choose(kind, frame.binning, filt, frame.jd_mid, age,
                           ccd_temp=frame.ccd_temp, temp_tolerance=cfg.camera.temp_tolerance)
        if m is None and cfg.reduction.without_masters == "measure":
            chosen[kind] = NO_MASTER
        elif m is None:
            what = f"{filt}-band flat" if kind == "flat" else kind
            reason = (f"waiting for calibration: no {what} for binning {frame.binning}; "
                      f"{MEASURE_HINT}")
            return LightResult(frame.id, False, stage="reduce", reason=reason,
                               message=f"{frame.raw_path}: {reason}.", waiting=True)
        else:
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
    from clinepipe.run.parallel import dask_map

    yield from dask_map(process_light, tasks, workers=workers or cfg.execution.workers,
                        address=cfg.execution.address)


