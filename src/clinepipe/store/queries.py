"""Finding a star in the database from what a user typed: a star id, a name, or a position."""

from __future__ import annotations

import re

import numpy as np
from sqlalchemy import func, or_, select

from clinepipe.errors import UsageError
from clinepipe.store.tables import stars


def resolve_star(session, spec: str, radius_arcsec: float = 5.0) -> int:
    """A star id from an id, a catalog id, a known-variable name or ``"RA DEC"`` in degrees or
    sexagesimal (``"10 47 59 +30 03 58"``, ``"10:47:59 +30:03:58"``, ``"10h47m59s +30d03m58s"``).
    ``session``: a session or a connection (Core statements only)."""
    text = spec.strip()
    if re.fullmatch(r"\d+", text):
        star = session.execute(select(stars.c.id).where(stars.c.id == int(text))).scalar()
        if star is not None:
            return star
    c = stars.c
    hit = session.execute(select(c.id).where(
        or_(c.catalog_id == text, func.lower(c.name) == text.lower())).order_by(c.id)).scalar()
    if hit is not None:
        return hit
    # imported here: the headers package loads astropy (seconds on a busy machine), which an id,
    # a catalog id or a name never needs (`clinepipe lc 42` is meant to answer at once)
    from clinepipe.headers.coords import parse_position

    try:
        ra, dec = parse_position(text)
    except ValueError:
        ra = dec = None
    if ra is not None:
        r = radius_arcsec / 3600.0
        cosd = max(np.cos(np.radians(dec)), 1e-3)
        rows = session.execute(select(c.id, c.ra, c.dec).where(
            c.dec.between(dec - r, dec + r),
            c.ra.between(ra - r / cosd, ra + r / cosd))).all()
        if rows:
            d = [np.hypot((rr - ra) * cosd, dd - dec) for _, rr, dd in rows]
            if min(d) <= r:
                return rows[int(np.argmin(d))][0]
        raise UsageError(f"no star within {radius_arcsec:g}\" of RA {ra:.5f} Dec {dec:+.5f} "
                         f"(from '{spec}').")
    raise UsageError(f"no star '{spec}' in the database (give a star id, catalog id, name or \"RA DEC\" in degrees or sexagesimal).")


def nights_of_runs(engine, run_ids) -> list[str]:
    """The observing nights (``YYYYMMDD``) of the lights the given runs stored, sorted: what a
    run touched, found through the index on ``frames.run_id``."""
    from clinepipe.store.db import session_scope
    from clinepipe.store.models import Frame

    with session_scope(engine) as s:
        return sorted(s.scalars(select(Frame.night).distinct().where(
            Frame.run_id.in_(list(run_ids)), Frame.kind == "light",
            Frame.night.is_not(None))).all())
