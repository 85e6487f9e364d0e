"""What the hand-over stores: each "Ask a human" request, the help-channel post its answers come back to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.agent.models import USER_ID_LENGTH
from bot.db.base import Base


class HelpRequest(Base):
    """``question_id`` was posted to the help channel ``help_channel`` (an id) as ``help_ts``; replies in that
    thread are relayed to the asker's conversation (the question's channel and thread). ``first_reply_at`` is
    when a person first answered; ``replies`` how many replies were relayed."""

    __tablename__ = "agent_help_requests"
    __table_args__ = (UniqueConstraint("help_channel", "help_ts"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("agent_questions.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    help_channel: Mapped[str] = mapped_column(String(64))
    help_ts: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    first_reply_at: Mapped[datetime | None]
    replies: Mapped[int] = mapped_column(default=0)
