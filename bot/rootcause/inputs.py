"""What the ranker reads of an incident: its alerts with when it first saw each, the changes of its components
around its start, and the causes people confirmed on similar resolved incidents (the knowledge library finds them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.changes.queries import changes_near
from bot.incidents.models import Incident, IncidentAlert, IncidentStatus
from bot.ingest.models import Alert
from bot.knowledge.service import KnowledgeService
from bot.rootcause.models import ConfirmedCause
from knowledge.correlation.topology import Topology
from knowledge.rootcause import model
from knowledge.rootcause.subjects import subject_of

ALERTS_READ = 2000  # distinct alerts (by fingerprint) read per incident, the first seen first
CHANGES_BEFORE = timedelta(hours=2)  # changes this long before an incident opened may have caused it
SIMILAR_READ = 10  # similar incidents looked at for confirmed causes


def incident_alerts(session: Session, incident_id: int, limit: int = ALERTS_READ) -> list[model.IncidentAlert]:
    """The incident's alerts, one per fingerprint, with when it first linked one of them: first seen first."""
    first = (
        select(Alert.fingerprint, func.min(IncidentAlert.linked_at).label("seen"), func.min(Alert.id).label("alert"))
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident_id)
        .group_by(Alert.fingerprint)
        .order_by(func.min(IncidentAlert.linked_at), func.min(Alert.id))
        .limit(limit)
        .subquery()
    )
    rows = session.execute(
        select(Alert.fingerprint, Alert.labels, Alert.annotations, first.c.seen)
        .join(first, first.c.alert == Alert.id)
        .order_by(first.c.seen, Alert.id)
    )
    return [
        model.IncidentAlert(fingerprint, dict(labels or {}), seen, dict(annotations or {}))
        for fingerprint, labels, annotations, seen in rows
    ]


def component_names(alerts: Iterable[model.IncidentAlert], topology: Topology | None) -> list[str]:
    """The services and nodes the alerts are about, named as the ranker names candidates (and changes name
    services), plus their ``service`` labels; in order of first appearance."""
    names: dict[str, None] = {}
    for alert in alerts:
        subject = subject_of(alert.labels, topology)
        if subject is not None:
            names[subject.name] = None
        if alert.labels.get("service"):
            names[alert.labels["service"]] = None
    return list(names)


def incident_changes(
    session: Session, incident: Incident, names: Sequence[str], now: datetime
) -> list[model.ChangeEvent]:
    """Changes of the incident's components from :data:`CHANGES_BEFORE` before it opened until now."""
    return changes_near(session, names, incident.opened_at - CHANGES_BEFORE, now)


def past_causes(knowledge: KnowledgeService | None, incident_id: int) -> list[model.PastCause]:
    """Causes people confirmed on resolved incidents similar to this one (none without search)."""
    if knowledge is None:
        return []
    similar = {s.id: s.score for s in knowledge.similar_to(incident_id, limit=SIMILAR_READ) if s.status == "resolved"}
    if not similar:
        return []
    with knowledge.database.read() as session:
        rows = session.execute(
            select(ConfirmedCause.incident_id, ConfirmedCause.name, Incident.resolved_at, ConfirmedCause.at)
            .join(Incident, Incident.id == ConfirmedCause.incident_id)
            .where(ConfirmedCause.incident_id.in_(similar), Incident.status == IncidentStatus.RESOLVED)
        ).all()
    return [
        model.PastCause(name, similar[past_id], resolved_at or confirmed_at, f"#{past_id}")
        for past_id, name, resolved_at, confirmed_at in sorted(rows, key=lambda row: -similar[row[0]])
    ]
