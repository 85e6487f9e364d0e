"""long group keys in full; progress of chunked deliveries

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

``alerts.group_key`` becomes unbounded text: Alertmanager's ``groupKey`` has no upper bound (the bounded,
indexed copies in ``deliveries.order_key`` and ``incidents.group_key`` keep a digest instead).
``deliveries.events_applied`` records, in each chunk's own transaction, how many events of a large delivery
are applied, so that a restart resumes after the last committed chunk.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("group_key", existing_type=sa.String(length=500), type_=sa.Text(), nullable=False)
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("events_applied", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("events_applied")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("group_key", existing_type=sa.Text(), type_=sa.String(length=500), nullable=False)
