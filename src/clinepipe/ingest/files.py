"""Finding new raw files in the drop folder, their checksums, and where their copies go in the archive (raw files are never touched)."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

from clinepipe.ingest.frame_info import FrameInfo

#: plain FITS name endings (compared case-insensitively)
FITS_SUFFIXES = (".fit", ".fits", ".fts")

#: compressed FITS name endings: gzip of a whole file, or a tile-compressed (fpack) file
COMPRESSED_SUFFIXES = (".fit.gz", ".fits.gz", ".fts.gz", ".fz")

def is_fits_name(name: str) -> bool:
    """True when ``name`` ends in a FITS suffix (plain or compressed), any case."""
    low = name.lower()
    return low.endswith(FITS_SUFFIXES) or low.endswith(COMPRESSED_SUFFIXES)


def fits_stem(name: str) -> str:
    """``name`` without its FITS suffix(es): ``a.fits.gz`` -> ``a``, ``b.FIT`` -> ``b``."""
    low = name.lower()
    for suffix in sorted(COMPRESSED_SUFFIXES + FITS_SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix):
            stem = name[: -len(suffix)]
            if suffix == ".fz":  # fpack names are usually ``x.fits.fz``
                return fits_stem(stem) if is_fits_name(stem) else stem
            return stem
    return Path(name).stem


def iter_fits_files(root: Path):
    """Yield ``(path, stat)`` of every non-hidden FITS file below ``root`` (hidden folders skipped)."""
    root = Path(root)
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or not is_fits_name(name):
                continue
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:  # vanished between the listing and the stat
                continue
            if stat.S_ISREG(st.st_mode):  # (is_file() would stat it again)
                yield path, st


def find_new_files(incoming: Path, settle_seconds: float = 2.0, now: float | None = None) -> list[Path]:
    """Every FITS file below ``incoming``, sorted, that is finished being written.

    Parameters
    ----------
    incoming : Path
        The camera's drop folder; searched recursively. Only read, never modified.
    settle_seconds : float
        The "size/mtime not yet stable" rule: a file whose modification time is less than
        this many seconds before ``now`` may still be growing (a camera or a copy writes it)
        and is left for a later call. Writing a file updates its mtime, so an mtime older
        than ``settle_seconds`` means its size has not changed for that long.
    now : float, optional
        The current time (POSIX seconds); ``time.time()`` when not given (for tests).

    Returns
    -------
    list of Path
        ``.fit .fits .fts`` in any case, and compressed ``.fit.gz .fits.gz .fts.gz .fz``;
        hidden files (and files in hidden folders, e.g. a sync tool's ``.partial/``) skipped.
    """
    return settled_and_recent(incoming, settle_seconds, now)[0]


def settled_and_recent(incoming: Path, settle_seconds: float = 2.0,
                       now: float | None = None) -> tuple[list[Path], list[Path]]:
    """From one listing of ``incoming``: the files :func:`find_new_files` gives (sorted), and
    the others, changed less than ``settle_seconds`` (s) before ``now`` (POSIX seconds;
    ``time.time()`` when not given), which may still be being written."""
    now = time.time() if now is None else float(now)
    settled, recent = [], []
    for path, st in iter_fits_files(Path(incoming)):
        (recent if st.st_mtime > now - settle_seconds else settled).append(path)
    return sorted(settled), recent


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in ``chunk``-byte pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _with_suffix_tag(name: str, tag: str) -> str:
    stem = fits_stem(name)
    return f"{stem}_{tag}{name[len(stem):]}"


def archive_destination(archive_root: Path, name: str, info: FrameInfo,
                        sha256: str) -> tuple[Path, bool]:
    """Where the archive copy of a raw file named ``name`` with these bytes goes, and whether
    it is there already: ``(path, True)`` when a file of that name (or of a tagged name
    below) holds the same SHA-256; else ``(path, False)``, the first free name of
    ``<name>``, ``<stem>_<sha256[:8]><suffix>``, ``<stem>_<sha256[:16]><suffix>``,
    ``<stem>_<sha256><suffix>`` in ``archive_root/raw/<night>/<kind>/`` (made here)."""
    folder = Path(archive_root) / "raw" / info.night / info.kind
    folder.mkdir(parents=True, exist_ok=True)
    for candidate in (name, _with_suffix_tag(name, sha256[:8]),
                      _with_suffix_tag(name, sha256[:16])):
        dest = folder / candidate
        if not dest.exists():
            return dest, False
        if dest.is_file() and sha256_file(dest) == sha256:
            return dest, True
    return folder / _with_suffix_tag(name, sha256), False
