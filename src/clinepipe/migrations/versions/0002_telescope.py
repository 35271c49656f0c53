"""Several telescopes in one database: a ``telescope`` column on runs, frames and masters, and
frames unique per (telescope, raw_path) instead of per raw_path.

Revision ID: 0002
Revises: 0001
Create Date: 2026-03-20

Every existing row gets telescope "" (the server default), which is what a config without
``[site] telescope`` uses, so a single-telescope database carries on unchanged.

SQLite cannot drop a table constraint, so ``frames`` is rebuilt (Alembic's batch mode: a new
table, the rows copied, the old one dropped, the new one renamed). Dropping ``frames`` while
foreign keys are enforced would first delete every measurement and zero point through their
``ON DELETE CASCADE``: ``clinepipe.store.db`` runs migrations on SQLite with foreign keys off
(and checks them before committing), and this migration refuses to rebuild a table that
holds rows when they are on. A plain ``alembic`` command has them off (SQLite's default).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _telescope() -> sa.Column:
    return sa.Column("telescope", sa.String(length=64), server_default="", nullable=False)


def _refuse_cascading_rebuild() -> None:
    """On SQLite with foreign keys enforced, a rebuild of ``frames`` would cascade-delete the
    measurements: stop with a clear error instead (only when there are rows to lose)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if not bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        return
    if bind.execute(sa.text("SELECT count(*) FROM frames")).scalar():
        raise RuntimeError("revision 0002 rebuilds the SQLite table 'frames', which needs "
                           "PRAGMA foreign_keys=OFF (use `clinepipe db upgrade`)")


def upgrade() -> None:
    _refuse_cascading_rebuild()
    # plain ADD COLUMN for the tables whose constraints stay (no rebuild on SQLite)
    op.add_column("runs", _telescope())
    op.add_column("masters", _telescope())
    with op.batch_alter_table("frames", recreate="auto") as batch:
        batch.add_column(_telescope())
        batch.drop_constraint("uq_frames_raw_path", type_="unique")
        batch.create_unique_constraint("uq_frames_telescope_raw_path", ["telescope", "raw_path"])


def downgrade() -> None:
    """Back to one telescope per database: fails (unique violation) if two telescopes' frames
    share a raw_path."""
    _refuse_cascading_rebuild()
    with op.batch_alter_table("frames", recreate="auto") as batch:
        batch.drop_constraint("uq_frames_telescope_raw_path", type_="unique")
        batch.create_unique_constraint("uq_frames_raw_path", ["raw_path"])
        batch.drop_column("telescope")
    with op.batch_alter_table("masters", recreate="auto") as batch:
        batch.drop_column("telescope")
    with op.batch_alter_table("runs", recreate="auto") as batch:
        batch.drop_column("telescope")
