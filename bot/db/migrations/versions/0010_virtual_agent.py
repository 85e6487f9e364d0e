"""virtual agent: questions and answers, "notify me when resolved" subscriptions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

``agent_questions`` holds each question asked of the virtual agent with its answer (a thread's follow-up context,
the hand-over's subject, the per-user rate limit's count); ``agent_subscriptions`` who is told by DM when an
incident resolves.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "agent_questions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asker", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("thread_ts", sa.String(length=32), nullable=False),
        sa.Column("reply_ts", sa.String(length=32), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("sources", JSON, nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_questions")),
    )
    with op.batch_alter_table("agent_questions", schema=None) as batch_op:
        batch_op.create_index("ix_agent_questions_asker", ["asker", "asked_at"], unique=False)
        batch_op.create_index("ix_agent_questions_thread", ["channel", "thread_ts", "id"], unique=False)
    op.create_table(
        "agent_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("dm_channel", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_agent_subscriptions_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_subscriptions")),
        sa.UniqueConstraint("incident_id", "user_id", name=op.f("uq_agent_subscriptions_incident_id")),
    )


def downgrade() -> None:
    op.drop_table("agent_subscriptions")
    with op.batch_alter_table("agent_questions", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_questions_thread")
        batch_op.drop_index("ix_agent_questions_asker")
    op.drop_table("agent_questions")
