"""Read-side queries and the JSON shapes of incidents (CLI ``--json`` today, Slack later)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.incidents.errors import IncidentNotFound
from bot.incidents.models import OPEN_STATUSES, Incident, IncidentAlert, IncidentStatus
from bot.remediation.models import AuditEntry

STATUS_FILTERS = ("all", "open", "triggered", "acknowledged", "resolved")


def list_incidents(session: Session, status: str = "all", limit: int | None = None) -> list[Incident]:
    """Incidents, newest first, filtered by ``status`` (one of :data:`STATUS_FILTERS`)."""
    query = select(Incident).order_by(Incident.id.desc())
    if status == "open":
        query = query.where(Incident.status.in_(OPEN_STATUSES))
    elif status != "all":
        query = query.where(Incident.status == IncidentStatus(status))
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def get_incident(session: Session, incident_id: int) -> Incident:
    """One incident with its alerts and timeline loaded."""
    incident = session.scalars(
        select(Incident)
        .where(Incident.id == incident_id)
        .options(selectinload(Incident.alerts), selectinload(Incident.timeline))
    ).first()
    if incident is None:
        raise IncidentNotFound(incident_id)
    return incident


def links(session: Session, incident_id: int) -> dict[int, IncidentAlert]:
    """How each alert of the incident joined it (the correlator's decision, or a person's correction), by alert id."""
    found = session.scalars(select(IncidentAlert).where(IncidentAlert.incident_id == incident_id))
    return {link.alert_id: link for link in found}


def summary(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "status": str(incident.status),
        "title": incident.title,
        "severity": incident.severity,
        "service": incident.service,
        "source": incident.source,
        "alert_count": incident.alert_count,
        "opened_at": _iso(incident.opened_at),
        "acknowledged_at": _iso(incident.acknowledged_at),
        "resolved_at": _iso(incident.resolved_at),
        "merged_into": incident.merged_into,
        "category": incident.category,  # None: unclassified
    }


def audit_of(session: Session, incident_id: int) -> list[AuditEntry]:
    """The remediation audit entries of the incident (requests, approvals, runs, results), oldest first."""
    return list(
        session.scalars(select(AuditEntry).where(AuditEntry.incident_id == incident_id).order_by(AuditEntry.id))
    )


def detail(
    incident: Incident, joins: Mapping[int, IncidentAlert] | None = None, audit: Sequence[AuditEntry] = ()
) -> dict[str, Any]:
    """``joins``: :func:`links`, to show why each alert joined; ``audit``: :func:`audit_of`, shown in the timeline
    (kind ``remediation.<event>``) beside the incident's own entries, by time."""
    joins = joins or {}
    return {
        **summary(incident),
        "acknowledged_by": incident.acknowledged_by,
        "resolved_by": incident.resolved_by,
        "resolution_note": incident.resolution_note,
        "commander": incident.commander,
        "quiet_flagged_at": _iso(incident.quiet_flagged_at),
        "category_source": incident.category_source,  # "model" or "person"
        "category_confidence": incident.category_confidence,
        "category_model": incident.category_model,
        "alerts": [
            {
                "id": alert.id,
                "alertname": alert.alertname,
                "status": alert.status,
                "severity": alert.severity,
                "fingerprint": alert.fingerprint,
                "labels": alert.labels,
                "annotations": alert.annotations,
                "starts_at": _iso(alert.starts_at),
                "ends_at": _iso(alert.ends_at),
                "generator_url": alert.generator_url,
                **_join(joins.get(alert.id)),
            }
            for alert in incident.alerts
        ],
        "timeline": sorted(
            [
                *(
                    {"at": _iso(entry.at), "actor": entry.actor, "kind": entry.kind, "text": entry.text}
                    for entry in incident.timeline
                ),
                *(_audit_entry(entry) for entry in audit),
            ],
            key=lambda entry: str(entry["at"]),
        ),
    }


def _audit_entry(entry: AuditEntry) -> dict[str, Any]:
    """``remediation #3 restart on checkout: approved`` with the outcome and detail, when there are any."""
    text = f"remediation #{entry.request_id} {entry.action} on {entry.target}: {entry.event}"
    text += f" ({entry.outcome})" if entry.outcome and entry.outcome != entry.event else ""
    text += f" — {entry.detail}" if entry.detail else ""
    return {"at": _iso(entry.at), "actor": entry.actor, "kind": f"remediation.{entry.event}", "text": text}


FACT_KEYS = ("status", "merged_into", "severity", "category", "service", "source", "alert_count", "commander",
             "opened_at", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
             "resolution_note")  # fmt: skip


def facts(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The set fields of an incident's :func:`detail`, as (label, value) lines for people."""
    shown = {
        **data,
        "merged_into": f"#{data['merged_into']}" if data.get("merged_into") else None,
        "category": _category(data),
    }
    return [(key.replace("_", " ").capitalize(), str(shown[key])) for key in FACT_KEYS if shown.get(key) is not None]


def _category(data: dict[str, Any]) -> str:
    category, source = data.get("category"), data.get("category_source")
    if source == "person":
        return f"{category} (set by a person)"
    confidence = data.get("category_confidence")
    by = f"model {data.get('category_model')}, confidence {confidence:.2f}" if confidence is not None else ""
    return f"{category or 'unclassified'} ({by})" if by else (category or "unclassified")


def _join(link: IncidentAlert | None) -> dict[str, Any]:
    if link is None:
        return {}
    return {
        "decision": link.decision,
        "probability": link.probability,
        "reason": link.reason,
        "shadow_reason": link.shadow_reason,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
