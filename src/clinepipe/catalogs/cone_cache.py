"""The on-disk cache of catalog cones: one ECSV file per cone, centre rounded to 0.01 deg and
radius rounded up to 0.05 deg so that a cached cone always contains the requested one;
written atomically; the smallest cached cone that contains a field serves it.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from clinepipe.atomic_files import atomic_open
from clinepipe.catalogs.match import separation_deg

log = logging.getLogger(__name__)



#: Bumped whenever the cached file layout changes; files of another version are refetched.
CACHE_VERSION = 1


#: Cached cone centres are rounded to this (deg).
CENTRE_STEP_DEG = 0.01


#: Cached cone radii are rounded up to a multiple of this (deg).
RADIUS_STEP_DEG = 0.05


_FILE_RE = re.compile(r"^ra(\d{1,3}\.\d{2})_dec([+-]\d{1,2}\.\d{2})_r(\d+\.\d{2})\.ecsv$")


@dataclass(frozen=True)
class Cone:
    """A sky cone cached as one ECSV file: centre ``ra``, ``dec`` and ``radius``, all in degrees
    (ICRS; centre rounded to 0.01 deg, radius a multiple of 0.05 deg, see :func:`cone_key`).
    ``contains`` tells whether a requested cone lies wholly inside it, so one query serves the
    nearby fields too."""
    ra: float
    dec: float
    radius: float

    def filename(self) -> str:
        return f"ra{self.ra:06.2f}_dec{self.dec:+06.2f}_r{self.radius:.2f}.ecsv"

    def contains(self, ra: float, dec: float, radius: float) -> bool:
        return separation_deg(self.ra, self.dec, ra, dec) + radius <= self.radius + 1e-9


def cone_key(ra_deg: float, dec_deg: float, radius_deg: float) -> Cone:
    """The cached cone for a request: centre rounded to 0.01°, radius rounded up to 0.05° so
    that it contains the requested cone."""
    ra_r = round(round(ra_deg % 360.0, 2) % 360.0, 2)
    dec_r = round(min(90.0, max(-90.0, round(dec_deg, 2))), 2) + 0.0     # no "-0.00"
    need = radius_deg + float(separation_deg(ra_r, dec_r, ra_deg, dec_deg))
    steps = math.ceil(need / RADIUS_STEP_DEG - 1e-9)
    return Cone(ra_r, dec_r, round(max(1, steps) * RADIUS_STEP_DEG, 2))


class ConeCache:
    """Raw Vizier answers per cone, in memory and as ECSV files in one folder per catalog
    (``source``: the catalog's Vizier description, :class:`clinepipe.catalogs.vizier._Source`)."""

    def __init__(self, folder: Path, source):
        self.folder = Path(folder) / source.key
        self.source = source
        self.memory: dict[Cone, object] = {}

    def find(self, ra: float, dec: float, radius: float):
        """The smallest cached answer whose cone contains the request, or None."""
        for cone in sorted((c for c in self.memory if c.contains(ra, dec, radius)),
                           key=lambda c: c.radius):
            return self.memory[cone]
        for cone, path in sorted(self._on_disk(), key=lambda cp: cp[0].radius):
            if not cone.contains(ra, dec, radius):
                continue
            table = self._read(path, cone)
            if table is not None:
                self.memory[cone] = table
                return table
        return None

    def _on_disk(self):
        try:
            names = os.listdir(self.folder)
        except OSError:
            return []
        cones = []
        for name in names:
            m = _FILE_RE.match(name)
            if m:
                cones.append((Cone(float(m.group(1)), float(m.group(2)), float(m.group(3))),
                              self.folder / name))
        return cones

    def _read(self, path: Path, cone: Cone):
        from astropy.table import Table

        try:
            table = Table.read(path, format="ascii.ecsv")
        except Exception as exc:  # unreadable or half-written by something else: refetch
            log.warning("%s: cached catalog cone unreadable (%s); it will be fetched again.",
                        path, exc)
            return None
        if (table.meta.get("clinepipe_cache") != CACHE_VERSION
                or table.meta.get("table") != self.source.table
                or table.meta.get("column_filters", {}) != dict(self.source.column_filters)):
            log.info("%s: cached cone is from another version or query; fetching again.", path)
            return None
        log.debug("%s: served from the cache", path)
        return table

    def store(self, cone: Cone, table) -> None:
        self.memory[cone] = table
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_open(self.folder / cone.filename(), "w", newline="") as fh:
                table.write(fh, format="ascii.ecsv")
        except OSError as exc:
            # The answer is still used (and kept in memory); only the disk copy is missing.
            log.warning("%s: cannot write the catalog cache (%s); the cone will be fetched "
                        "again next run.", self.folder, exc.strerror or exc)
