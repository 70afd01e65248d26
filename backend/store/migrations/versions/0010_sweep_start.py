"""sweeps.start_from, sweeps.start_policy: the policy every run of a sweep starts from (as its
creator named it, and the folder the server found for it)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 21:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("start_from", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("start_policy", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("start_policy")
        batch_op.drop_column("start_from")
