"""What the classifier reads of an incident: its alerts' canonical texts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.incidents.models import IncidentAlert
from bot.ingest.models import Alert
from knowledge.text import alert_text

ALERTS_READ = 200  # the first alerts of an incident, in arrival order, are what it is about


def incident_texts(session: Session, incident_id: int) -> list[str]:
    """The distinct canonical texts of the incident's first :data:`ALERTS_READ` alerts, in arrival order."""
    alerts = session.scalars(
        select(Alert)
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident_id)
        .order_by(Alert.id)
        .limit(ALERTS_READ)
    )
    return list(dict.fromkeys(alert_text(alert.normalized()) for alert in alerts))
