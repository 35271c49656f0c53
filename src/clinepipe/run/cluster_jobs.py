"""The run's database-free jobs besides the lights and ingest: one master per group.

Each job is a plain function of a small picklable value, so the run does it in its own process
or, on an existing Dask cluster (``[execution] address``), sends it to the workers
(:meth:`clinepipe.run.parallel.DaskPool.map`); the main process then writes the database rows
in the same order either way, so the results do not depend on where the jobs ran. The workers
must see the incoming folder and the archive at the same paths as the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from clinepipe.errors import BadInput, Waiting


@dataclass(frozen=True)
class MasterJob:
    """One calibration group's master to build and write: everything it needs, no database.

    ``paths`` the group's archive copies; ``needs`` kind -> the chosen master's file (None:
    there is none); ``inputs`` path -> (raw path, SHA-256) of each member, for the master's
    provenance; ``output`` where the master is written; ``camera`` and ``reduction`` the
    configuration's sections."""

    kind: str
    night: str
    binning: int
    filter: str | None
    paths: tuple[Path, ...]
    needs: dict
    inputs: dict
    provenance: dict
    output: Path
    camera: object
    reduction: object


@dataclass(frozen=True)
class MasterOutcome:
    """What :func:`make_master` did: the master's ``used`` and ``rejected`` (path -> reason)
    inputs, its ``shape`` and dark ``exptime`` (s); or ``state`` "waiting"/"failed" with the
    named ``reason`` and the log ``message`` (no master written)."""

    used: tuple[Path, ...] = ()
    rejected: dict | None = None
    shape: tuple[int, int] | None = None
    exptime: float | None = None
    state: str | None = None
    reason: str | None = None
    message: str | None = None


def make_master(job: MasterJob) -> MasterOutcome:
    """Build the master of one group and write it to ``job.output`` (atomically); a group that
    must wait (no master it needs) or cannot be used is an outcome, not an exception."""
    from clinepipe.ccd.master_files import write_master
    from clinepipe.ccd.master_groups import build_master

    red = job.reduction
    try:
        result = build_master(job.kind, list(job.paths), job.needs, binning=job.binning,
                              camera=job.camera, reduction=red, mode=red.mode)
    except Waiting as exc:
        return MasterOutcome(state="waiting", reason=exc.reason, message=exc.reason)
    except BadInput as exc:
        return MasterOutcome(state="failed", reason=exc.reason, message=exc.message)
    inputs = [{"raw_path": job.inputs[p][0], "sha256": job.inputs[p][1]} for p in result.used]
    provenance = {"inputs": inputs, **job.provenance}
    checksums = {p: sha for p, (_, sha) in job.inputs.items() if sha}
    write_master(job.output, result, kind=job.kind, mode=red.mode, binning=job.binning,
                 filter=job.filter, provenance=provenance, checksums=checksums)
    return MasterOutcome(used=tuple(result.used), rejected=dict(result.rejected),
                         shape=tuple(result.data.shape),
                         exptime=getattr(result, "exptime", None))


def run_jobs(func: Callable, items: Iterable, pool=None, what: str = "") -> Iterator:
    """``func`` over ``items`` in order: lazily here (one after the other, as the caller
    consumes them) when ``pool`` is None, else on the pool's Dask workers (all submitted at
    once, results in order)."""
    if pool is None:
        return map(func, items)
    items = list(items)
    return pool.map(func, items, what=what) if items else iter(())
