"""The initial schema: runs, frames, masters, stars, catalog matches, zero points, measurements.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written by hand to mirror ``clinepipe.store.models`` exactly (a test compares the upgraded
database against the models with ``alembic.autogenerate.compare_metadata``). Every constraint
and index carries the name given by ``models.NAMING_CONVENTION``, identical on SQLite and
PostgreSQL. Types are portable: ``Float`` is ``FLOAT`` (double precision) on PostgreSQL and
``REAL`` affinity on SQLite; ``Boolean`` creates no CHECK constraint.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("software_version", sa.String(length=64), nullable=False),
        sa.Column("config_text", sa.Text(), nullable=False),
        sa.Column("config_sha256", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )

    op.create_table(
        "stars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ra", sa.Float(), nullable=False),
        sa.Column("dec", sa.Float(), nullable=False),
        sa.Column("catalog_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("var_type", sa.String(length=32), nullable=True),
        sa.Column("var_period", sa.Float(), nullable=True),
        sa.Column("n_measurements", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stars"),
    )
    op.create_index("ix_stars_catalog_id", "stars", ["catalog_id"])
    op.create_index("ix_stars_name", "stars", ["name"])
    op.create_index("ix_stars_dec_ra", "stars", ["dec", "ra"])

    op.create_table(
        "catalog_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("star_id", sa.Integer(), nullable=False),
        sa.Column("catalog", sa.String(length=32), nullable=False),
        sa.Column("catalog_id", sa.String(length=64), nullable=False),
        sa.Column("ra", sa.Float(), nullable=False),
        sa.Column("dec", sa.Float(), nullable=False),
        sa.Column("separation", sa.Float(), nullable=False),
        sa.Column("mags", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["star_id"], ["stars.id"], name="fk_catalog_matches_star_id_stars"),
        sa.PrimaryKeyConstraint("id", name="pk_catalog_matches"),
        sa.UniqueConstraint("star_id", "catalog", name="uq_catalog_matches_star_catalog"),
    )
    op.create_index("ix_catalog_matches_star_id", "catalog_matches", ["star_id"])

    op.create_table(
        "masters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("binning", sa.Integer(), nullable=False),
        sa.Column("filter", sa.String(length=32), nullable=True),
        sa.Column("exptime", sa.Float(), nullable=True),
        sa.Column("ccd_temp", sa.Float(), nullable=True),
        sa.Column("night", sa.String(length=8), nullable=False),
        sa.Column("jd", sa.Float(), nullable=False),
        sa.Column("shape_y", sa.Integer(), nullable=False),
        sa.Column("shape_x", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("n_frames", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("input_key", sa.String(length=64), nullable=False),
        sa.Column("software_version", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_masters_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_masters"),
        sa.UniqueConstraint("input_key", name="uq_masters_input_key"),
    )

    op.create_table(
        "frames",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("raw_path", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("archive_path", sa.String(length=1024), nullable=True),
        sa.Column("night", sa.String(length=8), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("filter", sa.String(length=32), nullable=True),
        sa.Column("binning", sa.Integer(), nullable=True),
        sa.Column("exptime", sa.Float(), nullable=True),
        sa.Column("ccd_temp", sa.Float(), nullable=True),
        sa.Column("date_obs", sa.String(length=32), nullable=True),
        sa.Column("jd_mid", sa.Float(), nullable=True),
        sa.Column("object", sa.String(length=128), nullable=True),
        sa.Column("naxis1", sa.Integer(), nullable=True),
        sa.Column("naxis2", sa.Integer(), nullable=True),
        sa.Column("xorg", sa.Integer(), nullable=False),
        sa.Column("yorg", sa.Integer(), nullable=False),
        sa.Column("gain", sa.Float(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("calibrated_path", sa.String(length=1024), nullable=True),
        sa.Column("bias_master_id", sa.Integer(), nullable=True),
        sa.Column("dark_master_id", sa.Integer(), nullable=True),
        sa.Column("flat_master_id", sa.Integer(), nullable=True),
        sa.Column("fwhm", sa.Float(), nullable=True),
        sa.Column("elongation", sa.Float(), nullable=True),
        sa.Column("sky", sa.Float(), nullable=True),
        sa.Column("n_stars", sa.Integer(), nullable=True),
        sa.Column("astrometric_rms", sa.Float(), nullable=True),
        sa.Column("airmass", sa.Float(), nullable=True),
        sa.Column("qc", sa.String(length=255), nullable=False),
        sa.Column("source_list", sa.String(length=16), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["bias_master_id"], ["masters.id"],
                                name="fk_frames_bias_master_id_masters"),
        sa.ForeignKeyConstraint(["dark_master_id"], ["masters.id"],
                                name="fk_frames_dark_master_id_masters"),
        sa.ForeignKeyConstraint(["flat_master_id"], ["masters.id"],
                                name="fk_frames_flat_master_id_masters"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_frames_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_frames"),
        sa.UniqueConstraint("raw_path", name="uq_frames_raw_path"),
    )
    op.create_index("ix_frames_sha256", "frames", ["sha256"])
    op.create_index("ix_frames_night", "frames", ["night"])
    op.create_index("ix_frames_state", "frames", ["state"])

    op.create_table(
        "zero_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("filter", sa.String(length=32), nullable=False),
        sa.Column("catalog_band", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("error", sa.Float(), nullable=False),
        sa.Column("n_used", sa.Integer(), nullable=False),
        sa.Column("n_candidates", sa.Integer(), nullable=False),
        sa.Column("scatter", sa.Float(), nullable=False),
        sa.Column("color_term", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["frame_id"], ["frames.id"], ondelete="CASCADE",
                                name="fk_zero_points_frame_id_frames"),
        sa.PrimaryKeyConstraint("id", name="pk_zero_points"),
        sa.UniqueConstraint("frame_id", name="uq_zero_points_frame"),
    )

    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("star_id", sa.Integer(), nullable=False),
        sa.Column("filter", sa.String(length=32), nullable=False),
        sa.Column("jd_mid", sa.Float(), nullable=False),
        sa.Column("bjd_tdb", sa.Float(), nullable=True),
        sa.Column("x", sa.Float(), nullable=True),
        sa.Column("y", sa.Float(), nullable=True),
        sa.Column("ra", sa.Float(), nullable=True),
        sa.Column("dec", sa.Float(), nullable=True),
        sa.Column("flux", sa.Float(), nullable=True),
        sa.Column("flux_err", sa.Float(), nullable=True),
        sa.Column("background", sa.Float(), nullable=True),
        sa.Column("inst_mag", sa.Float(), nullable=True),
        sa.Column("inst_mag_err", sa.Float(), nullable=True),
        sa.Column("mag", sa.Float(), nullable=True),
        sa.Column("mag_err", sa.Float(), nullable=True),
        sa.Column("fwhm", sa.Float(), nullable=True),
        sa.Column("airmass", sa.Float(), nullable=True),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("in_ensemble", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["frame_id"], ["frames.id"], ondelete="CASCADE",
                                name="fk_measurements_frame_id_frames"),
        sa.ForeignKeyConstraint(["star_id"], ["stars.id"], name="fk_measurements_star_id_stars"),
        sa.PrimaryKeyConstraint("id", name="pk_measurements"),
        sa.UniqueConstraint("frame_id", "star_id", name="uq_measurements_frame_star"),
    )
    op.create_index("ix_measurements_star_filter_jd", "measurements",
                    ["star_id", "filter", "jd_mid"])


def downgrade() -> None:
    op.drop_index("ix_measurements_star_filter_jd", table_name="measurements")
    op.drop_table("measurements")
    op.drop_table("zero_points")
    op.drop_index("ix_frames_state", table_name="frames")
    op.drop_index("ix_frames_night", table_name="frames")
    op.drop_index("ix_frames_sha256", table_name="frames")
    op.drop_table("frames")
    op.drop_table("masters")
    op.drop_index("ix_catalog_matches_star_id", table_name="catalog_matches")
    op.drop_table("catalog_matches")
    op.drop_index("ix_stars_dec_ra", table_name="stars")
    op.drop_index("ix_stars_name", table_name="stars")
    op.drop_index("ix_stars_catalog_id", table_name="stars")
    op.drop_table("stars")
    op.drop_table("runs")
