"""What every command shares: the Typer app, the configuration and database it works on,
progress bars, and the entry point that turns every error into one sentence and an exit code.

Exit codes (README): 0 success, 1 failure, 2 bad usage or configuration, 3 locked. ``--debug``
shows the traceback too. Heavy libraries are imported inside the commands so that
``clinepipe --help`` and short commands start quickly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from clinepipe.errors import ClinepipeError, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="clinepipe: the nightly photometry pipeline of a small observatory.")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")


state = {"debug": False, "config": None}


@app.callback()
def _main(config: Optional[Path] = typer.Option(None, "--config", "-c",
                                                help="Configuration file (else $CLINEPIPE_CONFIG, else ./clinepipe.toml)."),
          debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors.")):
    state["config"] = config
    state["debug"] = debug


def current_config():
    """The configuration the command runs with (``--config``, else ``$CLINEPIPE_CONFIG``, else
    ``./clinepipe.toml``); a missing or invalid file raises :class:`ConfigError` (exit 2)."""
    from clinepipe.config import find_config, load_config

    return load_config(find_config(state["config"]))


def optional_config():
    """The configuration if one is given or found (``--config``, ``$CLINEPIPE_CONFIG``,
    ``./clinepipe.toml``), else None. A configuration that was asked for must exist."""
    import os

    from clinepipe.config import CONFIG_NAME, find_config, load_config

    if state["config"] is not None or os.environ.get("CLINEPIPE_CONFIG"):
        return load_config(find_config(state["config"]))
    if (Path.cwd() / CONFIG_NAME).is_file():
        return load_config(find_config(None))
    return None


def console(stderr: bool = False):
    """A Rich console on stdout, or on stderr with ``stderr=True`` (progress and messages that
    must not mix with a command's output)."""
    from rich.console import Console

    return Console(stderr=stderr)


def open_engine(cfg):
    """The database engine of ``cfg`` (``[database] url``), upgraded to the newest schema; a
    SQLite file that does not exist is created (commands that only read use :func:`read_engine`)."""
    from clinepipe.store.db import open_database

    return open_database(cfg.database.url)


def sqlite_file(url) -> Path | None:
    """The file of a ``sqlite:///`` URL, None for another backend or an in-memory database."""
    from clinepipe.store.engines import normalize_url

    u = normalize_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:") \
            or u.database.startswith("file:"):
        return None
    return Path(u.database)


def read_engine(cfg):
    """The engine of a command that only reads the database: a SQLite file that does not exist
    is exit 2 and nothing is created (no folder, no empty database)."""
    path = sqlite_file(cfg.database.url)
    if path is not None and not path.is_file():
        raise UsageError(f"no database at {path}: run `clinepipe run` first.",
                         reason="no database")
    return open_engine(cfg)


class ProgressBars:
    """Rich progress bars on a terminal; silent under cron."""

    def __init__(self):
        self._bar = None
        self._task = None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeRemainingColumn,
            )

            self._bar = Progress("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=console(stderr=True))
            self._bar.__enter__()
        return self

    def start(self, name: str, total: int):
        if self._bar is not None:
            self._task = self._bar.add_task(name, total=total)

    def advance(self):
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)


def check_mode(mode: Optional[str], cfg) -> str:
    """The reduction mode: ``mode`` (a ``--mode`` option) if given, else ``[reduction] mode``
    (``"default"`` without a configuration); anything but ``"seed"``/``"default"`` is a
    :class:`UsageError` (exit 2)."""
    mode = mode or (cfg.reduction.mode if cfg is not None else "default")
    if mode not in ("seed", "default"):
        raise UsageError(f"--mode {mode}: unknown reduction mode (seed or default).")
    return mode


def existing_paths(paths: list[Path]) -> list[Path]:
    """``paths`` unchanged when every one exists, else a :class:`UsageError` (exit 2) naming the
    first missing one, before a command starts working."""
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder.")
    return paths


def warn(text: str) -> None:
    """Print ``clinepipe: warning: <text>`` on stderr: something skipped that the user should
    know of, which does not fail the command."""
    print(f"clinepipe: warning: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: one sentence per error, the README's exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, prog_name="clinepipe", standalone_mode=True)
    except SystemExit:
        raise
    except ClinepipeError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"clinepipe: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("clinepipe: interrupted.", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # a bug: one sentence, details with --debug
        if debug:
            import traceback

            traceback.print_exc()
        print(f"clinepipe: internal error ({type(exc).__name__}: {exc}); rerun with --debug "
              "for the traceback.", file=sys.stderr)
        sys.exit(1)
