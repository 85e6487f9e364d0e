"""change events: deploys, config changes and feature-flag flips received on POST /changes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

``change_events`` holds one row per change, unique by ``dedup_key`` so a retried delivery is stored once; the
root-cause ranking reads the changes of an incident's services around its start (index on service, at).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=True),
        sa.Column("who", sa.String(length=200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_events")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_change_events_dedup_key")),
    )
    with op.batch_alter_table("change_events", schema=None) as batch_op:
        batch_op.create_index("ix_change_events_service_at", ["service", "at"], unique=False)
        batch_op.create_index("ix_change_events_at", ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("change_events", schema=None) as batch_op:
        batch_op.drop_index("ix_change_events_at")
        batch_op.drop_index("ix_change_events_service_at")
    op.drop_table("change_events")
