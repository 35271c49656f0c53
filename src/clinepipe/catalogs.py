"""Reference catalogs and the known-variable list, as configured in ``[catalog]`` and
``[known_variables]``.

``file`` catalogs are CSV files (``id,ra,dec,<band>…,e_<band>…``). Remote providers
(APASS, UCAC4, Gaia) are queried once per field through astroquery and cached on disk; an
unreachable service makes frames wait (``CatalogUnavailable``), never fail.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .calibrate import Catalog, load_file_catalog
from .config import Config
from .errors import BadInput, CatalogUnavailable

__all__ = ["catalog_source", "load_catalog", "FileCatalog", "KnownVariables", "known_variables_source",
           "read_known_variables_csv"]


class FileCatalog:
    """A CSV catalog read once; :meth:`field` returns all of it (it is already local)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._catalog: Catalog | None = None

    def field(self, ra: float, dec: float, radius_deg: float) -> Catalog:
        if self._catalog is None:
            if not self.path.is_file():
                raise CatalogUnavailable(f"{self.path}: the catalog file does not exist.",
                                         reason="catalog file missing")
            self._catalog = load_file_catalog(self.path, name="file")
        return self._catalog


def catalog_source(cfg: Config):
    """The configured reference catalog: an object with ``field(ra, dec, radius_deg) -> Catalog``.

    ``field`` raises :class:`CatalogUnavailable` when the catalog cannot be had right now.
    """
    if cfg.catalog.source == "file":
        return FileCatalog(cfg.catalog.path)
    from .remote_catalogs import vizier_catalog

    return vizier_catalog(cfg)


def load_catalog(cfg: Config) -> Catalog:
    """The whole file catalog of the configuration (for standalone commands)."""
    return FileCatalog(cfg.catalog.path).field(0.0, 0.0, 180.0)


@dataclass(frozen=True)
class KnownVariables:
    """Known variable stars: names, positions (deg), types and periods (days)."""

    names: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    types: np.ndarray
    periods: np.ndarray

    def __len__(self) -> int:
        return int(self.names.size)


def read_known_variables_csv(path: Path) -> KnownVariables:
    """CSV with columns ``name,ra,dec[,type,period]``."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise BadInput(f"{path}: the known-variable list cannot be read ({exc.strerror or exc}).",
                       reason="known variables unreadable") from exc
    try:
        names = np.array([r["name"].strip() for r in rows], dtype=str)
        ra = np.array([float(r["ra"]) for r in rows])
        dec = np.array([float(r["dec"]) for r in rows])
    except (KeyError, ValueError, AttributeError) as exc:
        raise BadInput(f"{path}: the known-variable list needs columns name,ra,dec with numbers.",
                       reason="known variables malformed") from exc
    types = np.array([(r.get("type") or "").strip() for r in rows], dtype=str)
    periods = np.array([float(r["period"]) if (r.get("period") or "").strip() else np.nan
                        for r in rows])
    return KnownVariables(names, ra, dec, types, periods)


class FileKnownVariables:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._list: KnownVariables | None = None

    def field(self, ra: float, dec: float, radius_deg: float) -> KnownVariables:
        if self._list is None:
            self._list = read_known_variables_csv(self.path)
        return self._list


def known_variables_source(cfg: Config):
    """The configured known-variable list (``field(ra, dec, radius_deg)``), or None."""
    kv = cfg.known_variables
    if kv.source == "":
        return None
    if kv.source == "file":
        return FileKnownVariables(kv.path)
    from .remote_catalogs import vsx_known_variables

    return vsx_known_variables(cfg)
