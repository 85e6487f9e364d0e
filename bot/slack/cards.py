"""Reads what an incident post shows from the database (the pure builders in ``blocks`` do the rest)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.incidents.models import Incident, IncidentAlert
from bot.ingest.models import Alert
from bot.slack.blocks import ALERTS_SHOWN, AlertLine, IncidentCard


def alert_lines(session: Session, incident_id: int, *, offset: int = 0, limit: int = ALERTS_SHOWN) -> list[AlertLine]:
    alerts = session.scalars(
        select(Alert)
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident_id)
        .order_by(Alert.id)
        .offset(offset)
        .limit(limit)
    )
    return [AlertLine(a.alertname or a.fingerprint, a.status, a.normalized().title, a.generator_url) for a in alerts]


def load_card(session: Session, incident: Incident) -> IncidentCard:
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
        alerts=tuple(alert_lines(session, incident.id)),
        incident_channel=incident.incident_channel,
    )
