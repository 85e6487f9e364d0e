"""the Slack outbox is read by incident and kind through an index

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

Every timeline entry asks whether its incident was posted (``slack_outbox`` by ``incident_id`` and ``kind``), and a
status reply reads its incident's earlier ones. The outbox keeps every item it sent, so without an index each of
those reads scanned the whole history: the worker's cost per alert grew with every Slack write ever made.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_slack_outbox_incident", "slack_outbox", ["incident_id", "kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_slack_outbox_incident", table_name="slack_outbox")
