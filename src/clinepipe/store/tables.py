"""The database's tables in SQLAlchemy Core: the one description of the schema.

:mod:`clinepipe.store.models` maps its ORM classes onto these tables; the commands and pages
that only read (``clinepipe lc``, ``stars``, ``variables``) query them directly, so that they
never import ``sqlalchemy.orm`` nor build the mapped classes (a fifth of ``clinepipe lc``'s
start-up). A new, empty database is created from these tables in one go and stamped at the
newest Alembic revision (:func:`clinepipe.store.schema_version.create_schema`); an existing one
is changed only through the Alembic migrations in ``clinepipe/migrations``. Both must give the
same database, down to the order of the columns (a column a migration added comes last, as
``ADD COLUMN`` puts it): ``tests/test_schema_creation.py`` builds a database both ways and
compares them, ``tests/test_store.py`` compares the migrated one with these tables.

Columns are ``NOT NULL`` unless marked ``nullable=True``, as the ORM models always declared them.

Provenance chain: measurement → frame (raw path + sha256, masters used) → run (config text +
software version).

Several telescopes may share one database: ``runs``, ``frames`` and ``masters`` carry the
``telescope`` of ``[site] telescope`` ("" for a lone telescope and for rows from before
revision 0002). A frame is known by (telescope, path relative to that telescope's incoming);
stars, catalog matches and measurements are shared.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

#: Deterministic names for every constraint and index, identical on SQLite and PostgreSQL, so
#: later migrations (SQLite "batch" table rebuilds in particular) can address them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: every table of the schema (the ORM models' metadata too)
metadata = MetaData(naming_convention=NAMING_CONVENTION)


def col(name: str, type_, *args, nullable: bool = False, **kwargs) -> Column:
    """A column, ``NOT NULL`` unless ``nullable=True``."""
    return Column(name, type_, *args, nullable=nullable, **kwargs)


def opt(name: str, type_, *args, **kwargs) -> Column:
    """A column that may be NULL."""
    return Column(name, type_, *args, nullable=True, **kwargs)


def telescope_column() -> Column:
    """The ``telescope`` column of runs, frames and masters: ``[site] telescope``; the server
    default "" lets revision 0002 add it to tables that already hold rows (spelled as SQL
    text: Alembic's comparison of a model with a database takes a bare "" for no default)."""
    return col("telescope", String(64), default="", server_default=text("''"))


def _id() -> Column:
    return col("id", Integer, primary_key=True)


#: one invocation of ``clinepipe run`` (or a standalone command that writes)
runs = Table(
    "runs", metadata,
    _id(),
    col("started_at", DateTime),
    opt("finished_at", DateTime),
    col("software_version", String(64)),
    col("config_text", Text, default=""),
    col("config_sha256", String(64), default=""),
    col("host", String(255), default=""),
    col("pid", Integer, default=0),
    col("status", String(32), default="running"),  # running|finished|crashed
    col("summary", Text, default=""),  # JSON: frames per state, failures
    telescope_column(),
)

#: every file found in ``incoming``, usable or not (``state``: see ``models.Frame``)
frames = Table(
    "frames", metadata,
    _id(),
    col("raw_path", String(1024)),  # relative to the telescope's incoming
    opt("sha256", String(64), index=True),
    opt("size", Integer),
    opt("archive_path", String(1024)),  # relative to archive
    opt("night", String(8), index=True),
    opt("kind", String(16)),  # bias|dark|flat|light
    opt("filter", String(32)),
    opt("binning", Integer),
    opt("exptime", Float),
    opt("ccd_temp", Float),
    opt("date_obs", String(32)),
    opt("jd_mid", Float),
    opt("object", String(128)),
    opt("naxis1", Integer),
    opt("naxis2", Integer),
    col("xorg", Integer, default=0),
    col("yorg", Integer, default=0),
    opt("gain", Float),
    col("state", String(16), index=True),
    opt("stage", String(32)),  # stage that failed / waits
    opt("reason", Text),
    opt("calibrated_path", String(1024)),  # relative to archive
    opt("bias_master_id", Integer, ForeignKey("masters.id")),
    opt("dark_master_id", Integer, ForeignKey("masters.id")),
    opt("flat_master_id", Integer, ForeignKey("masters.id")),
    # quality figures of a light (median over its stars)
    opt("fwhm", Float),
    opt("elongation", Float),
    opt("sky", Float),
    opt("n_stars", Integer),
    opt("astrometric_rms", Float),  # arcsec
    opt("airmass", Float),
    col("qc", String(255), default=""),  # ';'-separated flags
    opt("source_list", String(16)),  # "src" or "detect"
    # indexed: the run finds the nights it touched from its own frames (revision 0004)
    opt("run_id", Integer, ForeignKey("runs.id"), index=True),
    opt("updated_at", DateTime),
    telescope_column(),
    # the header keyword the time came from ("DATE-OBS (-07:00)", "UT-OBS"…) and, when time
    # keywords disagreed, which was used and why (revision 0005_time_source)
    opt("time_source", String(64)),
    opt("time_note", Text),
    # two telescopes may both write 20260314/Light_001.fit into their own incoming folders
    UniqueConstraint("telescope", "raw_path"),
    # a telescope's frames by state and kind (the lights to process, the calibration frames
    # new or waiting, the run's summary) and by kind and night (the masters' groups): without
    # them SQLite walks the unique index above, every frame of the telescope (revision 0009)
    Index("ix_frames_telescope_state_kind", "telescope", "state", "kind"),
    Index("ix_frames_telescope_kind_night", "telescope", "kind", "night"),
)

#: a master calibration frame written into the archive
masters = Table(
    "masters", metadata,
    _id(),
    col("kind", String(16)),  # bias|dark|flat
    col("binning", Integer),
    opt("filter", String(32)),
    opt("exptime", Float),  # dark exposure the master is scaled from
    opt("ccd_temp", Float),
    col("night", String(8)),
    col("jd", Float),  # mean JD of the inputs (for nearest-in-time choice)
    col("shape_y", Integer),
    col("shape_x", Integer),
    col("path", String(1024)),  # relative to archive
    col("mode", String(16)),
    col("n_frames", Integer),
    col("inputs", Text),  # JSON list of {raw_path, sha256}
    col("input_key", String(64)),  # sha256 of mode + sorted input checksums
    col("software_version", String(64)),
    opt("run_id", Integer, ForeignKey("runs.id")),
    col("created_at", DateTime),
    telescope_column(),  # a light uses its own telescope's masters only
    UniqueConstraint("input_key", name="uq_masters_input_key"),
)

#: a star of our own star list: stable id across frames and nights
stars = Table(
    "stars", metadata,
    _id(),
    col("ra", Float),  # deg ICRS, mean of its detections
    col("dec", Float),
    opt("catalog_id", String(64), index=True),
    opt("name", String(64), index=True),  # known-variable name
    # indexed: the run looks up the few suspected variables among all stars (revision 0004)
    opt("var_type", String(32), index=True),
    opt("var_period", Float),
    col("n_measurements", Integer, default=0),
    opt("created_at", DateTime),
    Index("ix_stars_dec_ra", "dec", "ra"),
)

#: a star's counterpart in a reference catalog, with the catalog's magnitudes (JSON)
catalog_matches = Table(
    "catalog_matches", metadata,
    _id(),
    col("star_id", Integer, ForeignKey("stars.id"), index=True),
    col("catalog", String(32)),
    col("catalog_id", String(64)),
    col("ra", Float),
    col("dec", Float),
    col("separation", Float),  # arcsec
    col("mags", Text),  # JSON {"V": [mag, err], ...}
    UniqueConstraint("star_id", "catalog", name="uq_catalog_matches_star_catalog"),
)

#: the ensemble zero point of one light frame: mag = inst_mag + value
zero_points = Table(
    "zero_points", metadata,
    _id(),
    col("frame_id", Integer, ForeignKey("frames.id", ondelete="CASCADE")),
    col("filter", String(32)),
    col("catalog_band", String(32)),
    col("value", Float),
    col("error", Float),
    col("n_used", Integer),
    col("n_candidates", Integer),
    col("scatter", Float),  # rms of the used stars' residuals
    opt("color_term", Float),
    UniqueConstraint("frame_id", name="uq_zero_points_frame"),
)

#: one star on one light frame; unique per (frame, star): reruns never duplicate
measurements = Table(
    "measurements", metadata,
    _id(),
    # no separate index on frame_id: uq_measurements_frame_star (frame_id, star_id) serves every
    # frame_id lookup and the ON DELETE CASCADE, and a second index only slows the bulk inserts
    col("frame_id", Integer, ForeignKey("frames.id", ondelete="CASCADE")),
    col("star_id", Integer, ForeignKey("stars.id")),
    col("filter", String(32)),
    col("jd_mid", Float),
    opt("bjd_tdb", Float),
    # x, y, flux, flux_err and background are NULL only for rows imported from the 2018
    # sources.csv (store.legacy), which recorded positions and magnitudes but no pixels or fluxes.
    opt("x", Float),  # 1-based FITS pixel convention
    opt("y", Float),
    opt("ra", Float),
    opt("dec", Float),
    opt("flux", Float),  # ADU, background-subtracted
    opt("flux_err", Float),
    opt("background", Float),  # ADU/pixel
    opt("inst_mag", Float),
    opt("inst_mag_err", Float),
    opt("mag", Float),
    opt("mag_err", Float),
    opt("fwhm", Float),
    opt("airmass", Float),
    col("flags", Integer, default=0),
    col("in_ensemble", Boolean, default=False),
    UniqueConstraint("frame_id", "star_id", name="uq_measurements_frame_star"),
    # a star's light curve by filter and time, with every value variability_points reads: the
    # run reads the whole light curves of a night's stars from the index alone (revision 0008)
    Index("ix_measurements_star_points", "star_id", "filter", "jd_mid", "bjd_tdb", "mag",
          "mag_err", "flags", "frame_id"),
)

#: a measurement transformed to the standard system (``[transform]``; revision 0003)
transformed_mags = Table(
    "transformed_mags", metadata,
    _id(),
    col("measurement_id", Integer, ForeignKey("measurements.id", ondelete="CASCADE")),
    col("mag", Float),
    col("mag_err", Float),
    col("colour", Float),  # standard colour index used, e.g. B-V (mag)
    col("colour_err", Float),
    col("coefficients", String(64)),
    UniqueConstraint("measurement_id", name="uq_transformed_mags_measurement"),
)

#: the variability statistics of one star in one filter (revision 0005; ``models.StarStat``)
star_stats = Table(
    "star_stats", metadata,
    _id(),
    col("star_id", Integer, ForeignKey("stars.id")),
    col("filter", String(32)),
    col("n_all", Integer),
    col("n", Integer),
    opt("mean_mag", Float),  # error-weighted (mag)
    opt("rms", Float),  # mag
    opt("chi2_red", Float),
    opt("stetson_j", Float),
    opt("mag_min", Float),
    opt("mag_max", Float),
    opt("t_first", Float),  # days (BJD_TDB, else JD UTC)
    opt("t_last", Float),
    col("exclude_qc", String(255), default=""),  # ';'-separated, sorted
    UniqueConstraint("star_id", "filter", name="uq_star_stats_star_filter"),
    # the rows stored for other QC flags (found by two range searches, not a scan; 0009)
    Index("ix_star_stats_exclude_qc", "exclude_qc", "star_id"),
)

#: a star whose measurements changed since its ``star_stats`` rows were computed
star_stats_pending = Table(
    "star_stats_pending", metadata,
    col("star_id", Integer, primary_key=True, autoincrement=False),
    # raised by every new mark of a marked star: the run's step, which computes the rows
    # outside the transaction that stores them, clears only the marks it saw (revision 0010)
    col("version", Integer, default=0, server_default=text("0")),
)

#: the period ``clinepipe variables`` gives a variable star (revision 0007; ``models.StarPeriod``)
star_periods = Table(
    "star_periods", metadata,
    col("star_id", Integer, ForeignKey("stars.id"), primary_key=True, autoincrement=False),
    col("points_key", String(64)),
    opt("period", Float),  # days
    opt("fap", Float),  # Lomb-Scargle false-alarm probability
)
