"""Per-frame work on a Dask cluster (``[execution] scheduler = "dask"`` or ``run --workers N``).

Only the database-free part of a light (reduce, sources, photometry) runs on the workers; the
results come back in submission order and are written by the main process, one transaction
per frame, so the database is identical to a serial run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator


def dask_map(func: Callable, items: Iterable, *, workers: int = 2, address: str = "") -> Iterator:
    """Apply ``func`` to ``items`` on Dask, yielding results in the items' order."""
    from dask.distributed import Client, LocalCluster

    items = list(items)
    if address:
        client, cluster = Client(address), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    try:
        futures = client.map(func, items, pure=False)
        for future in futures:  # in order: the writer needs time order for star identities
            yield future.result()
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
