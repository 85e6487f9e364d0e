"""the Slack outbox carries the virtual agent's messages, which belong to no incident

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

``slack_outbox.incident_id`` becomes nullable: the agent's answers and relayed replies go through the outbox (so a
rate limit delays them instead of losing them) and have no incident.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("slack_outbox", schema=None) as batch_op:
        batch_op.alter_column("incident_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM slack_outbox WHERE incident_id IS NULL")
    with op.batch_alter_table("slack_outbox", schema=None) as batch_op:
        batch_op.alter_column("incident_id", existing_type=sa.Integer(), nullable=False)
