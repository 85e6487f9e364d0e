"""What the agent stores: each question with its answer (a thread's context, the hand-over's subject, the rate
limit's count) and "notify me when resolved" subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONDocument

USER_ID_LENGTH = 32


class AgentQuestion(Base):
    """One question and the agent's answer. ``channel``/``thread_ts`` name the conversation (a DM or a channel
    thread) its follow-ups continue; ``reply_ts`` is the bot's answer message (``None`` until posted);
    ``kind`` is ``status``, ``howto`` or ``abstain``; ``answer`` the answer as plain text (a follow-up's context)."""

    __tablename__ = "agent_questions"
    __table_args__ = (
        Index("ix_agent_questions_thread", "channel", "thread_ts", "id"),
        Index("ix_agent_questions_asker", "asker", "asked_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    asker: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    channel: Mapped[str] = mapped_column(String(64))
    thread_ts: Mapped[str] = mapped_column(String(32))
    reply_ts: Mapped[str | None] = mapped_column(String(32))
    question: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(16))
    answer: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None]
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    asked_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]


class AgentSubscription(Base):
    """``user`` asked to be told by DM (``dm_channel``) when ``incident_id`` resolves; ``notified_at`` once told."""

    __tablename__ = "agent_subscriptions"
    __table_args__ = (UniqueConstraint("incident_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    dm_channel: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    notified_at: Mapped[datetime | None]
