"""SQLAlchemy 2 models. The schema is created and changed only through the Alembic migrations
in ``clinepipe/migrations`` (``clinepipe db upgrade``); keep both in step.

Provenance chain: measurement → frame (raw path + sha256, masters used) → run (config text +
software version).

Several telescopes may share one database: ``runs``, ``frames`` and ``masters`` carry the
``telescope`` of ``[site] telescope`` ("" for a lone telescope and for rows from before
revision 0002). A frame is known by (telescope, path relative to that telescope's incoming);
stars, catalog matches and measurements are shared.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column

#: Deterministic names for every constraint and index, identical on SQLite and PostgreSQL, so
#: later migrations (SQLite "batch" table rebuilds in particular) can address them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    """Now, as the database stores times: UTC without a time zone."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """The declarative base of every table; its metadata names constraints and indexes by
    :data:`NAMING_CONVENTION`, so migrations can address them by name on SQLite and PostgreSQL."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def telescope_column() -> MappedColumn[str]:
    """The ``telescope`` column of runs, frames and masters: ``[site] telescope``; the server
    default "" lets revision 0002 add it to tables that already hold rows (spelled as SQL
    text: Alembic's comparison of a model with a database takes a bare "" for no default)."""
    return mapped_column(String(64), default="", server_default=text("''"))


class Run(Base):
    """One invocation of ``clinepipe run`` (or a standalone command that writes)."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    software_version: Mapped[str] = mapped_column(String(64))
    config_text: Mapped[str] = mapped_column(Text, default="")
    config_sha256: Mapped[str] = mapped_column(String(64), default="")
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(32), default="running")  # running|finished|crashed
    telescope: Mapped[str] = telescope_column()
    summary: Mapped[str] = mapped_column(Text, default="")  # JSON: frames per state, failures


class Frame(Base):
    """Every file found in ``incoming``, usable or not. ``state`` is one of
    ingested, reduced, measured, calibrated, used (calibration frame in a master),
    rejected (calibration frame left out of a master), waiting, failed, duplicate."""

    __tablename__ = "frames"
    # two telescopes may both write 20260314/Light_001.fit into their own incoming folders
    __table_args__ = (UniqueConstraint("telescope", "raw_path"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telescope: Mapped[str] = telescope_column()
    raw_path: Mapped[str] = mapped_column(String(1024))  # relative to the telescope's incoming
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size: Mapped[int | None] = mapped_column(Integer)
    archive_path: Mapped[str | None] = mapped_column(String(1024))  # relative to archive
    night: Mapped[str | None] = mapped_column(String(8), index=True)
    kind: Mapped[str | None] = mapped_column(String(16))  # bias|dark|flat|light
    filter: Mapped[str | None] = mapped_column(String(32))
    binning: Mapped[int | None] = mapped_column(Integer)
    exptime: Mapped[float | None] = mapped_column(Float)
    ccd_temp: Mapped[float | None] = mapped_column(Float)
    date_obs: Mapped[str | None] = mapped_column(String(32))
    jd_mid: Mapped[float | None] = mapped_column(Float)
    # the header keyword the time came from ("DATE-OBS (-07:00)", "UT-OBS"…) and, when time
    # keywords disagreed, which was used and why (revision 0005_time_source)
    time_source: Mapped[str | None] = mapped_column(String(64))
    time_note: Mapped[str | None] = mapped_column(Text)
    object: Mapped[str | None] = mapped_column(String(128))
    naxis1: Mapped[int | None] = mapped_column(Integer)
    naxis2: Mapped[int | None] = mapped_column(Integer)
    xorg: Mapped[int] = mapped_column(Integer, default=0)
    yorg: Mapped[int] = mapped_column(Integer, default=0)
    gain: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str | None] = mapped_column(String(32))  # stage that failed / waits
    reason: Mapped[str | None] = mapped_column(Text)
    calibrated_path: Mapped[str | None] = mapped_column(String(1024))  # relative to archive
    bias_master_id: Mapped[int | None] = mapped_column(ForeignKey("masters.id"))
    dark_master_id: Mapped[int | None] = mapped_column(ForeignKey("masters.id"))
    flat_master_id: Mapped[int | None] = mapped_column(ForeignKey("masters.id"))
    # quality figures of a light (median over its stars)
    fwhm: Mapped[float | None] = mapped_column(Float)
    elongation: Mapped[float | None] = mapped_column(Float)
    sky: Mapped[float | None] = mapped_column(Float)
    n_stars: Mapped[int | None] = mapped_column(Integer)
    astrometric_rms: Mapped[float | None] = mapped_column(Float)  # arcsec
    airmass: Mapped[float | None] = mapped_column(Float)
    qc: Mapped[str] = mapped_column(String(255), default="")  # ';'-separated flags
    source_list: Mapped[str | None] = mapped_column(String(16))  # "src" or "detect"
    # indexed: the run finds the nights it touched from its own frames (revision 0004)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class Master(Base):
    """A master calibration frame written into the archive."""

    __tablename__ = "masters"
    __table_args__ = (UniqueConstraint("input_key", name="uq_masters_input_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telescope: Mapped[str] = telescope_column()  # a light uses its own telescope's masters only
    kind: Mapped[str] = mapped_column(String(16))  # bias|dark|flat
    binning: Mapped[int] = mapped_column(Integer)
    filter: Mapped[str | None] = mapped_column(String(32))
    exptime: Mapped[float | None] = mapped_column(Float)  # dark exposure the master is scaled from
    ccd_temp: Mapped[float | None] = mapped_column(Float)
    night: Mapped[str] = mapped_column(String(8))
    jd: Mapped[float] = mapped_column(Float)  # mean JD of the inputs (for nearest-in-time choice)
    shape_y: Mapped[int] = mapped_column(Integer)
    shape_x: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1024))  # relative to archive
    mode: Mapped[str] = mapped_column(String(16))
    n_frames: Mapped[int] = mapped_column(Integer)
    inputs: Mapped[str] = mapped_column(Text)  # JSON list of {raw_path, sha256}
    input_key: Mapped[str] = mapped_column(String(64))  # sha256 of mode + sorted input checksums
    software_version: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Star(Base):
    """A star of our own star list: stable id across frames and nights."""

    __tablename__ = "stars"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ra: Mapped[float] = mapped_column(Float)  # deg ICRS, mean of its detections
    dec: Mapped[float] = mapped_column(Float)
    catalog_id: Mapped[str | None] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(64), index=True)  # known-variable name
    # indexed: the run looks up the few suspected variables among all stars (revision 0004)
    var_type: Mapped[str | None] = mapped_column(String(32), index=True)
    var_period: Mapped[float | None] = mapped_column(Float)
    n_measurements: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_stars_dec_ra", "dec", "ra"),)


class CatalogMatch(Base):
    """A star's counterpart in a reference catalog, with the catalog's magnitudes (JSON)."""

    __tablename__ = "catalog_matches"
    __table_args__ = (UniqueConstraint("star_id", "catalog", name="uq_catalog_matches_star_catalog"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    star_id: Mapped[int] = mapped_column(ForeignKey("stars.id"), index=True)
    catalog: Mapped[str] = mapped_column(String(32))
    catalog_id: Mapped[str] = mapped_column(String(64))
    ra: Mapped[float] = mapped_column(Float)
    dec: Mapped[float] = mapped_column(Float)
    separation: Mapped[float] = mapped_column(Float)  # arcsec
    mags: Mapped[str] = mapped_column(Text)  # JSON {"V": [mag, err], ...}


class ZeroPoint(Base):
    """The ensemble zero point of one light frame: mag = inst_mag + value."""

    __tablename__ = "zero_points"
    __table_args__ = (UniqueConstraint("frame_id", name="uq_zero_points_frame"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"))
    filter: Mapped[str] = mapped_column(String(32))
    catalog_band: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    error: Mapped[float] = mapped_column(Float)
    n_used: Mapped[int] = mapped_column(Integer)
    n_candidates: Mapped[int] = mapped_column(Integer)
    scatter: Mapped[float] = mapped_column(Float)  # rms of the used stars' residuals
    color_term: Mapped[float | None] = mapped_column(Float)


class Measurement(Base):
    """One star on one light frame. Unique per (frame, star): reruns never duplicate."""

    __tablename__ = "measurements"
    __table_args__ = (
        UniqueConstraint("frame_id", "star_id", name="uq_measurements_frame_star"),
        Index("ix_measurements_star_filter_jd", "star_id", "filter", "jd_mid"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # no separate index on frame_id: uq_measurements_frame_star (frame_id, star_id) serves every
    # frame_id lookup and the ON DELETE CASCADE, and a second index only slows the bulk inserts
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"))
    star_id: Mapped[int] = mapped_column(ForeignKey("stars.id"))
    filter: Mapped[str] = mapped_column(String(32))
    jd_mid: Mapped[float] = mapped_column(Float)
    bjd_tdb: Mapped[float | None] = mapped_column(Float)
    # x, y, flux, flux_err and background are NULL only for rows imported from the 2018
    # sources.csv (store.legacy), which recorded positions and magnitudes but no pixels or fluxes.
    x: Mapped[float | None] = mapped_column(Float)  # 1-based FITS pixel convention
    y: Mapped[float | None] = mapped_column(Float)
    ra: Mapped[float | None] = mapped_column(Float)
    dec: Mapped[float | None] = mapped_column(Float)
    flux: Mapped[float | None] = mapped_column(Float)  # ADU, background-subtracted
    flux_err: Mapped[float | None] = mapped_column(Float)
    background: Mapped[float | None] = mapped_column(Float)  # ADU/pixel
    inst_mag: Mapped[float | None] = mapped_column(Float)
    inst_mag_err: Mapped[float | None] = mapped_column(Float)
    mag: Mapped[float | None] = mapped_column(Float)
    mag_err: Mapped[float | None] = mapped_column(Float)
    fwhm: Mapped[float | None] = mapped_column(Float)
    airmass: Mapped[float | None] = mapped_column(Float)
    flags: Mapped[int] = mapped_column(Integer, default=0)
    in_ensemble: Mapped[bool] = mapped_column(Boolean, default=False)


class TransformedMag(Base):
    """A measurement transformed to the standard system (``[transform]``; revision 0003):
    ``mag = inst + T·colour + zero point``, with the star's standard ``colour`` that night and
    the ``coefficients`` used (``"Tv_bv=0.034 Tbv=1.020"``, AAVSO's names). A measurement of a
    night not transformed has no row; deleting the measurement deletes it."""

    __tablename__ = "transformed_mags"
    __table_args__ = (UniqueConstraint("measurement_id", name="uq_transformed_mags_measurement"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    measurement_id: Mapped[int] = mapped_column(ForeignKey("measurements.id", ondelete="CASCADE"))
    mag: Mapped[float] = mapped_column(Float)
    mag_err: Mapped[float] = mapped_column(Float)
    colour: Mapped[float] = mapped_column(Float)  # standard colour index used, e.g. B-V (mag)
    colour_err: Mapped[float] = mapped_column(Float)
    coefficients: Mapped[str] = mapped_column(String(64))


class StarStat(Base):
    """The variability statistics of one star in one filter (revision 0005), as
    :func:`clinepipe.variability.statistics.lightcurve_statistics` computes them from the star's
    flag-free points (frames with a QC flag of ``exclude_qc`` and isolated outliers left out),
    kept up to date by the run (:mod:`clinepipe.variability.star_stats`) so that ``stars``,
    ``variables``, ``lc`` and the web read one row per star and filter instead of every
    measurement. ``n`` = 0 for a filter whose points are all flagged or excluded; ``n_all``
    counts every measurement of the star in the filter. Periods are in :class:`StarPeriod`."""

    __tablename__ = "star_stats"
    __table_args__ = (UniqueConstraint("star_id", "filter", name="uq_star_stats_star_filter"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    star_id: Mapped[int] = mapped_column(ForeignKey("stars.id"))
    filter: Mapped[str] = mapped_column(String(32))
    n_all: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    mean_mag: Mapped[float | None] = mapped_column(Float)  # error-weighted (mag)
    rms: Mapped[float | None] = mapped_column(Float)  # mag
    chi2_red: Mapped[float | None] = mapped_column(Float)
    stetson_j: Mapped[float | None] = mapped_column(Float)
    mag_min: Mapped[float | None] = mapped_column(Float)
    mag_max: Mapped[float | None] = mapped_column(Float)
    t_first: Mapped[float | None] = mapped_column(Float)  # days (BJD_TDB, else JD UTC)
    t_last: Mapped[float | None] = mapped_column(Float)
    exclude_qc: Mapped[str] = mapped_column(String(255), default="")  # ';'-separated, sorted


class StarStatPending(Base):
    """A star whose measurements changed since its ``star_stats`` rows were computed: marked in
    the transaction that changes them, cleared when the rows are recomputed (revision 0005)."""

    __tablename__ = "star_stats_pending"
    star_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class StarPeriod(Base):
    """The period ``clinepipe variables`` gives a variable star (revision 0007), kept because a
    search costs seconds per star on a long light curve. ``points_key`` is a digest of the
    star's ``star_stats`` rows the search was made from (and of ``exclude_qc`` and
    ``min_points``, :mod:`clinepipe.variability.star_periods`): a row whose digest no longer
    matches the star's statistics is stale and not used. ``period`` is NULL when the search
    found none."""

    __tablename__ = "star_periods"
    star_id: Mapped[int] = mapped_column(ForeignKey("stars.id"), primary_key=True,
                                         autoincrement=False)
    points_key: Mapped[str] = mapped_column(String(64))
    period: Mapped[float | None] = mapped_column(Float)  # days
    fap: Mapped[float | None] = mapped_column(Float)  # Lomb-Scargle false-alarm probability
