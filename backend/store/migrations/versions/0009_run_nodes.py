"""run_nodes: the seats of a multi-node run's attempt (node ranks 1.., each taken by a worker)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_nodes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("node_rank", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("worker", sa.String(length=256), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_nodes_run_id_runs", ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", "attempt", "node_rank", name="uq_run_nodes_seat"),
    )
    op.create_index("ix_run_nodes_run_id", "run_nodes", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_nodes_run_id", table_name="run_nodes")
    op.drop_table("run_nodes")
