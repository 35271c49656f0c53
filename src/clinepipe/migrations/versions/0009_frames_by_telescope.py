"""Indexes that start with the telescope, so that a run's queries on ``frames`` read the frames
they want instead of all of the telescope's; and ``star_stats`` by its QC flags.

Revision ID: 0009_frames_by_telescope
Revises: 0008_points_index
Create Date: 2026-12-04

Every query of a run on ``frames`` names the telescope (``telescope = ?``) and SQLite, without
statistics, prefers the index whose first column that equality matches: the unique
(telescope, raw_path), which holds every frame of the telescope. On the ten-year bench archive
(62,000 frames, one telescope) each such query walked all of them: 20-65 ms each, ~0.3 s of a
new night's run (the masters' candidate nights and groups, the pending lights, the run's
summary). With

* ``ix_frames_telescope_state_kind`` (telescope, state, kind): the lights to process, the
  calibration frames ingested or waiting, the frames per state and those not processed;
* ``ix_frames_telescope_kind_night`` (telescope, kind, night): the calibration frames of the
  nights whose masters may change;

the same queries read only their rows. ``ix_star_stats_exclude_qc`` (exclude_qc, star_id) lets
"the rows stored for other QC flags" (normally none) be two range searches instead of a scan
of every star's rows (``clinepipe stars`` and the run's ``star_stats`` step). All three tables
hold one row per frame or per star and filter: the indexes cost nothing measurable to write.
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009_frames_by_telescope"
down_revision: Union[str, Sequence[str], None] = "0008_points_index"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_frames_telescope_state_kind", "frames", ["telescope", "state", "kind"])
    op.create_index("ix_frames_telescope_kind_night", "frames", ["telescope", "kind", "night"])
    op.create_index("ix_star_stats_exclude_qc", "star_stats", ["exclude_qc", "star_id"])


def downgrade() -> None:
    op.drop_index("ix_star_stats_exclude_qc", table_name="star_stats")
    op.drop_index("ix_frames_telescope_kind_night", table_name="frames")
    op.drop_index("ix_frames_telescope_state_kind", table_name="frames")
