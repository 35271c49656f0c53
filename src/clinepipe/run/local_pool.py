"""Worker processes forked from the run itself (``[execution] scheduler = "local"``, the default).

The per-frame work of a run holds Python's lock most of the time (sep, bottleneck and astropy
keep it), so threads do not make a light faster: measured on a 20-light 2048² night, two
threads took as long as one. Processes do. A fork costs milliseconds and the workers share
the run's imported modules, where Dask's local cluster starts fresh interpreters (1.4 CPU-s
on a small machine) and a scheduler.

The pool has the interface the run's steps use (:class:`~clinepipe.run.run_pool.RunPool`, as
:class:`~clinepipe.run.parallel.DaskPool`), so the masters' groups, the lights and the report's
plots go to it the same way; the database stays in the run's process.

The workers are forked by :meth:`LocalPool.start` (the run calls it as ingest begins) or the
first :meth:`LocalPool.map`, after this process has imported the per-frame modules (which the
workers then share) and frozen its objects out of the garbage collector's sight
(:func:`_before_fork`). Each one, before anything else: closes its copy of the run lock (the
kernel keeps an ``flock`` while any copy of its file is open, so a worker left behind would
hold the next run off), asks the kernel to kill it when the run dies (a killed run leaves no
worker writing into the archive), ignores Ctrl-C (the run itself stops them), and imports
the per-frame modules (already there when forked from a run).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator

from clinepipe.errors import ClinepipeError

log = logging.getLogger("clinepipe")

#: imported by each worker as it starts (the modules of a light and of a master); scipy.spatial
#: (with the scipy.special it imports) is what the photometry imports on its first light
#: (``blend_contamination``'s cKDTree, ``ndtr``): 0.4 CPU-s that every worker paid again
PRELOAD = ("clinepipe.run.light_stages", "clinepipe.run.cluster_jobs", "clinepipe.ccd.reduce",
           "clinepipe.ccd.reduce_light", "clinepipe.ccd.master_groups",
           "clinepipe.astrometry.detect", "clinepipe.astrometry.wcs",
           "clinepipe.photometry.aperture", "clinepipe.photometry.background",
           "clinepipe.photometry.psf", "clinepipe.photometry.times", "scipy.spatial")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_workers(workers: int) -> int:
    """``[execution] workers`` for a local pool: 0 means one per available CPU."""
    return workers if workers > 0 else available_cpus()


class LocalPool:
    """``workers`` processes forked from this one, started on the first :meth:`map`.

    Parameters
    ----------
    workers : int
        How many worker processes.
    close_fds : tuple of int
        File descriptors each worker closes first (the run lock).
    warm : callable, optional
        Run once in each worker after the imports (e.g. to load the time tables of the BJD
        computation, half a second, so the first light costs what the others do).
    """

    #: forked as ingest begins (:meth:`start`), the workers build the masters
    builds_masters = True
    #: kept after the lights, the workers import matplotlib (:meth:`prepare`) while the run
    #: finishes, then draw the report's plots in parallel
    draws_plots = True

    def __init__(self, workers: int, close_fds: tuple[int, ...] = (),
                 warm: Callable | None = None):
        self.workers = int(workers)
        self.close_fds = tuple(close_fds)
        self.warm = warm
        self._executor = None

    def ready(self) -> bool:
        """Always: the workers are forked when :meth:`map` is first called."""
        return True

    def start(self) -> None:
        """Fork the workers now (they import the per-frame modules while the caller works on);
        else the first :meth:`map` does."""
        if self._executor is None:
            self._start()
            self.prepare(_nothing)  # with "fork", the first task forks them all

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _before_fork()
        self._executor = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("fork"),
            initializer=_start_worker, initargs=(os.getpid(), self.close_fds, self.warm))
        return self._executor

    def map(self, func: Callable, items: Iterable, what: str = "per-frame work") -> Iterator:
        """Apply ``func`` to ``items`` in the worker processes, yielding the results in the
        items' order (all submitted at once; ``what`` names the work in the log).

        Raises :class:`~clinepipe.errors.ClinepipeError` ("worker process died") when a
        worker ends without a result (killed, out of memory)."""
        from concurrent.futures.process import BrokenProcessPool

        items = list(items)
        if not items:
            return
        executor = self._executor or self._start()
        log.info("%s of %d item(s) on %d local worker processes", what or "per-frame work",
                 len(items), self.workers)
        futures = [executor.submit(func, item) for item in items]
        try:
            for future in futures:
                try:
                    result = future.result()
                except BrokenProcessPool as exc:
                    raise ClinepipeError(
                        f"a worker process of the run died during the {what or 'per-frame work'} "
                        "(killed, or out of memory); the next run takes the work up again.",
                        reason="worker process died") from exc
                yield result
        finally:
            for future in futures:
                future.cancel()

    def prepare(self, func: Callable) -> None:
        """Run ``func`` (no arguments) once per worker, in the background, when the workers
        are already running (e.g. an import that later work needs, while they are idle)."""
        if self._executor is not None:
            for _ in range(self.workers):
                self._executor.submit(func)

    def close(self, wait: bool = True) -> None:
        """Stop the workers (``wait=False``: without waiting for them to exit)."""
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            if wait:
                self._executor = None

    def __enter__(self) -> "LocalPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _before_fork() -> None:
    """Import the per-frame modules here, then freeze what is alive out of the garbage
    collector's sight, just before the workers are forked.

    Imported once, the modules are shared by every worker (copy-on-write) instead of imported
    by each on start while the run ingests (on 2 cores, 3 processes for 2 CPUs), and this
    process's later steps find astropy's core loaded (``astropy.timeseries`` for the periods:
    0.3 -> 0.03 s), and the scipy.special and scipy.spatial the workers' photometry needs
    (0.4 CPU-s in each worker on its first light).
    ``gc.freeze`` (after one collection, so no garbage is frozen) keeps the ~80,000 objects
    alive by then out of every later full collection: of this process (three in a run: 0.9 ->
    0.3 s) and of its exit, and of the workers, whose collections would otherwise write into,
    and so copy, every page those objects live on. Measured on a 20-light 2048² night with 2
    workers (machine load 5-10): the run's CPU 18.3-18.8 -> 15.4-17.5 s, of which the workers'
    12.9-13.2 -> 10.5-12.3 s and this process's exit 0.54 -> 0.10-0.16 s; the peak RSS 327 ->
    312 MiB. The price: an object alive now that later becomes garbage in a reference cycle is
    never freed, which a run's process, ending with the run, never feels (one that runs many
    pipelines, as the tests do, keeps those few objects of each).
    """
    import gc
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()


def _start_worker(parent_pid: int, close_fds: tuple[int, ...], warm: Callable | None) -> None:
    """Run first in every worker process (see the module's docstring)."""
    import importlib
    import signal

    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    _die_with_parent()
    if os.getppid() != parent_pid:  # the run died before the request above was made
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in PRELOAD:
        importlib.import_module(name)
    if warm is not None:
        warm()


def _nothing() -> None:
    return None


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``);
    elsewhere a worker of a killed run ends when it finds its task queue closed."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
