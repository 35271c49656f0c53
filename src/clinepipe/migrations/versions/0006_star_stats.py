"""Per star and filter variability statistics (``star_stats``) and the stars whose rows wait
for a recomputation (``star_stats_pending``), filled from the measurements.

Revision ID: 0006_star_stats
Revises: 0005_time_source
Create Date: 2026-12-03

``clinepipe stars``, ``variables``, ``lc`` and the web read these rows instead of scanning every
measurement (issue #20: ten years of archive); the run keeps them up to date
(:mod:`clinepipe.variability.star_stats`). The rows are filled here with the default
``[qc] exclude_from_variability`` flags; a configuration with other flags has its rows
recomputed by its next run (and computed on the fly until then).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006_star_stats"
down_revision: Union[str, Sequence[str], None] = "0005_time_source"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "star_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("star_id", sa.Integer(), nullable=False),
        sa.Column("filter", sa.String(length=32), nullable=False),
        sa.Column("n_all", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("mean_mag", sa.Float(), nullable=True),
        sa.Column("rms", sa.Float(), nullable=True),
        sa.Column("chi2_red", sa.Float(), nullable=True),
        sa.Column("stetson_j", sa.Float(), nullable=True),
        sa.Column("mag_min", sa.Float(), nullable=True),
        sa.Column("mag_max", sa.Float(), nullable=True),
        sa.Column("t_first", sa.Float(), nullable=True),
        sa.Column("t_last", sa.Float(), nullable=True),
        sa.Column("exclude_qc", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["star_id"], ["stars.id"],
                                name="fk_star_stats_star_id_stars"),
        sa.PrimaryKeyConstraint("id", name="pk_star_stats"),
        sa.UniqueConstraint("star_id", "filter", name="uq_star_stats_star_filter"),
    )
    op.create_table(
        "star_stats_pending",
        sa.Column("star_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("star_id", name="pk_star_stats_pending"),
    )
    from clinepipe.variability.star_stats import rebuild_star_stats

    rebuild_star_stats(op.get_bind())


def downgrade() -> None:
    op.drop_table("star_stats_pending")
    op.drop_table("star_stats")
