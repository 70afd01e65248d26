"""run_media: recorded episodes of a run (a GIF in its run folder, its chunks and outcome)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 15:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_media",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("task", sa.Integer(), nullable=False),
        sa.Column("trajectory", sa.Integer(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("instruction", sa.String(length=1024), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("frame_ms", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "path"),
    )
    with op.batch_alter_table("run_media", schema=None) as batch_op:
        batch_op.create_index("ix_run_media_run_id_step", ["run_id", "step"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run_media", schema=None) as batch_op:
        batch_op.drop_index("ix_run_media_run_id_step")
    op.drop_table("run_media")
