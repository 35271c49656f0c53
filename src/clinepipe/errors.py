"""The error hierarchy. Each error carries a short named ``reason`` (stored in the database and
shown by ``clinepipe status --failed``) and a one-sentence message for people."""

from __future__ import annotations


class ClinepipeError(Exception):
    """Base of every error clinepipe reports to a user; ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or message


class ConfigError(ClinepipeError):
    """The configuration file is missing, unreadable or has a wrong key or value."""

    exit_code = 2


class UsageError(ClinepipeError):
    """A command was called with arguments that cannot work."""

    exit_code = 2


class BadInput(ClinepipeError):
    """A file cannot be used (not FITS, truncated, missing keyword…): the frame fails for good."""


class Waiting(ClinepipeError):
    """A frame cannot be finished *yet* (no master, catalog unreachable); retried on a later run."""


class MissingCalibration(Waiting):
    """No usable master for this frame's binning/filter/exposure (yet)."""


class CatalogUnavailable(Waiting):
    """The catalog service could not be reached; the frame waits for the next run."""


class LockHeld(ClinepipeError):
    """Another ``clinepipe run`` holds the lock."""

    exit_code = 3


class StorageError(ClinepipeError):
    """The archive (or another output folder) cannot be written: the disk is full, over its
    quota, read-only or not ours. Nothing is wrong with the frames, so the run stops instead of
    failing them one by one; the next run resumes where this one stopped."""


#: errno values that mean "this folder cannot take our files", not "this frame is bad"
_STORAGE_ERRNOS = {"ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG"}


def storage_error(exc: BaseException, path) -> StorageError | None:
    """A :class:`StorageError` naming ``path`` when ``exc`` is an ``OSError`` of a write that
    failed because of the storage (disk full, quota, read-only, permissions), else None."""
    import errno
    import os

    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    name = errno.errorcode.get(exc.errno, "")
    if name not in _STORAGE_ERRNOS:
        return None
    why = exc.strerror or os.strerror(exc.errno)
    return StorageError(f"cannot write {path}: {why} (make room or fix the folder, then run "
                        "again: nothing is lost, the next run resumes where this one stopped).",
                        reason=f"cannot write: {why}")
