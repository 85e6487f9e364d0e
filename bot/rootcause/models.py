"""What the service knows of incidents' causes: the current ranking of each, people's 👍/👎 on it, and the cause
people confirmed when they resolved it (the history source of later rankings, and the feature's evaluation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONDocument

NAME_LENGTH = 200


class RootCauseRanking(Base):
    """An incident's ranked probable causes (``knowledge.rootcause.model.CauseCandidate`` as JSON, best first).

    ``stale`` is set, in the transaction that changed the incident's alerts, when the ranking no longer matches
    them (and ``generation`` bumped); the ranker (outside any write transaction) re-ranks stale incidents and clears
    it unless the incident changed again meanwhile. ``top`` is the first
    candidate's name (None: no candidate), kept apart to tell when the likely cause changed."""

    __tablename__ = "root_cause_rankings"
    __table_args__ = (Index("ix_root_cause_rankings_stale", "stale"),)

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    stale: Mapped[bool] = mapped_column(default=True)
    generation: Mapped[int] = mapped_column(default=1)  # bumped with each change
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    top: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    top_since: Mapped[datetime | None]  # when ``top`` became the top
    alert_count: Mapped[int] = mapped_column(default=0)  # the incident's alerts when it was ranked
    ranked_at: Mapped[datetime | None]


class CauseFeedback(Base):
    """A person's 👍 or 👎 on a candidate of an incident's ranking (their latest vote on it counts)."""

    __tablename__ = "cause_feedback"
    __table_args__ = (UniqueConstraint("incident_id", "actor", "candidate"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    candidate: Mapped[str] = mapped_column(String(NAME_LENGTH))
    helpful: Mapped[bool]  # 👍 True, 👎 False
    rank: Mapped[int | None]  # its place in the ranking when voted on (1: the top), None when no longer in it
    confidence: Mapped[float | None]


class ConfirmedCause(Base):
    """The cause people confirmed for an incident (when resolving it): one of the ranking's candidates or their
    own words. One per incident; a later confirmation replaces it."""

    __tablename__ = "confirmed_causes"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    rank: Mapped[int | None]  # its place in the ranking then (1: the top), None when the ranking did not hold it
    note: Mapped[str | None] = mapped_column(Text)
