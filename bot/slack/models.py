"""What the Slack integration stores: the outbox of Slack writes, seen requests, and timers."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONDocument


class OutboxKind(enum.StrEnum):
    POST_INCIDENT = "post_incident"  # the incident's main message (once)
    UPDATE_INCIDENT = "update_incident"  # re-render the main message in place (coalesced)
    THREAD_REPLY = "thread_reply"  # one line in the incident's thread
    ALERTS_JOINED = "alerts_joined"  # alerts that joined since the last such reply (coalesced)
    STATUS_CHANGES = "status_changes"  # the alerts' resolves and reopens since the last such reply (coalesced)
    CREATE_CHANNEL = "create_channel"  # the optional per-incident channel
    POINTER = "pointer"  # an alert of this channel's route joined an incident posted in another channel
    AGENT_DM = "agent_dm"  # the virtual agent tells a subscriber by DM that the incident resolved
    AGENT_ANSWER = "agent_answer"  # the virtual agent's answer, edited into its "looking…" (no incident)
    AGENT_REPLY = "agent_reply"  # a line in the asker's conversation: a person's relayed reply (no incident)
    AGENT_REPORTED = "agent_reported"  # "Report a problem": the incident's link, once posted (no incident)
    REMEDIATION_EDIT = "remediation_edit"  # a remediation request's message in the thread, edited (coalesced)


def incident_coalesce_key(kind: OutboxKind, incident_id: int) -> str:
    """The :attr:`OutboxItem.coalesce_key` of an incident's one pending item of ``kind``."""
    return f"{kind.value}:{incident_id}"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class OutboxItem(Base):
    """One Slack write, committed with the change that caused it and sent by the outbox worker.

    ``coalesce_key`` is unique while set: a second update of a message while one is waiting adds nothing
    (the worker renders the incident's state when it sends, and clears the key before it renders).
    ``incident_id`` is None for the virtual agent's messages, which belong to no incident.
    """

    __tablename__ = "slack_outbox"
    __table_args__ = (
        Index("ix_slack_outbox_due", "status", "not_before", "id"),
        Index("uq_slack_outbox_coalesce", "coalesce_key", unique=True),
        # An incident's items of one kind: "was it posted?" on every timeline entry, its earlier status replies. The
        # outbox keeps what it sent, so without it each of those reads the whole history.
        Index("ix_slack_outbox_incident", "incident_id", "kind", "id"),
        # The suggester's poll (ten times a second): posts queued in the last hour.
        Index("ix_slack_outbox_kind_created", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[OutboxKind] = mapped_column(String(32))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    status: Mapped[OutboxStatus] = mapped_column(String(16), default=OutboxStatus.PENDING)
    coalesce_key: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    ambiguous: Mapped[bool] = mapped_column(default=False)  # a try may have reached Slack: look before re-posting
    last_error: Mapped[str | None] = mapped_column(Text)


class SeenRequest(Base):
    """A Slack request (event id, button click, slash command) already handled: retries have one effect."""

    __tablename__ = "slack_seen_requests"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime]


class IncidentTimer(Base):
    """A timer that survives restarts (the unacknowledged reminder)."""

    __tablename__ = "incident_timers"
    __table_args__ = (Index("ix_incident_timers_due", "fired_at", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
