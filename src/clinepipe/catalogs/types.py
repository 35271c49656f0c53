"""A reference catalog in memory: ids, positions (deg, ICRS) and magnitudes per band with errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Catalog:
    """A reference catalog: ids, positions (deg ICRS) and magnitudes per band."""

    name: str
    ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    mags: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.size)

    def band(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Magnitudes and errors of one band (errors default when absent)."""
        mag = self.mags[name]
        err = self.errors.get(name, np.full(mag.shape, DEFAULT_CATALOG_ERROR))
        return mag, err


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


#: Catalog error assumed when a catalog gives none (mag).
DEFAULT_CATALOG_ERROR = 0.03
