"""Periodic jobs as plain functions of a session and ``now`` (tests call them with a fixed clock)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.incidents.models import OPEN_STATUSES, Incident, IncidentAlert, IncidentStatus
from bot.incidents.service import IncidentService
from bot.ingest.models import Alert, Delivery, DeliveryStatus
from bot.slack.models import IncidentTimer

log = logging.getLogger(__name__)


def prune_deliveries(session: Session, now: datetime, retention: timedelta) -> int:
    """Delete processed raw deliveries older than ``retention``; alerts and incidents are kept."""
    result = session.execute(
        delete(Delivery).where(
            Delivery.received_at < now - retention,
            Delivery.status == DeliveryStatus.DONE,
        )
    )
    pruned = int(result.rowcount)  # type: ignore[attr-defined]
    if pruned:
        log.info("pruned %d deliveries older than %s", pruned, now - retention)
    return pruned


def flag_quiet_incidents(
    session: Session, incidents: IncidentService, now: datetime, quiet_after: timedelta
) -> list[int]:
    """Flag open incidents whose alerts no delivery has mentioned for ``quiet_after``.

    Some sources never send a resolve; such incidents would stay open for ever. They are flagged once (a
    timeline entry) for a person to look at, never resolved automatically.
    """
    cutoff = now - quiet_after
    heard_recently = (
        select(IncidentAlert.incident_id)
        .join(Alert, Alert.id == IncidentAlert.alert_id)
        .where(IncidentAlert.incident_id == Incident.id, Alert.last_seen_at >= cutoff)
        .exists()
    )
    candidates = session.scalars(
        select(Incident).where(
            Incident.status.in_(OPEN_STATUSES),
            Incident.quiet_flagged_at.is_(None),
            Incident.last_alert_at < cutoff,
            ~heard_recently,
        )
    ).all()
    for incident in candidates:
        incidents.flag_quiet(session, incident, now, quiet_after)
    return [incident.id for incident in candidates]


def fire_reminders(session: Session, incidents: IncidentService, now: datetime) -> list[int]:
    """Fire due reminder timers once each; only incidents still unacknowledged get a reminder."""
    due = session.scalars(
        select(IncidentTimer)
        .where(IncidentTimer.fired_at.is_(None), IncidentTimer.due_at <= now)
        .order_by(IncidentTimer.due_at)
        .with_for_update(skip_locked=True)
    ).all()
    reminded = []
    for timer in due:
        timer.fired_at = now
        incident = session.get(Incident, timer.incident_id)
        if incident is not None and incident.status == IncidentStatus.TRIGGERED:
            incidents.remind(session, incident, now)
            reminded.append(incident.id)
    return reminded
