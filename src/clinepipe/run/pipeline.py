"""The daily run: lock, ingest, masters, lights, finishing; a killed run resumes where it stopped.

``RUN_STEPS`` is the ordered list of steps, each a function of the run's :class:`RunContext`;
the lights are :mod:`clinepipe.run.lights_step`, the run's own records :mod:`clinepipe.run.run_records`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field

from sqlalchemy import update

from clinepipe import __version__
from clinepipe.config import Config
from clinepipe.errors import ConfigError, storage_error
from clinepipe.run.finishing import (
    fit_colour_terms,
    frame_states,
    refresh_star_counts,
    update_qc,
    write_night_reports,
)
from clinepipe.run.ingest_step import ingest_stage
from clinepipe.run.lights_step import (
    dask_pool,
    lights_stage,
    local_pool,
    start_pool,
    use_dask,
)
from clinepipe.run.lock import RunLock
from clinepipe.run.masters_step import masters_stage
from clinepipe.run.relative_step import relative_photometry_step
from clinepipe.run.run_pool import RunPool
from clinepipe.run.run_records import (
    adopt_untagged_rows,
    attach_log_file,
    close_killed_runs,
    mark_run,
    storage_errors,
    why_failed,
)
from clinepipe.store.models import Run
from clinepipe.store.models import utc_now as _now

log = logging.getLogger("clinepipe")


@dataclass
class RunSummary:
    """What one ``clinepipe run`` did, for the printed summary and the ``runs`` row.

    Attributes
    ----------
    run_id : int
        The run's id in the ``runs`` table.
    new_files, masters_built, lights_done : int
        Files ingested, masters written and lights processed by this run.
    states : dict
        {frame state: number of frames} over the whole archive (of this telescope) at the end.
    failures : list
        ``(raw_path, state, stage, reason)`` of every file not fully processed.
    elapsed : float
        Wall-clock duration of the run (s).
    warnings, unsettled, settle_seconds, suspects
        See the comments on the fields.
    """
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
    pool: RunPool | None = None    #: the run's local or Dask pool, when it uses one
    #: nights whose frames this run changed beyond its own (the suspects' recalibration):
    #: the steps after it work on these and the run's own nights, never the whole archive
    touched_nights: set = field(default_factory=set)
    #: the star_stats update computed while the later steps run (run.star_stats_step)
    star_stats: object = None


def _ingest(run: RunContext) -> None:
    if run.pool is not None:  # fork the workers now: they import, then stage the new files
        run.pool.start()
    if use_dask(run.cfg, run.workers) and run.cfg.execution.address:
        # an existing cluster's workers are up already: they hash the new files and build
        # the masters too
        run.pool = dask_pool(run.cfg, run.workers)
    # the pool's workers read, hash, classify and stage the new files (without a pool yet,
    # a few threads of this process do)
    counts = ingest_stage(run.cfg, run.engine, run.run_id, run.settle_seconds, run.progress,
                          pool=run.pool)
    run.summary.new_files = counts.new
    run.summary.unsettled, run.summary.settle_seconds = counts.unsettled, counts.settle_seconds
    if run.pool is None:  # a local cluster comes up while the masters build
        run.pool = start_pool(run.cfg, run.engine, run.workers, run.reprocess)


def _masters(run: RunContext) -> None:
    # else (a local Dask cluster) the workers are still starting: the masters are built here
    pool = run.pool if run.pool is not None and run.pool.builds_masters else None
    run.summary.masters_built = masters_stage(run.cfg, run.engine, run.run_id, pool=pool)


def _lights(run: RunContext) -> None:
    run.summary.lights_done = lights_stage(run.cfg, run.engine, run.run_id,
                                           reprocess=run.reprocess, workers=run.workers,
                                           progress=run.progress, pool=run.pool)
    if run.pool is not None and run.pool.draws_plots:  # kept to draw the report's plots
        from clinepipe.products.plot_batch import warm_plotting

        run.pool.prepare(warm_plotting)
    elif run.pool is not None:  # shuts down while the run finishes
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
    # after the suspects and QC steps: both change magnitudes and flags of the nights touched;
    # computed beside the steps after it, stored by the last (run.star_stats_step)
    from clinepipe.run.star_stats_step import start_star_stats
    from clinepipe.store.queries import nights_of_runs

    nights = set(nights_of_runs(run.engine, [run.run_id, *run.killed])) | run.touched_nights
    run.star_stats = start_star_stats(run.engine, run.cfg.qc.exclude_from_variability,
                                      run.cfg.site.telescope, nights)


def _star_stats_stored(run: RunContext) -> None:
    from clinepipe.run.star_stats_step import finish_star_stats

    finish_star_stats(run.engine, run.star_stats)


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
    from functools import partial

    from clinepipe.run.cluster_jobs import run_jobs

    # the workers imported matplotlib after the lights (a pool that does not draw is closed)
    mapper = (partial(run_jobs, pool=run.pool, what="report plots")
              if run.pool is not None and run.pool.draws_plots else None)
    write_night_reports(run.cfg, run.engine, run.run_id, also_runs=run.killed, mapper=mapper)


def _aavso_files(run: RunContext) -> None:
    from clinepipe.products.aavso import no_obscode_warning, write_aavso_reports

    write_aavso_reports(run.cfg, run.engine, run.run_id, also_runs=run.killed)  # never raises
    run.summary.warnings += [w for w in (no_obscode_warning(run.cfg),) if w]


def _transits(run: RunContext) -> None:
    """Before the reports, which show the night's fits."""
    from clinepipe.run.transit_fits import transits_stage

    transits_stage(run.cfg, run.engine, run.run_id, also_runs=run.killed)  # never raises


#: The daily run, in order. Each step takes the run's context; a step that finds a frame
#: unusable records the reason on the frame and goes on, so only a broken archive or database
#: stops the list (the next run resumes where it stopped).
RUN_STEPS = (_ingest, _masters, _lights, _relative, _suspects, _quality, _star_stats,
             _star_counts, _colour_terms, _transform, _aavso_files, _transits, _night_reports,
             _star_stats_stored)


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
    with storage_errors(archive):
        archive.mkdir(parents=True, exist_ok=True)
    with storage_errors(archive), RunLock(archive / "clinepipe.lock") as lock:
        handler = attach_log_file(archive / "logs" / "clinepipe.log")
        run_id = None
        pool = None
        engine = None
        try:
            engine = open_database(cfg.database.url, parallel_plans=False)
            with session_scope(engine) as s:
                run = Run(started_at=_now(), software_version=__version__,
                          telescope=cfg.site.telescope, config_text=cfg.source_text,
                          config_sha256=hashlib.sha256(cfg.source_text.encode()).hexdigest(),
                          host=socket.gethostname(), pid=os.getpid(), status="running")
                s.add(run)
                s.flush()
                run_id = run.id
            log.info("run %d started (clinepipe %s)", run_id, __version__)
            killed = close_killed_runs(engine, run_id, lock.previous_holder)
            adopt_untagged_rows(cfg, engine)
            summary = RunSummary(run_id)
            run = RunContext(cfg, engine, run_id, tuple(killed), summary, reprocess, workers,
                             progress, cfg.paths.settle_seconds if settle_seconds is None
                             else settle_seconds, pool=local_pool(cfg, workers, lock.fd))
            try:
                for step in RUN_STEPS:
                    t_step = time.perf_counter()
                    step(run)
                    # one line per step: where a run's time goes (bench/bench_night.py reads it)
                    log.info("step %s took %.3f s", step.__name__.lstrip("_"),
                             time.perf_counter() - t_step)
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
            mark_run(engine, run_id, "crashed", why_failed(stop or exc))  # best effort
            raise
        finally:
            if pool is not None:
                pool.close()
            logging.getLogger("clinepipe").removeHandler(handler)
            handler.close()
