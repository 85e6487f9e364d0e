"""virtual agent hand-over: "Ask a human" requests and their help-channel posts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

``agent_help_requests`` ties a question asked of the agent to its post in the help channel, so that people's
replies in that thread are relayed to the asker.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_help_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("help_channel", sa.String(length=64), nullable=False),
        sa.Column("help_ts", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_reply_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["agent_questions.id"],
            name=op.f("fk_agent_help_requests_question_id_agent_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_help_requests")),
        sa.UniqueConstraint("help_channel", "help_ts", name=op.f("uq_agent_help_requests_help_channel")),
    )


def downgrade() -> None:
    op.drop_table("agent_help_requests")
