"""The ``clinepipe`` command line (Typer + Rich), one module per group of commands.

``common`` holds the app, the shared helpers and the entry point ``main``; importing the
command modules registers their commands on the app, in the order ``--help`` lists them.
"""

from importlib import import_module

from clinepipe.cli.common import app, main

COMMAND_MODULES = ("setup", "nightly", "stars", "exports", "tools")
for _name in COMMAND_MODULES:
    import_module(f"clinepipe.cli.{_name}")

__all__ = ["COMMAND_MODULES", "app", "main"]
