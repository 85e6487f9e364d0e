"""The append-only audit log of remediation: write one entry, read them back, print them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.remediation.models import ActionRequest, AuditEntry

SYSTEM_ACTOR = "incibot"  # the actor of entries no person caused (runs, results, expiry)


def record(
    session: Session,
    request: ActionRequest,
    event: str,
    actor: str,
    at: datetime,
    *,
    detail: str | None = None,
    outcome: str | None = None,
    response: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry about ``request`` (in the caller's transaction, so it commits with the change)."""
    entry = AuditEntry(
        at=at,
        incident_id=request.incident_id,
        request_id=request.id,
        actor=actor,
        event=event,
        action=request.action,
        target=request.target,
        param_hash=request.fingerprint,
        outcome=outcome,
        detail=detail,
        response=dict(response) if response is not None else None,
    )
    session.add(entry)
    return entry


def entries(session: Session, incident_id: int | None = None) -> list[AuditEntry]:
    """Every entry (of one incident), oldest first."""
    query = select(AuditEntry).order_by(AuditEntry.id)
    if incident_id is not None:
        query = query.where(AuditEntry.incident_id == incident_id)
    return list(session.scalars(query))


def as_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "incident": entry.incident_id,
        "request": entry.request_id,
        "actor": entry.actor,
        "event": entry.event,
        "action": entry.action,
        "target": entry.target,
        "param_hash": entry.param_hash,
        "outcome": entry.outcome,
        "detail": entry.detail,
        "response": entry.response,
    }


def as_line(entry: AuditEntry) -> str:
    """One entry as a line of text: when, incident, request, who, what, and the rest if any."""
    head = (
        f"{entry.at:%Y-%m-%d %H:%M:%S}Z  #{entry.incident_id}  req {entry.request_id}  "
        f"{entry.event:<9}  {entry.actor}  {entry.action} → {entry.target}  params {(entry.param_hash or '')[:12]}"
    )
    tail = [part for part in (entry.outcome and f"outcome={entry.outcome}", entry.detail) if part]
    return "  ".join([head, *tail])


def dumps(selected: Sequence[AuditEntry]) -> str:
    return json.dumps([as_json(entry) for entry in selected], indent=2, ensure_ascii=False)
