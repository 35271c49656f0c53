"""Known variable stars (a CSV or the AAVSO VSX through Vizier): names, positions, types, periods."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from clinepipe.catalogs.types import KnownVariables
from clinepipe.config import Config
from clinepipe.errors import BadInput


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
    """The known variables of a local CSV (``[known_variables] source = "file"``), read once on
    first use; ``field(ra, dec, radius_deg)`` (degrees) returns the whole list, whatever the
    field, as the list is small and the caller matches positions itself."""
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
    from clinepipe.catalogs.vizier import vsx_known_variables

    return vsx_known_variables(cfg)


