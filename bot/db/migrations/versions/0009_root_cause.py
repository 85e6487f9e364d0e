"""root-cause rankings, people's feedback on them, confirmed causes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

``root_cause_rankings`` holds each incident's current ranking of probable causes (and whether its alerts changed
since); ``cause_feedback`` people's 👍/👎 on a candidate; ``confirmed_causes`` the cause people confirmed when
they resolved an incident, which later rankings read as history.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "root_cause_rankings",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("candidates", JSON, nullable=False),
        sa.Column("top", sa.String(length=200), nullable=True),
        sa.Column("top_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("ranked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_root_cause_rankings_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_root_cause_rankings")),
    )
    with op.batch_alter_table("root_cause_rankings", schema=None) as batch_op:
        batch_op.create_index("ix_root_cause_rankings_stale", ["stale"], unique=False)
    op.create_table(
        "cause_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("candidate", sa.String(length=200), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_cause_feedback_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cause_feedback")),
        sa.UniqueConstraint("incident_id", "actor", "candidate", name=op.f("uq_cause_feedback_incident_id")),
    )
    op.create_table(
        "confirmed_causes",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_confirmed_causes_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_confirmed_causes")),
    )


def downgrade() -> None:
    op.drop_table("confirmed_causes")
    op.drop_table("cause_feedback")
    with op.batch_alter_table("root_cause_rankings", schema=None) as batch_op:
        batch_op.drop_index("ix_root_cause_rankings_stale")
    op.drop_table("root_cause_rankings")
