"""The database at the edge of the pipeline: tables and models, engine and migrations, exports.

The ORM models are loaded on first use (``clinepipe.store.Frame``), not with the package: the
commands that only read (``clinepipe lc``, ``stars``) use :mod:`clinepipe.store.tables` and
never import ``sqlalchemy.orm``.
"""

import importlib

__all__ = ["Base", "CatalogMatch", "Frame", "Master", "Measurement", "Run", "Star", "ZeroPoint"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("clinepipe.store.models"), name)
    raise AttributeError(f"module 'clinepipe.store' has no attribute {name!r}")
