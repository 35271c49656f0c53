"""The time keyword each frame's time came from, and why (issue 22): ``frames.time_source``
and ``frames.time_note``.

Revision ID: 0005_time_source
Revises: 0004
Create Date: 2026-12-03

``time_source`` is the keyword read (``DATE-OBS``, ``DATE-OBS (-07:00)`` when a UTC offset
was converted, ``UT-OBS``, ``MJD-OBS``…); ``time_note`` says why, when two time keywords
disagreed by more than 2 s or DATE-OBS was the end of the exposure (``DATE-OBS had a -07:00
offset; used UT-OBS``), empty otherwise. Frames ingested before this revision keep NULL in
both until they are ingested again: their header was read before the keyword was recorded.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005_time_source"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # plain ADD COLUMN of nullable columns: no table rebuild on SQLite
    op.add_column("frames", sa.Column("time_source", sa.String(length=64), nullable=True))
    op.add_column("frames", sa.Column("time_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("frames") as batch:
        batch.drop_column("time_note")
        batch.drop_column("time_source")
