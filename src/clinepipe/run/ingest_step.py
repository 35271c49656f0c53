"""The ingest step of a run: every new raw file becomes one frame row (copied, checksummed, classified) or a named failure."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import ChainMap
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from sqlalchemy import insert, select, update

from clinepipe.config import Config
from clinepipe.errors import ClinepipeError
from clinepipe.ingest.frame_info import FrameInfo
from clinepipe.store.models import Frame
from clinepipe.store.models import utc_now as _now
from clinepipe.store.tables import frames as frames_table

log = logging.getLogger("clinepipe")

#: new files whose rows are committed in one transaction (their archive folders fsync-ed once
#: before): 40 files of a night in one transaction each took 60 folder fsyncs and 40 commits
COMMIT_FILES = 20
#: incoming files looked up in the database at once (bounds the SQL ``IN`` lists)
LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class IngestCounts:
    """What the ingest step of a run found: ``new`` files recorded, and ``unsettled`` files
    left for the next run because they changed less than ``settle_seconds`` (s) ago."""

    new: int
    unsettled: int
    settle_seconds: float


def ingest_stage(cfg: Config, engine, run_id: int, settle_seconds: float,
                 progress=None, pool=None) -> IngestCounts:
    """Record every new file of ``incoming``: archive copy + frame row, or a failure reason.

    A file that failed at ingest before is tried again on every run (a fixed permission, a
    re-saved header or a configuration change may have cured it); its row changes only when
    the outcome does. Returns how many files were new and how many still being written.
    ``pool``: the run's pool (:class:`~clinepipe.run.local_pool.LocalPool`, or a
    :class:`~clinepipe.run.parallel.DaskPool` on an existing cluster) whose workers read, hash,
    classify and stage the files, a batch of them per task
    (:func:`clinepipe.run.ingest_jobs.stage_files`); None: a few threads of this process do.
    This process decides, in the files' order, what each file is and puts its copy in place."""
    from clinepipe.ingest.files import settled_and_recent
    from clinepipe.run.cluster_jobs import run_jobs
    from clinepipe.run.ingest_jobs import (
        ThreadMapper,
        clear_staging,
        ingest_batches,
        stage_files,
        staging_folder,
    )

    incoming = cfg.paths.incoming
    if not incoming.is_dir():
        raise ClinepipeError(f"{incoming}: the incoming folder does not exist.", reason="no incoming")
    # one listing for both lists, so every file is in exactly one
    files, recent = settled_and_recent(incoming, settle_seconds)
    telescope = cfg.site.telescope
    rel = {p: p.relative_to(incoming).as_posix() for p in (*files, *recent)}
    known = _known_frames(engine, telescope, rel.values())
    # files changed too recently that are not in the database yet: the next run takes them
    unsettled = sum(1 for p in recent if rel[p] not in known)
    new = [p for p in files if rel[p] not in known]
    # a configuration change ([headers]) may cure a failed file or use a skipped one
    retry = [p for p in files if rel[p] in known and known[rel[p]].state in ("failed", "skipped")
             and known[rel[p]].stage == "ingest"]
    if progress:
        progress.start("ingest", len(new))
    # a killed run's staging files (only the run holding the lock ingests): never frames
    left = clear_staging(cfg.paths.archive)
    if left:
        log.info("ingest: %d staging file(s) of a killed run removed", left)
    notes = _Notes()
    staging = staging_folder(cfg.paths.archive)
    batches = ingest_batches([(p, rel[p]) for p in new + retry], cfg.camera, cfg.site,
                             cfg.headers.rules(), staging)
    # read, hashed, classified and staged on the workers (a batch of files per task, all
    # at once); decided and put in place here, in the files' order
    staged = run_jobs(stage_files, batches, pool or ThreadMapper(),
                      what=f"new files ({len(new) + len(retry)} in batches)")
    recorder = _Recorder(engine, progress)
    cured = 0
    try:
        for batch, results in zip(batches, staged):
            # the twins of the batch's files in the database, looked up at once; the rows
            # recorded before them by this ingest first (committed or not)
            twins = ChainMap(recorder.recorded, _twins_of(engine, telescope, {
                r.sha256 for (path, _), r in zip(batch.files, results)
                if r.sha256 and rel[path] not in known}))
            for (path, _), result in zip(batch.files, results):
                if rel[path] not in known:  # a new file
                    row, message, folders = _record_file(cfg, engine, path, rel[path], run_id,
                                                         result, notes=notes, twins=twins)
                    _night_from_folders(row)
                    recorder.add(row, message, folders)
                    continue
                recorder.flush()  # (the new files come first: their rows are all in)
                cured += _record_again(cfg, engine, path, rel[path], run_id, result,
                                       known[rel[path]], notes)
        recorder.flush()
    finally:
        if hasattr(staged, "close"):  # stopped (a full disk): no new jobs (their files: next run)
            staged.close()
    notes.log()
    log.info("ingest: %d new file(s)%s", len(new),
             f"; {len(retry)} earlier failure(s) tried again, {cured} ingested now"
             if retry else "")
    if unsettled:
        log.info("ingest: %d file(s) still being written (changed < %g s ago): the next run "
                 "takes them", unsettled, settle_seconds)
    try:  # empty now, unless a job of a killed run still writes (removed next time)
        staging.rmdir()
    except OSError:
        pass
    return IngestCounts(len(new), unsettled, float(settle_seconds))


def _known_frames(engine, telescope: str, raw_paths) -> dict:
    """``{raw path: row}`` of the frames of ``telescope`` (other telescopes' files of the same
    names are theirs) among ``raw_paths``, the files in incoming: looked up by name through
    the (telescope, raw_path) index, so a run reads the rows of its incoming files, never the
    whole archive's (62,000 frames of ten years: 0.5 s)."""
    from clinepipe.store.db import session_scope

    names = sorted(raw_paths)
    known = {}
    with session_scope(engine) as s:
        for lo in range(0, len(names), LOOKUP_CHUNK):
            known.update((r.raw_path, r) for r in s.execute(
                select(Frame.id, Frame.raw_path, Frame.state, Frame.stage, Frame.reason,
                       Frame.sha256).where(Frame.telescope == telescope,
                                           Frame.raw_path.in_(names[lo:lo + LOOKUP_CHUNK]))))
    return known


#: a folder named for its night: 20260316, 2026-03-16 or 2026_03_16
_NIGHT_FOLDER = re.compile(r"(\d{4})[-_]?(\d{2})[-_]?(\d{2})")


def night_from_folders(rel: str) -> str | None:
    """The night ``YYYYMMDD`` of the innermost folder of ``rel`` (a path relative to
    ``incoming``) named as a date (``20260316``, ``2026-03-16``, ``2026_03_16``), else None."""
    for part in reversed(Path(rel).parts[:-1]):
        m = _NIGHT_FOLDER.fullmatch(part)
        if m is None:
            continue
        try:
            dt.date(*(int(g) for g in m.groups()))
        except ValueError:  # 20261399 is not a date
            continue
        return "".join(m.groups())
    return None


def _night_from_folders(row: dict) -> None:
    """A file that failed before its header gave a night gets its folder's (else stays None),
    so `status` lists it under its night instead of ``?``."""
    if row.get("night") is None:
        row["night"] = night_from_folders(row["raw_path"])


class _Notes:
    """What is odd but usable about the headers of a run's files (no filter keyword, no CCD
    temperature, a coarse time…): said once per reason with a count and one example, not once
    per file."""

    def __init__(self):
        self.seen: dict[str, list] = {}

    def add(self, rel: str, info: FrameInfo) -> None:
        for reason, message in info.notes:
            entry = self.seen.setdefault(reason, [0, rel, message])
            entry[0] += 1
        if info.time_note:  # which time keyword was used and why is said for every frame
            log.warning("%s: time from %s: %s", rel, info.time_source, info.time_note)

    def log(self) -> None:
        for reason, (count, rel, message) in self.seen.items():
            log.info("ingest: %d file(s): %s (e.g. %s %s)", count, reason, rel,
                     message.rstrip("."))


def _record_again(cfg: Config, engine, path: Path, rel: str, run_id: int, staged, old,
                  notes: _Notes) -> bool:
    """Record a file that failed (or was skipped) at ingest before, tried again: its row
    ``old`` changes only when the outcome does. Whether it is a frame now."""
    from clinepipe.atomic_files import sync_folders
    from clinepipe.store.db import session_scope

    row, message, folders = _record_file(cfg, engine, path, rel, run_id, staged,
                                         frame_id=old.id, notes=notes)
    sync_folders(folders)
    _night_from_folders(row)
    if (row.get("state"), row.get("reason"), row.get("sha256")) == (old.state, old.reason,
                                                                    old.sha256):
        return False  # the same failure again: nothing to write or to say twice
    with session_scope(engine) as s:
        s.execute(update(Frame).where(Frame.id == old.id).values(**row))
    what = "failed at" if old.state == "failed" else "was skipped at"
    log.info("%s: tried again after it %s ingest (%s): now %s", rel, what, old.reason,
             row.get("state") if row.get("state") not in ("failed", "skipped")
             else row.get("reason"))
    _log_ingest(row, message)
    return row.get("state") not in ("failed", "skipped")


def _record_file(cfg: Config, engine, path: Path, rel: str, run_id: int, staged,
                 frame_id: int | None = None, notes: _Notes | None = None,
                 twins=None) -> tuple:
    """The ``frames`` row of one incoming file, the log message of a failure (or "") and the
    folders its archive copy was renamed into (to fsync before the row is committed).
    ``staged`` is what :func:`~clinepipe.run.ingest_jobs.stage_file` found: a good frame's
    staging files are renamed into place as its archive copy, a duplicate's deleted.
    ``frame_id``: the file's own row when it is tried again (not its own twin);
    ``twins``: SHA-256 -> the twin's name (:func:`_twins_of`) of every file with those bytes
    in the database or recorded before it (None: looked up here)."""
    from clinepipe.atomic_files import replace_staged
    from clinepipe.ingest.files import archive_destination

    telescope = cfg.site.telescope
    row = {"telescope": telescope, "raw_path": rel, "run_id": run_id, "updated_at": _now(),
           "sha256": staged.sha256, "size": staged.size}
    if staged.sha256 is None:  # unreadable: not even a checksum
        row.update(state=staged.state, stage="ingest", reason=staged.reason)
        return row, staged.message, set()
    twin = (twins.get(staged.sha256) if twins is not None
            else _twin_of(engine, staged.sha256, telescope, exclude_id=frame_id))
    if twin is not None:
        staged.discard()
        row.update(state="duplicate", stage="ingest", reason=f"duplicate of {twin}")
        return row, "", set()
    if staged.info is None:  # skipped, or failed with its named reason
        row.update(state=staged.state, stage="ingest", reason=staged.reason)
        return row, staged.message, set()
    info = staged.info
    row.update(_info_columns(info), state="ingested", stage=None, reason=None)
    if notes is not None:
        notes.add(rel, info)
    log.debug("%s: %s, time from %s", rel, info.kind, info.time_source)
    archive = cfg.paths.archive
    copy, there = archive_destination(archive, path.name, info, staged.sha256)
    if there:  # a killed run put these bytes there under this name: only its .SRC again
        moves = [(staged.src_staging, copy.with_suffix(".SRC"))] if staged.src_staging else []
        staged.staging.unlink(missing_ok=True)
    else:
        moves = [(staged.staging, copy)]
        if staged.src_staging is not None:  # the Image Link list beside its light's copy
            moves.append((staged.src_staging, copy.with_suffix(".SRC")))
    folders = replace_staged(moves, sync=False)  # renamed now: the next file sees the names
    row["archive_path"] = copy.relative_to(archive).as_posix()
    return row, "", folders


class _Recorder:
    """The rows of the new files, committed in order, :data:`COMMIT_FILES` to a transaction
    after the folders of their archive copies are fsync-ed: a killed run loses at most the
    rows of one batch, and the next run finds their copies in the archive (same name, same
    bytes) and records them as an uninterrupted run would have."""

    def __init__(self, engine, progress=None):
        self.engine, self.progress = engine, progress
        self.rows: list[tuple[dict, str]] = []
        self.folders: set = set()
        #: SHA-256 -> raw path of the rows this ingest recorded (committed or not) that are
        #: not duplicates: the twins of later files with those bytes
        self.recorded: dict[str, str] = {}

    def add(self, row: dict, message: str, folders) -> None:
        self.rows.append((row, message))
        self.folders |= folders
        if row.get("sha256") and row.get("state") != "duplicate":
            self.recorded.setdefault(row["sha256"], row["raw_path"])
        if len(self.rows) >= COMMIT_FILES:
            self.flush()

    def flush(self) -> None:
        from clinepipe.atomic_files import sync_folders
        from clinepipe.store.db import session_scope

        if not self.rows:
            return
        sync_folders(self.folders)  # the copies are durable before their rows are
        with session_scope(self.engine) as s:
            # one INSERT of many rows per run of rows with the same columns (a good frame's,
            # a failure's), in order (the ids follow the files' order), without ORM objects
            for _, group in groupby((row for row, _ in self.rows), key=lambda r: r.keys()):
                s.execute(insert(frames_table), list(group))
        for row, message in self.rows:
            _log_ingest(row, message)
            if self.progress:
                self.progress.advance()
        self.rows, self.folders = [], set()


def _log_ingest(row: dict, message: str) -> None:
    if row.get("state") in ("duplicate", "skipped"):
        log.info("%s: %s", row["raw_path"], row["reason"])
    elif message:
        log.warning("%s", message)


def _twin_of(engine, digest: str, telescope: str, exclude_id: int | None = None) -> str | None:
    """The file (not itself a duplicate) with these bytes already in the database, named as in
    messages: its path, prefixed ``telescope:`` when another telescope has it. Looked for over
    every telescope: the same bytes twice would put the same measurements twice in the light
    curves."""
    from clinepipe.store.db import session_scope

    q = (select(Frame.telescope, Frame.raw_path)
         .where(Frame.sha256 == digest, Frame.state != "duplicate").order_by(Frame.id))
    if exclude_id is not None:  # a file tried again is not its own twin
        q = q.where(Frame.id != exclude_id)
    with session_scope(engine) as s:
        twin = s.execute(q).first()
    return None if twin is None else _twin_name(twin, telescope)


def _twins_of(engine, telescope: str, digests) -> dict[str, str]:
    """SHA-256 -> its twin (:func:`_twin_of`) for each of ``digests`` that has one in the
    database, in one query per :data:`LOOKUP_CHUNK` digests."""
    from clinepipe.store.db import session_scope

    names, twins = sorted(digests), {}
    if not names:
        return twins
    with session_scope(engine) as s:
        for lo in range(0, len(names), LOOKUP_CHUNK):
            for r in s.execute(select(Frame.sha256, Frame.telescope, Frame.raw_path)
                               .where(Frame.sha256.in_(names[lo:lo + LOOKUP_CHUNK]),
                                      Frame.state != "duplicate").order_by(Frame.id)):
                twins.setdefault(r.sha256, _twin_name(r, telescope))
    return twins


def _twin_name(twin, telescope: str) -> str:
    """A twin's row named as in messages: its raw path, prefixed ``telescope:`` when it is
    another telescope's."""
    return twin.raw_path if twin.telescope == telescope else f"{twin.telescope}:{twin.raw_path}"


def _info_columns(info: FrameInfo) -> dict:
    return {"night": info.night, "kind": info.kind, "filter": info.filter,
            "binning": info.binning, "exptime": info.exptime, "ccd_temp": info.ccd_temp,
            "date_obs": info.date_obs, "jd_mid": info.jd_mid, "object": info.object,
            "time_source": info.time_source or None, "time_note": info.time_note or None,
            "naxis1": info.shape[1], "naxis2": info.shape[0], "xorg": info.xorg,
            "yorg": info.yorg, "gain": info.gain}


