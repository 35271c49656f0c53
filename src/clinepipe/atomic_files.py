"""Files written whole or not at all: a temporary file beside the target, fsync, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from astropy.io import fits


def atomic_write_fits(path: Path, hdul: fits.HDUList) -> None:
    """Write ``hdul`` to ``path`` via a temporary file in the same folder, fsync and ``os.replace``:
    readers see the old file or the complete new one, never a partial one."""
    _atomic_write(Path(path), hdul.writeto)


def atomic_write_bytes(path: Path, chunks) -> None:
    """:func:`atomic_write_fits` for a file already serialised: ``chunks`` (bytes-like, in
    order) are written, then fsync and ``os.replace`` as there."""
    def write(fh):
        for chunk in chunks:
            fh.write(chunk)

    _atomic_write(Path(path), write)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


