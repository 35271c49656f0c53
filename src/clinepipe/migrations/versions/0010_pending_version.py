"""A version on each mark of ``star_stats_pending``, raised when a marked star is marked again.

Revision ID: 0010_pending_version
Revises: 0009_frames_by_telescope
Create Date: 2026-12-04

The run's ``star_stats`` step reads and computes a night's stars' rows in a thread while the
run writes its reports, then stores them in one transaction at the end of the run
(:mod:`clinepipe.variability.star_stats`). A change to one of those stars committed in between
(another program importing measurements) marks the star again; the step then clears only the
marks whose version it read, so the newer change keeps its mark and the star is computed again.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010_pending_version"
down_revision: Union[str, Sequence[str], None] = "0009_frames_by_telescope"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("star_stats_pending", sa.Column("version", sa.Integer(), nullable=False,
                                                  server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("star_stats_pending") as batch:
        batch.drop_column("version")
