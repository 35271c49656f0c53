"""The index of a star's light curve also holds its points' values (a covering index), so the
run's ``star_stats`` step reads the whole light curves of a night's stars from the index alone.

Revision ID: 0008_points_index
Revises: 0007_star_periods
Create Date: 2026-12-03

``ix_measurements_star_filter_jd`` (star, filter, time) becomes ``ix_measurements_star_points``
(star, filter, time, BJD, magnitude, error, flags, frame): every column
:func:`clinepipe.variability.points.variability_points` reads. On the ten-year bench archive
(10 M measurements) reading the ~200,000 points of one night's 400 stars took 0.78 s through
the old index (a random table row per point) and 0.24 s from the new one alone, for about
53 bytes more per measurement (SQLite; the old index's 25 go). Every query that used the old
index (a star's light curve, by filter and time) uses its prefix. Building it takes ~20 s per
10 M measurements, once, at the upgrade.
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008_points_index"
down_revision: Union[str, Sequence[str], None] = "0007_star_periods"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

POINTS = ["star_id", "filter", "jd_mid", "bjd_tdb", "mag", "mag_err", "flags", "frame_id"]


def upgrade() -> None:
    op.create_index("ix_measurements_star_points", "measurements", POINTS)
    op.drop_index("ix_measurements_star_filter_jd", table_name="measurements")


def downgrade() -> None:
    op.create_index("ix_measurements_star_filter_jd", "measurements",
                    ["star_id", "filter", "jd_mid"])
    op.drop_index("ix_measurements_star_points", table_name="measurements")
