"""The `file` catalog: a CSV `id,ra,dec,<band>…[,e_<band>…]` read into a Catalog."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from clinepipe.catalogs.types import Catalog
from clinepipe.errors import BadInput


def load_file_catalog(path: str | Path, name: str = "file") -> Catalog:
    """Read a catalog CSV: ``id,ra,dec`` then one column per band, optionally ``e_<band>``."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise BadInput(f"{path}: the catalog cannot be read ({exc.strerror or exc}).",
                       reason="catalog unreadable") from exc
    if not rows or [c.strip().lower() for c in rows[0][:3]] != ["id", "ra", "dec"]:
        raise BadInput(f"{path}: a catalog must start with the columns id,ra,dec.",
                       reason="catalog malformed")
    header = [c.strip() for c in rows[0]]
    body = [r for r in rows[1:] if r and any(c.strip() for c in r)]
    if any(len(r) != len(header) for r in body):
        bad = next(i for i, r in enumerate(rows[1:], start=2) if r and len(r) != len(header))
        raise BadInput(f"{path}: line {bad} has a different number of columns than the header.",
                       reason="catalog malformed")
    columns = list(zip(*body)) if body else [() for _ in header]
    data = dict(zip(header, columns))

    def numeric(col):
        return np.array([float(v) if v.strip() not in ("", "nan", "NaN") else np.nan
                         for v in data[col]], dtype=float)

    try:
        ra, dec = numeric(header[1]), numeric(header[2])
        mags = {c: numeric(c) for c in header[3:] if not c.startswith("e_")}
        errors = {c[2:]: numeric(c) for c in header[3:] if c.startswith("e_")}
    except ValueError as exc:
        raise BadInput(f"{path}: a catalog value is not a number ({exc}).",
                       reason="catalog malformed") from exc
    return Catalog(name, np.array(data[header[0]], dtype=str), ra, dec, mags, errors)


