"""Reads what an incident post shows from the database (the pure builders in ``blocks`` do the rest)."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Subquery

from bot.incidents.models import Incident, IncidentAlert
from bot.ingest.models import Alert
from bot.knowledge.models import IncidentDocument
from bot.knowledge.suggestions import Suggestions
from bot.slack.alert_groups import AlertLine
from bot.slack.blocks import IncidentCard
from bot.slack.summary_facts import load_summary
from knowledge.correlation.correlator import Kind

# Alerts read to group an incident's alert lines; beyond them, the post counts alerts per name with alert_counts.
ALERTS_SCANNED = 1000


def alert_lines(session: Session, incident_id: int, *, offset: int = 0, limit: int = ALERTS_SCANNED) -> list[AlertLine]:
    """The incident's alerts in arrival order from ``offset``: what the post's grouped alert lines show."""
    alerts = session.scalars(
        select(Alert)
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident_id)
        .order_by(Alert.id)
        .offset(offset)
        .limit(limit)
    )
    return [
        AlertLine(a.alertname or a.fingerprint, a.status, a.normalized().title, a.generator_url, a.labels)
        for a in alerts
    ]


def join_reasons(session: Session, incident_id: int, *, offset: int, limit: int, shown: int = 3) -> list[str]:
    """Why the incident's alerts from ``offset`` joined it: the learned correlator's reasons, each once, the first
    few (an alert of the same source group, or the same alert again, needs no explaining)."""
    reasons = session.scalars(
        select(IncidentAlert.reason)
        .where(IncidentAlert.incident_id == incident_id, IncidentAlert.decision == Kind.LEARNED)
        .order_by(IncidentAlert.alert_id)
        .offset(offset)
        .limit(limit)
    )
    return list(dict.fromkeys(r for r in reasons if r))[:shown]


def alert_counts(
    session: Session, incident_id: int, *, offset: int = 0, limit: int | None = None
) -> dict[tuple[str, str], int]:
    """How many of the incident's alerts (in arrival order, from ``offset``, at most ``limit``) have each (name,
    status): for a post or reply whose lines show only the first :data:`ALERTS_SCANNED` of them."""
    window = _window(incident_id, offset, limit)
    name = case((Alert.alertname != "", Alert.alertname), else_=Alert.fingerprint)
    rows = session.execute(
        select(name, Alert.status, func.count())
        .join(window, window.c.alert_id == Alert.id)
        .group_by(name, Alert.status)
    )
    return {(str(alert_name), str(status)): int(count) for alert_name, status, count in rows}


def _window(incident_id: int, offset: int, limit: int | None) -> Subquery:
    """The incident's alert ids in arrival order, from ``offset``, at most ``limit``."""
    return (
        select(IncidentAlert.alert_id)
        .where(IncidentAlert.incident_id == incident_id)
        .order_by(IncidentAlert.alert_id)
        .offset(offset)
        .limit(limit)
        .subquery()
    )


def alert_id_span(session: Session, incident_id: int, *, offset: int, limit: int) -> range | None:
    """The ids from the first to the last of the incident's alerts in that window of arrival order."""
    window = _window(incident_id, offset, limit)
    first, last = session.execute(select(func.min(window.c.alert_id), func.max(window.c.alert_id))).one()
    return None if first is None else range(int(first), int(last) + 1)


def stored_suggestions(session: Session, incident_id: int) -> Suggestions | None:
    data = session.scalar(select(IncidentDocument.suggestions).where(IncidentDocument.incident_id == incident_id))
    return Suggestions.from_json(data) if data else None


def load_card(session: Session, incident: Incident, *, knowledge: bool = False) -> IncidentCard:
    """``knowledge``: search is on, so a post without suggestions says they are on their way."""
    suggestions = stored_suggestions(session, incident.id) if knowledge else None
    lines = alert_lines(session, incident.id)
    counts = alert_counts(session, incident.id) if incident.alert_count > len(lines) else None
    return IncidentCard(
        id=incident.id,
        title=incident.title,
        severity=incident.severity,
        status=str(incident.status),
        service=incident.service,
        source=incident.source,
        opened_at=incident.opened_at,
        alert_count=incident.alert_count,
        commander=incident.commander,
        alerts=tuple(lines),
        alert_counts=counts,
        incident_channel=incident.incident_channel,
        suggestions=suggestions,
        suggestions_pending=knowledge and suggestions is None,
        merged_into=incident.merged_into,
        category=incident.category,
        category_source=incident.category_source,
        category_confidence=incident.category_confidence,
        summary=load_summary(session, incident, lines, suggestions),
    )
