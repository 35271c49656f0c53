"""Which reference catalog a configuration names: the file catalog or a Vizier service, one cone per field."""

from __future__ import annotations

import logging
from pathlib import Path

from clinepipe.catalogs.file_csv import load_file_catalog
from clinepipe.catalogs.types import Catalog
from clinepipe.config import Config
from clinepipe.errors import CatalogUnavailable

log = logging.getLogger("clinepipe")


class FileCatalog:
    """A CSV catalog read once; :meth:`field` returns all of it (it is already local).

    A missing file is said once (a warning naming the path and the ``[catalog] path`` key of
    ``config_file``); every frame that asks after that gets the same short reason."""

    def __init__(self, path: Path, config_file: Path | None = None):
        self.path = Path(path)
        self.config_file = config_file
        self._catalog: Catalog | None = None
        self._missing_said = False

    def field(self, ra: float, dec: float, radius_deg: float) -> Catalog:
        if self._catalog is None:
            if not self.path.is_file():
                raise self._missing()
            self._catalog = load_file_catalog(self.path, name="file")
        return self._catalog

    def _missing(self) -> CatalogUnavailable:
        where = f" in {self.config_file}" if self.config_file else ""
        message = (f"{self.path}: the catalog file does not exist (set [catalog] path{where}); "
                   "the lights wait for it and are calibrated on the run after it appears.")
        if not self._missing_said:  # once per run, not once per frame
            log.warning("%s", message)
            self._missing_said = True
        return CatalogUnavailable(message, reason=f"catalog file missing: {self.path} "
                                                  "([catalog] path)")


def catalog_source(cfg: Config):
    """The configured reference catalog: an object with ``field(ra, dec, radius_deg) -> Catalog``.

    ``field`` raises :class:`CatalogUnavailable` when the catalog cannot be had right now.
    """
    if cfg.catalog.source == "file":
        return FileCatalog(cfg.catalog.path, cfg.source_file)
    from clinepipe.catalogs.vizier import vizier_catalog

    return vizier_catalog(cfg)
