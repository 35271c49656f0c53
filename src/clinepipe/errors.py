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
