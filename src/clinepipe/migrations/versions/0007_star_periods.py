"""The periods of the variable stars (``star_periods``), so that ``clinepipe variables``, ``lc``
and the web star page read them instead of searching every variable star at every call.

Revision ID: 0007_star_periods
Revises: 0006_star_stats
Create Date: 2026-12-03

The table starts empty: a search costs seconds per variable star on a long light curve, so the
upgrade does not make them. Until the next ``clinepipe run`` stores them
(:mod:`clinepipe.variability.star_periods`), readers search the missing ones as before, so what
they show never differs.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007_star_periods"
down_revision: Union[str, Sequence[str], None] = "0006_star_stats"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "star_periods",
        sa.Column("star_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("points_key", sa.String(length=64), nullable=False),
        sa.Column("period", sa.Float(), nullable=True),
        sa.Column("fap", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["star_id"], ["stars.id"],
                                name="fk_star_periods_star_id_stars"),
        sa.PrimaryKeyConstraint("star_id", name="pk_star_periods"),
    )


def downgrade() -> None:
    op.drop_table("star_periods")
