"""SQLAlchemy 2 ORM models, mapped onto the Core tables of :mod:`clinepipe.store.tables` (the
one description of the schema; the commands that only read use those tables without this
module). A new database is created from those tables, an existing one changed only through the
Alembic migrations in ``clinepipe/migrations`` (``clinepipe db upgrade``); keep both in step
(:mod:`clinepipe.store.tables` says how it is tested). The provenance chain
and how several telescopes share a database are described in :mod:`clinepipe.store.tables`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import DeclarativeBase

from clinepipe.store import tables
from clinepipe.store.tables import NAMING_CONVENTION

__all__ = ["NAMING_CONVENTION", "Base", "CatalogMatch", "Frame", "Master", "Measurement", "Run",
           "Star", "StarPeriod", "StarStat", "StarStatPending", "TransformedMag", "ZeroPoint",
           "utc_now"]


def utc_now() -> datetime:
    """Now, as the database stores times: UTC without a time zone."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """The declarative base of every table; its metadata (:data:`clinepipe.store.tables.metadata`)
    names constraints and indexes by :data:`NAMING_CONVENTION`, so migrations can address them by
    name on SQLite and PostgreSQL."""
    metadata = tables.metadata


class Run(Base):
    """One invocation of ``clinepipe run`` (or a standalone command that writes)."""

    __table__ = tables.runs


class Frame(Base):
    """Every file found in ``incoming``, usable or not. ``state`` is one of
    ingested, reduced, measured, calibrated, used (calibration frame in a master),
    rejected (calibration frame left out of a master), waiting, failed, duplicate."""

    __table__ = tables.frames


class Master(Base):
    """A master calibration frame written into the archive."""

    __table__ = tables.masters


class Star(Base):
    """A star of our own star list: stable id across frames and nights."""

    __table__ = tables.stars


class CatalogMatch(Base):
    """A star's counterpart in a reference catalog, with the catalog's magnitudes (JSON)."""

    __table__ = tables.catalog_matches


class ZeroPoint(Base):
    """The ensemble zero point of one light frame: mag = inst_mag + value."""

    __table__ = tables.zero_points


class Measurement(Base):
    """One star on one light frame. Unique per (frame, star): reruns never duplicate."""

    __table__ = tables.measurements


class TransformedMag(Base):
    """A measurement transformed to the standard system (``[transform]``; revision 0003):
    ``mag = inst + T·colour + zero point``, with the star's standard ``colour`` that night and
    the ``coefficients`` used (``"Tv_bv=0.034 Tbv=1.020"``, AAVSO's names). A measurement of a
    night not transformed has no row; deleting the measurement deletes it."""

    __table__ = tables.transformed_mags


class StarStat(Base):
    """The variability statistics of one star in one filter (revision 0005), as
    :func:`clinepipe.variability.statistics.lightcurve_statistics` computes them from the star's
    flag-free points (frames with a QC flag of ``exclude_qc`` and isolated outliers left out),
    kept up to date by the run (:mod:`clinepipe.variability.star_stats`) so that ``stars``,
    ``variables``, ``lc`` and the web read one row per star and filter instead of every
    measurement. ``n`` = 0 for a filter whose points are all flagged or excluded; ``n_all``
    counts every measurement of the star in the filter. Periods are in :class:`StarPeriod`."""

    __table__ = tables.star_stats


class StarStatPending(Base):
    """A star whose measurements changed since its ``star_stats`` rows were computed: marked in
    the transaction that changes them, cleared when the rows are recomputed (revision 0005)."""

    __table__ = tables.star_stats_pending


class StarPeriod(Base):
    """The period ``clinepipe variables`` gives a variable star (revision 0007), kept because a
    search costs seconds per star on a long light curve. ``points_key`` is a digest of the
    star's ``star_stats`` rows the search was made from (and of ``exclude_qc`` and
    ``min_points``, :mod:`clinepipe.variability.star_periods`): a row whose digest no longer
    matches the star's statistics is stale and not used. ``period`` is NULL when the search
    found none."""

    __table__ = tables.star_periods
