"""Per-frame work on a Dask cluster (``[execution] scheduler = "dask"`` or ``run --workers N``).

Only the database-free part of a light (reduce, sources, photometry, BJD and airmass) runs on
the workers (on an existing cluster, ``[execution] address``, also the new files' checksums
and one master per calibration group: :mod:`clinepipe.run.cluster_jobs`); the results come
back in submission order and are written by the main process, each frame whole in one
transaction, so the database is identical to a serial run.

:class:`DaskPool` starts the scheduler at once and lets the worker processes come up in the
background (forked from a fork server that has imported the per-frame modules once; each
worker then warmed up), so that a run can start it first and ingest files and build masters
meanwhile. :func:`dask_map` is the one-shot form.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator

log = logging.getLogger("clinepipe")


class DaskPool:
    """A Dask client (a LocalCluster of ``workers`` single-threaded processes, or the scheduler
    at ``address``) that comes up in the background; ``warm`` is run once on every worker.
    :meth:`map` waits for it; errors while starting are raised there. The interface the
    run's steps use: :class:`~clinepipe.run.run_pool.RunPool`."""

    def __init__(self, workers: int = 2, address: str = "", warm: Callable | None = None,
                 config_file: str = ""):
        self.workers, self.address, self.config_file = workers, address, config_file
        self.client = self.cluster = None
        self._error: BaseException | None = None
        self._closer: threading.Thread | None = None
        if not address:
            # the scheduler starts here, in the calling thread (a fraction of a second; its
            # garbage-collection hooks must not be installed while this thread runs on); the
            # worker processes come up in the background
            try:
                from dask.distributed import Client, LocalCluster

                _use_forkserver()
                # worker processes write to our stderr (cron's mail): distributed logs a
                # heartbeat that races the workers' own shutdown as an ERROR with a traceback
                # (seen under load at the end of a run). What matters reaches us anyway: a
                # failed or lost task is an exception in map(), reported in one sentence.
                self.cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True,
                                            dashboard_address=None,
                                            silence_logs=logging.CRITICAL)
                self.client = Client(self.cluster)
                self.cluster.scale(workers)
            except Exception as exc:  # reported by map()
                self._error = exc
        self._thread = threading.Thread(target=self._start, args=(warm,), daemon=True,
                                        name="clinepipe-dask-start")
        self._thread.start()

    def _start(self, warm) -> None:
        if self._error is not None:
            return
        try:
            if self.address:
                self.client = self._connect()
            else:
                self.client.wait_for_workers(self.workers)
            if warm is not None:
                self.client.run(warm)
        except BaseException as exc:  # reported by map(), in the main thread
            self._error = exc

    def _connect(self):
        """A client of the scheduler at ``address``; one sentence naming the key when there
        is no scheduler there."""
        from dask.distributed import Client

        from clinepipe.errors import ConfigError

        try:
            return Client(self.address)
        except OSError as exc:
            raise ConfigError(
                f"{self.config_file or 'the configuration'}: no Dask scheduler answers at "
                f"[execution] address = {self.address!r} ({exc}); start the cluster or fix "
                "the address.", reason="no Dask scheduler") from exc

    # A local cluster shares the run's CPUs. Measured on 2 CPUs (a 40-light night, each way
    # run 3 to 6 times in turn, load ~8): waiting for its workers to build the masters cost
    # 0.7 CPU-s more in all (the masters step 4.4 -> 8.4 s), drawing the report's plots on
    # them 1.4 CPU-s more (each worker imports matplotlib; the run's own process saves 1.4
    # of its 9.8), and neither made the run shorter.

    @property
    def builds_masters(self) -> bool:
        """On an existing cluster (``address``): its workers are up as the run begins. A local
        cluster is started after ingest; its workers come up while the masters are built in
        the run's own process."""
        return bool(self.address)

    @property
    def draws_plots(self) -> bool:
        """On an existing cluster: kept after the lights, its workers warmed for plotting
        (:meth:`prepare`) while the run finishes. A local cluster is closed after the lights,
        in the background (the plots are drawn in the run's own process)."""
        return bool(self.address)

    def start(self) -> None:
        """Nothing: the pool starts as it is made."""

    def ready(self) -> bool:
        """Whether the workers are up (or starting them failed: :meth:`map` raises that)."""
        return not self._thread.is_alive()

    def prepare(self, func: Callable) -> None:
        """Run ``func`` (no arguments) once on every worker, in the background, when they are
        up (else nothing: a pool still starting, or failed to): a task pinned to each worker,
        ahead of the work that follows (``client.run`` would block the workers' event loops,
        and waits for them)."""
        if not self.ready() or self._error is not None or self.client is None:
            return
        from dask.distributed import fire_and_forget

        for worker in self.client.scheduler_info(n_workers=-1).get("workers", {}):
            fire_and_forget(self.client.submit(func, pure=False, workers=[worker],
                                               allow_other_workers=False))

    def map(self, func: Callable, items: Iterable, what: str = "per-frame work") -> Iterator:
        """Apply ``func`` to ``items`` on the workers, yielding results in the items' order
        (``what`` names the work in the log)."""
        items = list(items)
        self._thread.join()
        if self._error is not None:
            raise self._error
        n = len(self.client.scheduler_info().get("workers", {}))
        log.info("%s of %d item(s) on Dask (%s)", what or "per-frame work", len(items),
                 f"{n} worker processes" if self.cluster is not None
                 else f"{self.address}, {n} workers")
        futures = self.client.map(func, items, pure=False)
        try:
            # in order: the writer needs time order for star identities
            yield from _in_order(self.client, futures)
        finally:
            for future in futures:
                future.release()

    def close(self, wait: bool = True) -> None:
        """Shut the client (and a LocalCluster) down; ``wait=False`` lets that happen in the
        background while the run goes on (a later ``close()`` waits for it)."""
        if self._closer is None:
            self._closer = threading.Thread(target=self._close, daemon=True,
                                            name="clinepipe-dask-close")
            self._closer.start()
        if wait:
            self._closer.join()

    def _close(self) -> None:
        self._thread.join()
        try:
            if self.client is not None:
                self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
            self.client = self.cluster = None

    def __enter__(self) -> "DaskPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: results fetched from the workers in one call at most (they are held here together)
GATHER_AT_ONCE = 16


def _in_order(client, futures: list) -> Iterator:
    """The results of ``futures`` in their order, each future released once yielded.

    The next result is waited for alone; the results after it that are ready by then (up to
    :data:`GATHER_AT_ONCE`) are fetched with it in one call: each fetch is a round trip
    through the client's event loop and to the workers, ~1 ms of this process's CPU (a
    trivial task's whole cost here ~2.5 -> ~1.1 ms when its results wait to be taken). A
    failed task raises when its turn comes, after the results before it."""
    i = 0
    while i < len(futures):
        first = futures[i]
        if first.status != "finished":  # (pending, or failed: result() waits, or raises)
            yield first.result()
            first.release()
            i += 1
            continue
        j = i + 1
        while (j < len(futures) and j - i < GATHER_AT_ONCE
               and futures[j].status == "finished"):
            j += 1
        for future, result in zip(futures[i:j], client.gather(futures[i:j])):
            yield result
            future.release()
        i = j


#: imported once by the fork server, inherited by every worker process forked from it
PRELOAD = ["clinepipe.run.light_stages", "clinepipe.ccd.reduce", "clinepipe.astrometry.detect",
           "clinepipe.astrometry.wcs", "clinepipe.photometry.aperture", "clinepipe.photometry.psf",
           "clinepipe.photometry.times", "scipy.spatial"]  # the photometry's, on its first light


def _use_forkserver() -> None:
    """Start local workers from a fork server that has imported Dask and the per-light modules
    once, instead of a fresh interpreter per worker (``spawn``): on a small machine those
    imports cost seconds of CPU that the run's own work needs. Left as it is when configured
    otherwise, or where there is no fork server (then ``spawn`` it is)."""
    import multiprocessing

    import dask

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    if dask.config.get("distributed.worker.multiprocessing-method") != "spawn":
        return  # configured otherwise: leave it
    try:
        from multiprocessing import forkserver

        from distributed.utils import get_mp_context

        with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
            ctx = get_mp_context()  # sets distributed's own preload list (distributed, numpy…)
        preload = list(getattr(forkserver._forkserver, "_preload_modules", None) or [])
        ctx.set_forkserver_preload(preload + [m for m in PRELOAD if m not in preload])
    except Exception:  # an unusual Python or Dask: spawn works everywhere
        return
    dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})


def dask_map(func: Callable, items: Iterable, *, workers: int = 2, address: str = "") -> Iterator:
    """Apply ``func`` to ``items`` on Dask, yielding results in the items' order."""
    with DaskPool(workers, address) as pool:
        yield from pool.map(func, items)
