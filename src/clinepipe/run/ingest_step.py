"""The ingest step of a run: every new raw file becomes one frame row (copied, checksummed, classified) or a named failure."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import shutil
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from clinepipe.atomic_files import atomic_open
from clinepipe.config import Config
from clinepipe.errors import BadInput, ClinepipeError
from clinepipe.ingest.frame_info import FrameInfo
from clinepipe.store.models import Frame
from clinepipe.store.models import utc_now as _now

log = logging.getLogger("clinepipe")

#: one thread writes the archive copies (two would race for a name two files share: the copy
#: of the second is renamed only when the first is there), and so many files may be read
#: ahead of the last one recorded (each held whole in memory until copied: tens of MB at most)
COPY_THREADS = 1
COPY_AHEAD = 3


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
    ``pool``: a :class:`~clinepipe.run.parallel.DaskPool` whose workers compute the files'
    checksums (all at once, while this process copies and records them in order)."""
    from clinepipe.ingest.files import find_new_files, iter_fits_files
    from clinepipe.run.cluster_jobs import file_checksum, run_jobs
    from clinepipe.store.db import session_scope

    incoming = cfg.paths.incoming
    if not incoming.is_dir():
        raise ClinepipeError(f"{incoming}: the incoming folder does not exist.", reason="no incoming")
    now = time.time()  # one instant for both lists, so every file is in exactly one
    files = find_new_files(incoming, settle_seconds=settle_seconds, now=now)
    recent = [p for p, st in iter_fits_files(incoming) if st.st_mtime > now - settle_seconds]
    telescope = cfg.site.telescope
    with session_scope(engine) as s:  # other telescopes' files of the same names are theirs
        known = {r.raw_path: r for r in s.execute(
            select(Frame.id, Frame.raw_path, Frame.state, Frame.stage, Frame.reason,
                   Frame.sha256).where(Frame.telescope == telescope))}
    # files changed too recently that are not in the database yet: the next run takes them
    unsettled = sum(1 for p in recent if p.relative_to(incoming).as_posix() not in known)
    rel = {p: p.relative_to(incoming).as_posix() for p in files}
    new = [p for p in files if rel[p] not in known]
    # a configuration change ([headers]) may cure a failed file or use a skipped one
    retry = [p for p in files if rel[p] in known and known[rel[p]].state in ("failed", "skipped")
             and known[rel[p]].stage == "ingest"]
    if progress:
        progress.start("ingest", len(new))
    notes = _Notes()
    # without a pool each checksum is computed when its file's turn comes (as it always was)
    checksums = (run_jobs(file_checksum, new + retry, pool, what="checksums")
                 if pool is not None else itertools.repeat(None))
    # the archive copies are written and fsync-ed by threads (waiting for the disk holds no
    # Python lock) while this thread hashes and reads the next files; each frame's row is
    # inserted, in order, once its copy is on disk
    waiting: deque = deque()  # (row, message, copying), in the files' order
    in_flight: dict[str, str] = {}  # sha256 -> raw path of the files being copied

    def record(row, message, copying) -> None:
        if copying is not None:
            _finish_copy(cfg, row, copying.result)
        in_flight.pop(row.get("sha256"), None)
        _night_from_folders(row)
        _insert_frame(engine, row)
        _log_ingest(row, message)
        if progress:
            progress.advance()

    with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="clinepipe-copy") as copier:
        try:
            for path in new:
                row, message, copying = _ingest_file(
                    cfg, engine, path, rel[path], run_id, notes=notes, checksum=next(checksums),
                    copier=copier, in_flight=in_flight)
                if copying is not None:
                    in_flight[row["sha256"]] = row["raw_path"]
                waiting.append((row, message, copying))
                while len(waiting) > COPY_AHEAD:
                    record(*waiting.popleft())
            while waiting:
                record(*waiting.popleft())
        finally:
            for _, _, copying in waiting:  # stopped (a full disk): no new copies
                if copying is not None:
                    copying.cancel()
    cured = 0
    for path in retry:
        old = known[rel[path]]
        row, message, _ = _ingest_file(cfg, engine, path, rel[path], run_id, frame_id=old.id,
                                       notes=notes, checksum=next(checksums))
        _night_from_folders(row)
        if (row.get("state"), row.get("reason"), row.get("sha256")) == (old.state, old.reason,
                                                                        old.sha256):
            continue  # the same failure again: nothing to write or to say twice
        with session_scope(engine) as s:
            s.execute(update(Frame).where(Frame.id == old.id).values(**row))
        cured += row.get("state") not in ("failed", "skipped")
        what = "failed at" if old.state == "failed" else "was skipped at"
        log.info("%s: tried again after it %s ingest (%s): now %s", rel[path], what, old.reason,
                 row.get("state") if row.get("state") not in ("failed", "skipped")
                 else row.get("reason"))
        _log_ingest(row, message)
    notes.log()
    log.info("ingest: %d new file(s)%s", len(new),
             f"; {len(retry)} earlier failure(s) tried again, {cured} ingested now"
             if retry else "")
    if unsettled:
        log.info("ingest: %d file(s) still being written (changed < %g s ago): the next run "
                 "takes them", unsettled, settle_seconds)
    return IngestCounts(len(new), unsettled, float(settle_seconds))


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


def _ingest_file(cfg: Config, engine, path: Path, rel: str, run_id: int,
                 frame_id: int | None = None, notes: _Notes | None = None,
                 checksum=None, copier=None, in_flight: dict | None = None) -> tuple:
    """The ``frames`` row of one incoming file (archive copy made when it is good), the log
    message of a failure (or "") and the Future of the archive copy when ``copier`` (an
    executor) makes it, else None (made here). ``checksum`` is the file's
    :class:`~clinepipe.run.cluster_jobs.FileChecksum` when already computed; ``in_flight``
    maps the SHA-256 of files still being copied to their raw paths (their rows are not in
    the database yet, and a file with the same bytes is their duplicate)."""
    from clinepipe.ingest.classify import SkippedFrame, read_frame_info
    from clinepipe.run.cluster_jobs import file_checksum

    telescope = cfg.site.telescope
    row = {"telescope": telescope, "raw_path": rel, "run_id": run_id, "updated_at": _now(),
           "sha256": None, "size": None}
    content = None
    if checksum is None:  # read once: the checksum, the archive copy and the size from one read
        checksum, content = file_checksum(path, keep_bytes=True)
    if checksum.error is not None:
        row.update(state="failed", stage="ingest", reason=f"unreadable file ({checksum.error})")
        return row, f"{rel}: cannot be read ({checksum.error})", None
    digest = checksum.sha256
    row.update(sha256=digest, size=checksum.size)
    twin = (in_flight or {}).get(digest) or _twin_of(engine, digest, telescope,
                                                     exclude_id=frame_id)
    if twin is not None:
        row.update(state="duplicate", stage="ingest", reason=f"duplicate of {twin}")
        return row, "", None
    try:
        info = read_frame_info(path, cfg.camera, cfg.site, rules=cfg.headers.rules(), relpath=rel)
    except SkippedFrame as exc:  # not a frame clinepipe uses: said, never a failure
        row.update(state="skipped", stage="ingest", reason=exc.reason)
        return row, "", None
    except BadInput as exc:
        row.update(state="failed", stage="ingest", reason=exc.reason)
        return row, exc.message, None
    row.update(_info_columns(info), state="ingested", stage=None, reason=None)
    if notes is not None:
        notes.add(rel, info)
    log.debug("%s: %s, time from %s", rel, info.kind, info.time_source)
    if copier is not None:
        return row, "", copier.submit(_copy_to_archive, cfg.paths.archive, path, info, digest,
                                      content)
    _finish_copy(cfg, row, lambda: _copy_to_archive(cfg.paths.archive, path, info, digest,
                                                    content))
    return row, "", None


def _copy_to_archive(archive: Path, path: Path, info: FrameInfo, digest: str, content) -> Path:
    """The archive copy of a raw file (and of its .SRC list); its path."""
    from clinepipe.ingest.files import archive_copy

    copy = archive_copy(path, archive, info, digest, content=content)
    _copy_src_list(path, copy)
    return copy


def _finish_copy(cfg: Config, row: dict, copied: Callable[[], Path]) -> None:
    """Put the archive copy's path into ``row``: ``copied()`` makes it (:func:`_copy_to_archive`)
    or waits for the thread making it (its Future's ``result``); a copy that failed with a
    named reason fails the frame (a full disk raises: the run stops)."""
    try:
        copy = copied()
    except BadInput as exc:
        row.update(state="failed", stage="ingest", reason=exc.reason, archive_path=None)
        log.warning("%s", exc.message)
        return
    row["archive_path"] = copy.relative_to(cfg.paths.archive).as_posix()


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
    if twin is None:
        return None
    return twin.raw_path if twin.telescope == telescope else f"{twin.telescope}:{twin.raw_path}"


def _insert_frame(engine, row: dict) -> None:
    from clinepipe.store.db import session_scope

    with session_scope(engine) as s:
        s.add(Frame(**row))


def _copy_src_list(raw: Path, copy: Path) -> None:
    """Keep the Image Link ``.SRC`` list beside the archive copy of its light."""
    for suffix in (".SRC", ".src", ".Src"):
        src = raw.with_suffix(suffix)
        if src.is_file():
            dest = copy.with_suffix(".SRC")
            with open(src, "rb") as fin, atomic_open(dest, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            return


def _info_columns(info: FrameInfo) -> dict:
    return {"night": info.night, "kind": info.kind, "filter": info.filter,
            "binning": info.binning, "exptime": info.exptime, "ccd_temp": info.ccd_temp,
            "date_obs": info.date_obs, "jd_mid": info.jd_mid, "object": info.object,
            "time_source": info.time_source or None, "time_note": info.time_note or None,
            "naxis1": info.shape[1], "naxis2": info.shape[0], "xorg": info.xorg,
            "yorg": info.yorg, "gain": info.gain}


