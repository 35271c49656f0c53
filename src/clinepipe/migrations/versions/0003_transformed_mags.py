"""Transformed magnitudes (issue 21, TRANS=YES): a ``transformed_mags`` table, one row per
measurement transformed to the standard system with the coefficients of ``[transform]``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

A new table beside ``measurements`` rather than new columns in it: the nightly bulk inserts of
measurements stay as they are, and a database without ``[transform]`` holds no rows here.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "transformed_mags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("measurement_id", sa.Integer(), nullable=False),
        sa.Column("mag", sa.Float(), nullable=False),
        sa.Column("mag_err", sa.Float(), nullable=False),
        sa.Column("colour", sa.Float(), nullable=False),
        sa.Column("colour_err", sa.Float(), nullable=False),
        sa.Column("coefficients", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["measurement_id"], ["measurements.id"], ondelete="CASCADE",
                                name="fk_transformed_mags_measurement_id_measurements"),
        sa.PrimaryKeyConstraint("id", name="pk_transformed_mags"),
        sa.UniqueConstraint("measurement_id", name="uq_transformed_mags_measurement"),
    )


def downgrade() -> None:
    op.drop_table("transformed_mags")
