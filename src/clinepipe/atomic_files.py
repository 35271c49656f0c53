"""Files written whole or not at all: the one place clinepipe writes an output file.

A regular file (or a new one) is written to a temporary file beside it, flushed and fsynced,
then renamed over it (``os.replace``): readers see the old file or the complete new one, never
a partial one, and a failed write leaves the old file untouched. Three cases are not renamed
over, because a rename would destroy what the user named (issue 19: ``--output /dev/stdout``
once turned the device into a 4 MB regular file):

* ``-`` is standard output;
* an existing path that is not a regular file (a device such as ``/dev/stdout`` or
  ``/dev/null``, a FIFO, a socket) is opened and written in place; so is a path through
  ``/proc/…/fd`` or ``/dev/fd`` (``/dev/stdout`` when a shell sent it to a file: appended to);
* a symbolic link is written through: its target is replaced atomically, the link stays.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # astropy only when a FITS file is written: `lc`, `stars` start faster
    from astropy.io import fits

__all__ = ["STDOUT", "atomic_open", "atomic_write_bytes", "atomic_write_text",
           "atomic_write_fits", "is_stdout", "stage_bytes", "replace_staged", "sync_folders"]

#: the path that means standard output
STDOUT = "-"


def is_stdout(path: str | os.PathLike) -> bool:
    """True when ``path`` is ``-`` (standard output)."""
    return os.fspath(path) == STDOUT


def _via_open_file(path: Path) -> bool:
    """True when ``path`` reaches its file through ``/proc/…/fd`` or ``/dev/fd`` (as
    ``/dev/stdout`` does): that is a stream this process already has open (a shell's ``>>
    log``), to be appended to, not a file to replace."""
    current, hops = os.path.abspath(path), 0
    while os.path.islink(current) and hops < 40:
        if current.startswith(("/proc/", "/dev/fd/")):
            return True
        current = os.path.join(os.path.dirname(current), os.readlink(current))
        current, hops = os.path.abspath(current), hops + 1
    return False


def _target(path: Path) -> tuple[Path, bool]:
    """``(path to write, in place?)``: in place for an existing non-regular file or an open
    stream (opened through any symlink, so ``/dev/stdout`` reaches the process's own output),
    else the resolved regular file a symlink points to (or ``path`` itself), replaced
    atomically."""
    try:
        st = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "is a folder, not a file", str(path))
    if st is not None and (not stat.S_ISREG(st.st_mode) or _via_open_file(path)):
        return path, True
    if path.is_symlink():  # a link to a regular file, or a dangling one: write its target
        return Path(os.path.realpath(path)), False
    return path, False


@contextmanager
def _stdout(binary: bool, encoding: str, newline: str | None) -> Iterator[IO]:
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (rare: some test harnesses)
        if binary:
            raise OSError("standard output takes no binary data here")
        yield sys.stdout
        sys.stdout.flush()
        return
    if binary:
        yield buffer
        buffer.flush()
        return
    text = io.TextIOWrapper(buffer, encoding=encoding, newline=newline, write_through=True)
    try:
        yield text
        text.flush()
    finally:
        text.detach()  # leave standard output open


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, encoding: str = "utf-8",
                newline: str | None = None) -> Iterator[IO]:
    """A file handle for writing ``path`` whole or not at all (see the module docstring).

    Parameters
    ----------
    path : str or path-like
        the file; ``-`` is standard output.
    mode : str
        ``"wb"`` (bytes) or ``"w"`` (text in ``encoding``, line ends as ``newline`` says, as
        for :func:`open`).

    Yields
    ------
    file object
        write to it inside the ``with`` block; the file is in place when the block ends
        without an exception. On an exception a temporary file is removed and any older file
        is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode {mode!r}: 'w' or 'wb'")
    binary = mode == "wb"
    kwargs = {} if binary else {"encoding": encoding, "newline": newline}
    if is_stdout(path):
        with _stdout(binary, encoding, newline) as fh:
            yield fh
        return
    target, in_place = _target(Path(path))
    if in_place:  # appending: never truncate what a shell's ">> log" already holds
        with os.fdopen(os.open(target, os.O_WRONLY | os.O_APPEND), mode, **kwargs) as fh:
            yield fh
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        keep_mode = 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, keep_mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def stage_bytes(folder: str | os.PathLike, data: bytes, *, prefix: str = "") -> Path:
    """The first half of a write whole or not at all, made apart from the second (on another
    process or machine): ``data`` in a new file of ``folder`` (a unique name ``<prefix>…
    .staging``), flushed and fsync-ed; :func:`replace_staged` then puts it under its name.

    Raises OSError (a full disk…) after removing the partial file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".staging", dir=folder)
    staged = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def replace_staged(moves: Iterable[tuple[str | os.PathLike, str | os.PathLike]], *,
                   sync: bool = True) -> set[Path]:
    """The second half of :func:`stage_bytes`: each ``(staged, target)`` of ``moves`` renamed
    over its target, then the renames made durable (each folder fsync-ed once); the folders.
    ``sync=False`` leaves that to the caller (:func:`sync_folders`, once for many files). A
    staging folder on another file system than a target (no rename possible) is copied
    through :func:`atomic_open` instead."""
    import shutil

    folders = set()
    for staged, target in moves:
        staged, target = Path(staged), Path(target)
        try:
            os.replace(staged, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(staged, "rb") as fin, atomic_open(target, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            shutil.copystat(staged, target)
            staged.unlink()
            continue
        folders.add(target.parent)
    if sync:
        sync_folders(folders)
    return folders


def sync_folders(folders: Iterable[str | os.PathLike]) -> None:
    """Make the renames into ``folders`` durable (each folder fsync-ed)."""
    for folder in folders:
        _fsync_folder(Path(folder))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a crash right after it keeps the new name)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder: the rename is still atomic
    finally:
        os.close(fd)


#: a large chunk goes to a regular file in pieces of this size, each handed to the disk
#: (``sync_file_range``) as soon as it is written: the disk writes one piece while the next is
#: copied into the page cache, so the final fsync waits for less (a 76 MB calibrated frame
#: of 3352x2532 pixels: write + fsync ~10 % faster)
_WRITEBACK_PIECE = 8 << 20


def atomic_write_bytes(path: str | os.PathLike, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` (bytes-like, in order) to ``path`` via :func:`atomic_open`."""
    with atomic_open(path, "wb") as fh:
        writeback = None
        for chunk in chunks:
            view = memoryview(chunk)
            if view.nbytes < 2 * _WRITEBACK_PIECE:
                fh.write(view)
                continue
            if writeback is None:
                writeback = _writeback(fh)
            view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
            for start in range(0, view.nbytes, _WRITEBACK_PIECE):
                fh.write(view[start:start + _WRITEBACK_PIECE])
                writeback()


def _writeback(fh):
    """A function that starts the disk writing what has been written to ``fh`` so far (Linux
    ``sync_file_range(..., SYNC_FILE_RANGE_WRITE)``: asynchronous, no durability promise, the
    fsync still gives that); a no-op elsewhere, or when ``fh`` is no regular file."""
    def nothing():
        return None

    try:
        fd = fh.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return nothing
    except (OSError, ValueError, io.UnsupportedOperation):
        return nothing
    start_range = _sync_file_range()
    if start_range is None:
        return nothing
    done = [fh.tell()]  # flushed up to here before the first piece

    def start() -> None:
        fh.flush()
        end = fh.tell()
        start_range(fd, done[0], end - done[0], 2)  # SYNC_FILE_RANGE_WRITE; errors ignored
        done[0] = end

    return start


@functools.cache
def _sync_file_range():
    """libc's ``sync_file_range`` (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8",
                      newline: str | None = "") -> None:
    """Write ``text`` to ``path`` via :func:`atomic_open` (line ends as written by default)."""
    with atomic_open(path, "w", encoding=encoding, newline=newline) as fh:
        fh.write(text)


def atomic_write_fits(path: str | os.PathLike, hdul: fits.HDUList, *,
                      output_verify: str = "exception") -> None:
    """Write ``hdul`` to ``path`` via :func:`atomic_open`; ``output_verify`` as for
    :meth:`astropy.io.fits.HDUList.writeto`."""
    with atomic_open(path, "wb") as fh:
        hdul.writeto(fh, output_verify=output_verify)
