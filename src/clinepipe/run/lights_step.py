"""The lights of a run: each pending light with the nearest valid masters becomes a task, the
tasks are measured in time order (here, one light ahead, or on Dask) and stored as they
come, a batch of frames per transaction.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from clinepipe.config import Config
from clinepipe.errors import StorageError
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
from clinepipe.run.masters_step import MasterChooser, frame_info, in_archive
from clinepipe.store.models import Frame

log = logging.getLogger("clinepipe")



#: states a light can be picked up from on a normal run
PENDING_LIGHT_STATES = ("ingested", "waiting", "measured")


def use_dask(cfg: Config, workers: int | None) -> bool:
    """Whether the lights are measured as Dask tasks: ``[execution] scheduler = "dask"``, or
    ``run --workers N`` with N > 1 (``workers`` None = the option was not given)."""
    return cfg.execution.scheduler == "dask" or (workers is not None and workers > 1)


def local_pool(cfg: Config, workers: int | None, lock_fd: int | None = None):
    """The run's :class:`~clinepipe.run.local_pool.LocalPool` with ``[execution] scheduler =
    "local"`` (the default) and more than one CPU to use, else None (one process: "serial").
    ``lock_fd``: the run lock's descriptor, which the workers close."""
    from clinepipe.run.local_pool import LocalPool, local_workers

    if cfg.execution.scheduler != "local" or use_dask(cfg, workers) or workers == 1:
        return None  # `run --workers 1`: one process
    n = local_workers(cfg.execution.workers)
    if n < 2:
        return None
    return LocalPool(n, close_fds=() if lock_fd is None else (lock_fd,), warm=warm_worker)


def start_pool(cfg: Config, engine, workers: int | None, reprocess: bool = False):
    """The Dask pool of a run that uses Dask and has lights to do (its workers come up in the
    background), else None.

    Started after ingest: the worker processes' start-up would compete with ingest for the
    CPUs, while building the masters leaves them room."""
    from clinepipe.store.db import session_scope

    if not use_dask(cfg, workers):
        return None
    states = PENDING_LIGHT_STATES + (("calibrated", "failed") if reprocess else ())
    with session_scope(engine) as s:
        pending = s.scalars(select(Frame.id).where(Frame.telescope == cfg.site.telescope,
                                                   Frame.kind == "light",
                                                   Frame.state.in_(states)).limit(1)).first()
    if pending is None:
        return None
    return dask_pool(cfg, workers)


def dask_pool(cfg: Config, workers: int | None):
    """A :class:`~clinepipe.run.parallel.DaskPool` on ``[execution] address`` (else a local
    cluster of ``workers`` processes) whose workers are warmed up for the lights."""
    from clinepipe.run.parallel import DaskPool

    return DaskPool(_dask_workers(cfg, workers), cfg.execution.address,
                    warm=warm_worker, config_file=str(cfg.source_file or ""))


def warm_worker() -> None:
    """Run on each new Dask worker while the main process ingests: import what the per-light
    work needs and load the time tables of the BJD computation (half a second on a cold
    process), so the first light costs what the others do."""
    import clinepipe.run.light_stages  # noqa: F401  (imports every per-light stage)
    from clinepipe.photometry.times import bjd_tdb

    bjd_tdb(2460000.5, 10.0, 20.0, 0.0, 0.0, 0.0)


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
        task = light_task(cfg, chooser, frame)
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
        for result in light_results(cfg, tasks, workers, pool):
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


def light_task(cfg: Config, chooser: MasterChooser, frame: Frame) -> LightTask | LightResult:
    """The light's work with the nearest valid masters; a master that does not exist makes
    it wait (with ``[reduction] without_masters = "wait"``) or is left out ("measure")."""
    from clinepipe.ccd.reduce_light import MEASURE_HINT

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


def light_results(cfg: Config, tasks: list[LightTask], workers: int | None, pool=None):
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
    if not use_dask(cfg, workers):
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

    yield from dask_map(process_light, tasks, workers=_dask_workers(cfg, workers),
                        address=cfg.execution.address)


def _dask_workers(cfg: Config, workers: int | None) -> int:
    """A local Dask cluster's size: ``run --workers N``, else ``[execution] workers`` (0: one
    per CPU)."""
    from clinepipe.run.local_pool import local_workers

    return workers or local_workers(cfg.execution.workers)
