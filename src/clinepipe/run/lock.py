"""The run lock: one ``clinepipe run`` at a time per archive.

An ``fcntl.flock`` on ``archive/clinepipe.lock``: the kernel releases it when the holder dies,
even by SIGKILL, so a stale lock of a dead process is simply taken over.

The holder writes ``pid N on HOST`` into the file and empties it when it lets go normally, so a
run that finds a note there knows the previous run on this archive was killed
(:attr:`RunLock.previous_holder`).
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from clinepipe.errors import LockHeld


class RunLock:
    """The run lock of one archive, as a context manager: ``with RunLock(archive /
    "clinepipe.lock") as lock:`` takes it or raises :class:`LockHeld` (exit 3) naming the holder.

    The lock is an ``fcntl.flock``, so the kernel frees it when its holder dies; the
    ``pid N on HOST`` note left by a holder that died is in :attr:`previous_holder`.
    """
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None
        #: ``pid N on HOST`` of an earlier holder that died without letting go, else None
        self.previous_holder: str | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockHeld(f"{self.path}: another clinepipe run holds the lock ({holder}); "
                           "try again when it has finished.", reason="locked") from None
        self.previous_holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd
        return self

    @property
    def fd(self) -> int | None:
        """The lock file's descriptor while the lock is held (processes forked by the run
        close their copy: the kernel keeps the lock while any copy is open)."""
        return self._fd

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # a clean exit: no stale note for the next run
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
