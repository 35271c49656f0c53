"""Which reference catalog a configuration names: the file catalog or a Vizier service, one cone per field."""

from __future__ import annotations

from pathlib import Path

from clinepipe.catalogs.file_csv import load_file_catalog
from clinepipe.catalogs.types import Catalog
from clinepipe.config import Config
from clinepipe.errors import CatalogUnavailable


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
    from clinepipe.catalogs.vizier import vizier_catalog

    return vizier_catalog(cfg)




