"""The ingest's per-file work, free of the database, for the run's workers.

For one incoming file, :func:`stage_file` reads it once, hashes it (SHA-256), reads its header
(:func:`clinepipe.ingest.classify.read_frame_info`) and, when the frame is good, writes its
bytes to a staging file on the archive's file system, flushed and fsync-ed. Only a small
:class:`StagedFile` goes back (no bytes): the run's process then decides, in the files' order,
what each file is (a duplicate, its archive name) and renames the staging file into place
(:mod:`clinepipe.run.ingest_step`), so the database and archive do not depend on where the jobs
ran. The files go to the run's pool in batches (:func:`ingest_batches`, :func:`stage_files`:
a few files per task, the configuration sent once with them, their results back together):
to its forked workers, or an existing Dask cluster whose workers see the incoming folder and
the archive at the same paths; a serial run gives them to a few threads of its own
(:class:`ThreadMapper`: reading, hashing and fsync release Python's lock, so the files are
read while others are written).

Staging files live in ``archive/raw/.staging/``; one that a killed run left there is removed
by the next run's ingest (:func:`clear_staging`; only the run holding the lock ingests).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from clinepipe.ingest.frame_info import FrameInfo

log = logging.getLogger("clinepipe")

#: the threads that stage a serial run's files: two keep the disk busy reading one file while
#: another is hashed or written (each holds one file's bytes in memory, tens of MB at most)
INGEST_THREADS = 2
#: at most this many files in one task (:func:`ingest_batches`): the task's cost shared by them
BATCH_FILES = 16
#: at least this many tasks when there are that many files: the workers share a small night
BATCH_TASKS = 8


def staging_folder(archive: Path) -> Path:
    """Where the staging files of ``archive`` go: inside ``raw/``, on the file system of the
    archive copies, so that putting one in place is a rename."""
    return Path(archive) / "raw" / ".staging"


def clear_staging(archive: Path) -> int:
    """Remove the staging files a killed run left in ``archive``; how many there were."""
    folder = staging_folder(archive)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


@dataclass(frozen=True)
class IngestBatch:
    """A few incoming files to stage in one task: ``files``, each ``(path, rel)`` with ``rel``
    its path relative to ``incoming`` (what ``[headers.kind_by_path]`` globs read); and what
    every file of the batch shares, sent once with it: the ``camera`` and ``site`` sections,
    the ``[headers]`` ``rules`` and the ``staging`` folder."""

    files: tuple[tuple[Path, str], ...]
    camera: object
    site: object
    rules: object
    staging: Path


def ingest_batches(files: Sequence[tuple[Path, str]], camera, site, rules,
                   staging: Path) -> list[IngestBatch]:
    """``files`` cut into consecutive batches, one task each, in order.

    One task per file cost the run's process 4-6 ms of CPU a file on a Dask cluster (228
    files, 2 workers: a future, its result fetched from a worker, the job pickled with the
    configuration's sections); a batch pays that once. At least :data:`BATCH_TASKS` batches
    when there are that many files, so a small night's files are still shared out over the
    workers (or threads); at most :data:`BATCH_FILES` files in one; the files spread evenly.

    Parameters
    ----------
    files : sequence of (Path, str)
        Each incoming file's path and its path relative to ``incoming``, in order.
    camera, site, rules
        The ``[camera]`` and ``[site]`` sections and the ``[headers]`` rules, shared.
    staging : Path
        The staging folder (:func:`staging_folder`).

    Returns
    -------
    list of IngestBatch
        Every file once, in order.
    """
    files = list(files)
    if not files:
        return []
    n = max(-(-len(files) // BATCH_FILES), min(len(files), BATCH_TASKS))
    size, extra = divmod(len(files), n)
    batches, start = [], 0
    for i in range(n):
        stop = start + size + (i < extra)
        batches.append(IngestBatch(tuple(files[start:stop]), camera, site, rules, staging))
        start = stop
    return batches


@dataclass(frozen=True)
class StagedFile:
    """What :func:`stage_file` found: the file's ``sha256`` (hex) and ``size`` (bytes), None
    when it could not be read; ``info`` its header's facts when it is a good frame, and
    ``staging`` the file holding its bytes (to rename into the archive, or delete), and
    ``src_staging`` that of its Image Link ``.SRC`` list, if it has one; else ``state``
    ("failed" or "skipped"), the named ``reason`` and the log ``message``."""

    sha256: str | None
    size: int | None
    info: FrameInfo | None = None
    staging: Path | None = None
    src_staging: Path | None = None
    state: str | None = None
    reason: str | None = None
    message: str = ""

    def discard(self) -> None:
        """Delete the staging files (the file is a duplicate, or its copy is there already)."""
        for path in (self.staging, self.src_staging):
            if path is not None:
                path.unlink(missing_ok=True)


def stage_files(batch: IngestBatch) -> list[StagedFile]:
    """:func:`stage_file` for each file of ``batch``, in order. Raises OSError when a staging
    file cannot be written (a full archive disk: the run stops), after deleting the staging
    files of the batch's earlier files (the next run stages them again)."""
    done: list[StagedFile] = []
    try:
        for path, rel in batch.files:
            done.append(stage_file(batch, path, rel))
    except BaseException:
        for staged in done:
            staged.discard()
        raise
    return done


def stage_file(batch: IngestBatch, path: Path, rel: str) -> StagedFile:
    """Read, hash, classify and stage the incoming file ``path`` (``rel`` relative to
    ``incoming``) with the configuration ``batch`` carries (see the module docstring); a file
    that cannot be read or used is an outcome, not an exception. Raises OSError only when
    the staging file cannot be written (a full archive disk: the run stops)."""
    from clinepipe.atomic_files import stage_bytes
    from clinepipe.errors import BadInput
    from clinepipe.ingest.classify import SkippedFrame, read_frame_info

    try:  # read once: the checksum and the archive copy are made of the same bytes
        content = Path(path).read_bytes()
    except OSError as exc:
        error = exc.strerror or str(exc)
        return StagedFile(None, None, state="failed", reason=f"unreadable file ({error})",
                          message=f"{rel}: cannot be read ({error})")
    digest = hashlib.sha256(content).hexdigest()
    try:  # (its header and pixels come from the page cache the read above filled)
        info = read_frame_info(path, batch.camera, batch.site, rules=batch.rules, relpath=rel)
    except SkippedFrame as exc:  # not a frame clinepipe uses: said, never a failure
        return StagedFile(digest, len(content), state="skipped", reason=exc.reason)
    except BadInput as exc:
        return StagedFile(digest, len(content), state="failed", reason=exc.reason,
                          message=exc.message)
    name = Path(path).name
    staged = stage_bytes(batch.staging, content, prefix=f"{name}.")
    src_staged = None
    try:
        shutil.copystat(path, staged)  # the raw file's permission bits and times
        src_list = src_list_of(Path(path))
        if src_list is not None:  # kept beside the archive copy of its light
            src_staged = stage_bytes(batch.staging, src_list.read_bytes(), prefix=f"{name}.SRC.")
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return StagedFile(digest, len(content), info=info, staging=staged, src_staging=src_staged)


def src_list_of(raw: Path) -> Path | None:
    """The Image Link ``.SRC`` list beside a raw frame (``.SRC``, ``.src`` or ``.Src``), if any."""
    for suffix in (".SRC", ".src", ".Src"):
        src = raw.with_suffix(suffix)
        if src.is_file():
            return src
    return None


class ThreadMapper:
    """The interface of the run's pools (``map(func, items, what)``, results in the items'
    order) on ``threads`` threads of this process: for work that waits on the disk or on
    hashlib, which release Python's lock."""

    def __init__(self, threads: int = INGEST_THREADS):
        self.threads = max(1, int(threads))

    def map(self, func: Callable, items: Iterable, what: str = "") -> Iterator:
        """Apply ``func`` to ``items`` on the threads, yielding results in the items' order;
        at most ``threads`` items are in work at once."""
        from concurrent.futures import ThreadPoolExecutor

        items = list(items)
        if not items:
            return
        log.debug("%s of %d item(s) on %d threads", what or "work", len(items), self.threads)
        with ThreadPoolExecutor(self.threads, thread_name_prefix="clinepipe-ingest") as pool:
            futures = [pool.submit(func, item) for item in items]
            try:
                for future in futures:
                    yield future.result()
            finally:
                for future in futures:
                    future.cancel()
