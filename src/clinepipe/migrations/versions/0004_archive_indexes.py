"""Indexes an archive of many years needs: ``frames.run_id`` and ``stars.var_type``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Both serve steps of every run that must not cost in proportion to the archive
(``bench/bench_archive.py``):

* ``ix_frames_run_id``: "the nights this run touched" (the suspects step, the colour terms,
  the morning reports) found from the run's own frames instead of a scan of every frame;
* ``ix_stars_var_type``: "frames that still have a suspected variable in their ensemble" (the
  suspects step) starts from the few suspected stars and their light curves; without it SQLite
  walks every measurement of the telescope's frames (10 M rows for ten years) on every run.

Both tables are small (one row per frame, one per star), so the indexes cost nothing
measurable when lights are stored, and plain ``CREATE INDEX`` needs no table rebuild on SQLite.
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_frames_run_id", "frames", ["run_id"])
    op.create_index("ix_stars_var_type", "stars", ["var_type"])


def downgrade() -> None:
    op.drop_index("ix_stars_var_type", table_name="stars")
    op.drop_index("ix_frames_run_id", table_name="frames")
