"""run history and lineage: the run a run was cloned from, and the SFT start it used

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 15:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cloned_from_id", BIG_ID, nullable=True))
        batch_op.add_column(sa.Column("start", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            "fk_runs_cloned_from_id_runs", "runs", ["cloned_from_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_runs_cloned_from_id_runs", type_="foreignkey")
        batch_op.drop_column("start")
        batch_op.drop_column("cloned_from_id")
