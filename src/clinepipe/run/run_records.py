"""A run's own records: runs killed before they finished closed, rows of older versions adopted,
the run's outcome and reason, and its log file in the archive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from clinepipe.config import Config
from clinepipe.errors import ClinepipeError, StorageError, storage_error
from clinepipe.run.masters_step import in_archive
from clinepipe.store.models import Frame, Master, Run
from clinepipe.store.models import utc_now as _now

log = logging.getLogger("clinepipe")



def close_killed_runs(engine, run_id: int, previous_holder: str | None) -> list[int]:
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
def storage_errors(archive: Path):
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


def mark_run(engine, run_id: int | None, status: str, error: str = "") -> None:
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


def why_failed(exc: BaseException) -> str:
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


def attach_log_file(path: Path) -> logging.Handler:
    """Append the ``clinepipe`` logger's records (INFO and above, time-stamped) to ``path``,
    creating its folder; returns the handler, for the caller to remove when the run ends. A log
    file that cannot be written is reported once on stderr, never stops the run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _LogFile(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("clinepipe")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler
