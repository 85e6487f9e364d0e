"""What ``POST /changes`` stores: one row per change event, however often its delivery is retried."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base
from knowledge.rootcause.model import ChangeEvent

DEDUP_KEY_LENGTH = 300


class ChangeRecord(Base):
    """A deploy, config change or feature-flag flip of ``service`` at ``at``.

    ``dedup_key`` identifies the event at its source (the sender's id, GitHub's deployment status id, Argo CD's
    app + revision + finish time, or a digest of the generic body), so a retried delivery stores one row.
    """

    __tablename__ = "change_events"
    __table_args__ = (
        Index("ix_change_events_service_at", "service", "at"),
        Index("ix_change_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(DEDUP_KEY_LENGTH), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # generic | github | argocd
    service: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[str | None] = mapped_column(String(200))
    who: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime]
    link: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]

    def event(self) -> ChangeEvent:
        """This row as the root-cause ranker reads it."""
        return ChangeEvent(
            service=self.service,
            kind=self.kind,
            at=self.at,
            version=self.version,
            who=self.who,
            link=self.link,
            description=self.description,
        )
