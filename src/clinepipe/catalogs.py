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

__all__ = ["load_catalog", "KnownVariables", "load_known_variables", "read_known_variables_csv"]


def load_catalog(cfg: Config) -> Catalog:
    """The reference catalog of the configuration (file provider)."""
    source = cfg.catalog.source
    if source == "file":
        if not cfg.catalog.path.is_file():
            raise CatalogUnavailable(f"{cfg.catalog.path}: the catalog file does not exist.",
                                     reason="catalog file missing")
        return load_file_catalog(cfg.catalog.path, name="file")
    raise CatalogUnavailable(f"catalog source '{source}' needs a field to query; "
                             "remote catalogs are not available in this version.",
                             reason=f"catalog '{source}' not available")


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


def load_known_variables(cfg: Config) -> KnownVariables | None:
    """The configured known-variable list, or None when none is configured."""
    kv = cfg.known_variables
    if kv.source == "":
        return None
    if kv.source == "file":
        return read_known_variables_csv(kv.path)
    raise CatalogUnavailable("known variables from VSX are not available in this version.",
                             reason="vsx not available")
