"""Remediation requests, their approvals, and the append-only audit log."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONDocument

NAME_LENGTH = 100
ACTOR_LENGTH = 200
TARGET_LENGTH = 500
HASH_LENGTH = 64


class RequestState(enum.StrEnum):
    """requested → approved → running → succeeded | failed | unknown; denied, expired, cancelled end it early.
    ``dry-run``: approved while INCIBOT_REMEDIATION=dry-run, so recorded and never executed."""

    REQUESTED = "requested"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    DRY_RUN = "dry-run"


FINAL_STATES = frozenset(
    {
        RequestState.SUCCEEDED,
        RequestState.FAILED,
        RequestState.DENIED,
        RequestState.EXPIRED,
        RequestState.CANCELLED,
        RequestState.DRY_RUN,
    }
)


class ActionRequest(Base):
    """One request to run a catalogue action with resolved parameters on a target. Its state changes only by
    compare-and-set on ``state`` (and ``attempt``), so that two clicks or two processes move it once."""

    __tablename__ = "remediation_requests"
    __table_args__ = (
        Index("ix_remediation_requests_incident", "incident_id"),
        Index("ix_remediation_requests_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(NAME_LENGTH))
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    target: Mapped[str] = mapped_column(String(TARGET_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(HASH_LENGTH))  # sha256 of action + params + target
    requester: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    state: Mapped[RequestState] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # not fully approved by then: expired
    idempotency_key: Mapped[str] = mapped_column(String(HASH_LENGTH), unique=True)
    attempt: Mapped[int] = mapped_column(default=1, server_default="1")  # bumped by a re-run
    lease_owner: Mapped[str | None] = mapped_column(String(ACTOR_LENGTH))  # the runner running it
    lease_expires_at: Mapped[datetime | None]  # still running after this: its runner died, so unknown
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    summary: Mapped[str | None] = mapped_column(Text)  # the result in one line (or the redacted error)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)  # the executor's response, redacted
    updated_at: Mapped[datetime]


class Approval(Base):
    """One person's approval, bound to the request's fingerprint and attempt at the time of the click."""

    __tablename__ = "remediation_approvals"
    __table_args__ = (
        UniqueConstraint("request_id", "approver", "fingerprint", "attempt", name="uq_remediation_approvals_once"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("remediation_requests.id", ondelete="CASCADE"))
    approver: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(HASH_LENGTH))
    attempt: Mapped[int]
    at: Mapped[datetime]


class AuditEntry(Base):
    """One line of the audit log. The database refuses UPDATE and DELETE on this table (triggers, migration
    0007); it has no foreign keys so that nothing cascades into it."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_incident", "incident_id"),
        Index("ix_audit_log_request", "request_id"),  # a run counts its request's automatic re-runs
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    incident_id: Mapped[int | None]
    request_id: Mapped[int | None]
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    event: Mapped[str] = mapped_column(String(24))
    action: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    target: Mapped[str | None] = mapped_column(String(TARGET_LENGTH))
    param_hash: Mapped[str | None] = mapped_column(String(HASH_LENGTH))
    outcome: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)  # redacted
