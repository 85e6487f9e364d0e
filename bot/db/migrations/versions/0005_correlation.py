"""correlation: why each alert joined, incident profiles, the candidate index, people's corrections

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

``incident_alerts`` keeps the correlator's decision, probability and reason (and, in shadow mode, what the
learned correlator would have done). ``incidents`` gains the correlator's profile, its version counter and
``merged_into``. ``incident_keys`` is the candidate index; ``correlation_feedback`` stores corrections as
labelled pairs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("correlation", JSON, nullable=True))
        batch_op.add_column(sa.Column("correlation_version", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("merged_into", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_incidents_merged_into_incidents"), "incidents", ["merged_into"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("incident_alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("probability", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("shadow_reason", sa.Text(), nullable=True))
    op.create_table(
        "incident_keys",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_incident_keys_incident_id_incidents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key", "incident_id", name=op.f("pk_incident_keys")),
    )
    with op.batch_alter_table("incident_keys", schema=None) as batch_op:
        batch_op.create_index("ix_incident_keys_recent", ["key", "last_at"], unique=False)
    op.create_table(
        "correlation_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("related", sa.Boolean(), nullable=False),
        sa.Column("features", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_correlation_feedback_alert_id_alerts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_correlation_feedback_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_correlation_feedback")),
    )


def downgrade() -> None:
    op.drop_table("correlation_feedback")
    with op.batch_alter_table("incident_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_keys_recent")
    op.drop_table("incident_keys")
    with op.batch_alter_table("incident_alerts", schema=None) as batch_op:
        for column in ("shadow_reason", "reason", "probability", "decision"):
            batch_op.drop_column(column)
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_incidents_merged_into_incidents"), type_="foreignkey")
        for column in ("merged_into", "correlation_version", "correlation"):
            batch_op.drop_column(column)
