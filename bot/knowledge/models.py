"""What search knows about each incident, stored with the incident (the database is the source of truth)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONDocument


class IncidentDocument(Base):
    """An incident as search sees it: the text embedded, its vector, and the suggestions shown in Slack.

    ``rev`` counts changes of ``text`` (opened, resolved with a note, reopened); ``pending`` is set with each
    change and cleared by the indexer once it has stored the vector of that revision. Every stored vector gets
    a ``seq`` larger than any before it, so a process catches its in-memory index up by reading the rows with a
    larger ``seq`` than it has seen: the FAISS index is a cache of this table, rebuilt from it when in doubt.
    """

    __tablename__ = "incident_documents"
    __table_args__ = (
        Index("ix_incident_documents_seq", "seq"),
        Index("ix_incident_documents_pending", "pending"),
    )

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    rev: Mapped[int] = mapped_column(default=1)
    pending: Mapped[bool] = mapped_column(default=True)
    seq: Mapped[int | None]
    model: Mapped[str | None] = mapped_column(String(200))
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]
    suggestions: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)  # runbooks and similar incidents
