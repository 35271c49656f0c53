"""What the run's steps ask of its pool of worker processes, whatever kind it is.

Two pools implement it: :class:`~clinepipe.run.local_pool.LocalPool` (processes forked from
the run, ``[execution] scheduler = "local"``, the default) and
:class:`~clinepipe.run.parallel.DaskPool` (a local Dask cluster, or an existing one at
``[execution] address``). :mod:`clinepipe.run.pipeline` asks the pool what it does
(:attr:`RunPool.builds_masters`, :attr:`RunPool.draws_plots`), never which class it is, so
another kind of pool needs no change there; the jobs it is given are plain functions of
picklable values (:mod:`clinepipe.run.cluster_jobs`), whose results come back in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class RunPool(Protocol):
    """A run's pool of worker processes, as the run's steps use it, in this order:
    :meth:`start` as ingest begins; the masters (when :attr:`builds_masters`) and the lights
    through :meth:`map`; after the lights, :meth:`prepare` for the plots when
    :attr:`draws_plots`, else :meth:`close` without waiting; the report's plots through
    :meth:`map` when :attr:`draws_plots`; :meth:`close` at the end of the run."""

    #: whether the run's masters (one job per calibration group) go to the workers: they are
    #: up, or forked, by the time ingest ends (else the run's own process builds them)
    builds_masters: bool
    #: whether the pool is kept after the lights to draw the morning report's plots, warmed
    #: for it by :meth:`prepare` (else it is closed after the lights, the plots drawn in the
    #: run's own process)
    draws_plots: bool

    def start(self) -> None:
        """Start the workers now, if the pool has not already (called as ingest begins)."""

    def ready(self) -> bool:
        """Whether the workers are up (until then the run measures the first lights itself)."""

    def map(self, func: Callable, items: Iterable, what: str = "per-frame work") -> Iterator:
        """``func`` over ``items`` on the workers, results yielded in the items' order
        (``what`` names the work in the log)."""

    def prepare(self, func: Callable) -> None:
        """Run ``func`` (no arguments) once per worker, in the background, when they are up."""

    def close(self, wait: bool = True) -> None:
        """Stop using the workers (``wait=False``: in the background; a later call waits)."""
