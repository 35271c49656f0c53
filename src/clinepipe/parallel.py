"""Per-frame work on a Dask cluster (``[execution] scheduler = "dask"`` or ``run --workers N``).

Only the database-free part of a light (reduce, sources, photometry, BJD and airmass) runs on
the workers; the results come back in submission order and are written by the main process,
one transaction per frame, so the database is identical to a serial run.

:class:`DaskPool` starts the cluster in a background thread, so that a run can start it first
and let it come up (worker processes spawned, the per-frame modules imported) while the main
process ingests files and builds masters. :func:`dask_map` is the one-shot form.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator

log = logging.getLogger("clinepipe")


class DaskPool:
    """A Dask client (a LocalCluster of ``workers`` single-threaded processes, or the scheduler
    at ``address``) started in the background; ``warm`` is run once on every worker."""

    def __init__(self, workers: int = 2, address: str = "", warm: Callable | None = None):
        self.workers, self.address = workers, address
        self.client = self.cluster = None
        self._error: BaseException | None = None
        self._closer: threading.Thread | None = None
        self._thread = threading.Thread(target=self._start, args=(warm,), daemon=True,
                                        name="clinepipe-dask-start")
        self._thread.start()

    def _start(self, warm) -> None:
        try:
            from dask.distributed import Client, LocalCluster

            if self.address:
                self.client = Client(self.address)
            else:
                self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                            processes=True, dashboard_address=None,
                                            silence_logs=40)
                self.client = Client(self.cluster)
            if warm is not None:
                self.client.run(warm)
        except BaseException as exc:  # reported by map(), in the main thread
            self._error = exc

    def map(self, func: Callable, items: Iterable) -> Iterator:
        """Apply ``func`` to ``items`` on the workers, yielding results in the items' order."""
        items = list(items)
        self._thread.join()
        if self._error is not None:
            raise self._error
        n = len(self.client.scheduler_info().get("workers", {}))
        log.info("per-frame work of %d item(s) on Dask (%s)", len(items),
                 f"{n} worker processes" if self.cluster is not None
                 else f"{self.address}, {n} workers")
        futures = self.client.map(func, items, pure=False)
        try:
            for future in futures:  # in order: the writer needs time order for star identities
                yield future.result()
                future.release()
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


def dask_map(func: Callable, items: Iterable, *, workers: int = 2, address: str = "") -> Iterator:
    """Apply ``func`` to ``items`` on Dask, yielding results in the items' order."""
    with DaskPool(workers, address) as pool:
        yield from pool.map(func, items)
