"""What the classifier reads of an incident: its alerts' canonical texts."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot.incidents.models import IncidentAlert
from bot.ingest.models import Alert
from knowledge.classify.inputs import MAX_ALERTS, incident_text
from knowledge.text import alert_text

ALERTS_READ = 200  # the first alerts of an incident, in arrival order, are what it is about
_FIRST_ALERTS = (  # read for every incident the worker classifies (each round): built once
    select(Alert)
    .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
    .where(IncidentAlert.incident_id == bindparam("incident_id"))
    .order_by(Alert.id)
    .limit(ALERTS_READ)
)


def incident_texts(session: Session, incident_id: int, distinct: int = ALERTS_READ) -> list[str]:
    """The distinct canonical texts of the incident's first :data:`ALERTS_READ` alerts, in arrival order; the
    first ``distinct`` of them at most (the alerts after those are not read)."""
    alerts = session.scalars(_FIRST_ALERTS, {"incident_id": incident_id}, execution_options={"yield_per": 2 * distinct})
    texts: dict[str, None] = {}
    for alert in alerts:
        texts[alert_text(alert.normalized())] = None
        if len(texts) >= distinct:
            alerts.close()
            break
    return list(texts)


def classifier_input(session: Session, incident_id: int) -> str:
    """What the classifier reads of the incident: its first :data:`MAX_ALERTS` distinct alert texts."""
    return incident_text(incident_texts(session, incident_id, MAX_ALERTS))
