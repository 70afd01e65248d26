"""sweeps: a grid of runs over config values x seeds, its runs, and share links to a whole sweep

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 15:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("lab_id", sa.Integer(), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("preset", sa.String(length=200), nullable=True),
        sa.Column("base", sa.JSON(), nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.Column("grid", sa.JSON(), nullable=False),
        sa.Column("seeds", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lab_id"], ["labs.id"]),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sweeps_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sweeps_lab_id"), ["lab_id"], unique=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sweep_id", BIG_ID, nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_sweep_id"), ["sweep_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_runs_sweep_id_sweeps", "sweeps", ["sweep_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.alter_column("run_id", existing_type=BIG_ID, nullable=True)
        batch_op.add_column(sa.Column("sweep_id", BIG_ID, nullable=True))
        batch_op.create_index(batch_op.f("ix_share_links_sweep_id"), ["sweep_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_share_links_sweep_id_sweeps", "sweeps", ["sweep_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    op.execute("DELETE FROM share_links WHERE run_id IS NULL")
    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.drop_constraint("fk_share_links_sweep_id_sweeps", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_share_links_sweep_id"))
        batch_op.drop_column("sweep_id")
        batch_op.alter_column("run_id", existing_type=BIG_ID, nullable=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_runs_sweep_id_sweeps", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_runs_sweep_id"))
        batch_op.drop_column("sweep_id")
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sweeps_lab_id"))
        batch_op.drop_index(batch_op.f("ix_sweeps_owner_id"))
    op.drop_table("sweeps")
