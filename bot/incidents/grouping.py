"""Which incident a new alert occurrence joins: the interface the lifecycle code calls, and the source's rule.

A :class:`Correlation` sees the alert, reads its candidates and the clock, and returns a
:class:`~knowledge.correlation.correlator.Decision` (join incident N, or open one) with the reason people see;
``record`` keeps its own state once the lifecycle has linked the alert. :class:`SourceGrouping` groups alerts
exactly as their source did; the learned correlator is in :mod:`bot.correlation.live`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.database import Database
from bot.incidents.models import GROUP_KEY_LENGTH, OPEN_STATUSES, Incident, IncidentAlert
from bot.ingest.keys import bounded_key
from bot.ingest.models import Alert
from knowledge.correlation.correlator import Decision, Kind

# Sources whose keys start a fresh incident after a resolve, whatever the reopen window says.
FRESH_AFTER_RESOLVE = frozenset({"pagerduty"})
SOURCE_GROUP = "source_group"


class Correlation(Protocol):
    def prepare(self, database: Database) -> int:
        """Decide ahead, outside any write transaction, for the alerts the worker will apply next."""
        ...

    def decide(self, session: Session, alert: Alert, at: datetime) -> Decision:
        """Which incident ``alert`` (a new occurrence, not yet linked) joins; ``incident=None`` opens one."""
        ...

    def record(self, session: Session, incident: Incident, alert: Alert, at: datetime, decision: Decision) -> None:
        """Called once ``alert`` is linked to ``incident`` as decided."""
        ...


def source_key(alert: Alert) -> str:
    """The incident key of the source's group (stored, bounded, on the incident)."""
    return bounded_key(f"{alert.source}:{alert.group_key}", GROUP_KEY_LENGTH)


class SourceGrouping:
    """Groups alerts exactly as their source grouped them: Alertmanager/Grafana ``groupKey``, PagerDuty routing key
    + ``dedup_key``, the generic ``group_key`` (else the fingerprint); a re-fire within the reopen window reopens."""

    def __init__(self, reopen_window: timedelta) -> None:
        self.reopen_window = reopen_window

    def prepare(self, database: Database) -> int:
        return 0  # a key lookup needs no preparation

    def decide(self, session: Session, alert: Alert, at: datetime) -> Decision:
        previous = self._previous_incident(session, alert, at)
        if previous is not None:
            return Decision(Kind.SAME_ALERT, previous.id, None, f"the same alert ({alert.alertname}) fired again")
        incident = session.scalars(
            select(Incident)
            .where(Incident.group_key == source_key(alert), Incident.status.in_(OPEN_STATUSES))
            .order_by(Incident.id.desc())
            .limit(1)
        ).first()
        if incident is None:
            return Decision(Kind.NEW, None, None, f"new incident: a new {alert.source} group")
        return Decision(SOURCE_GROUP, incident.id, None, f"the same {alert.source} group")

    def record(self, session: Session, incident: Incident, alert: Alert, at: datetime, decision: Decision) -> None:
        return None

    def _previous_incident(self, session: Session, alert: Alert, at: datetime) -> Incident | None:
        """The incident of this fingerprint's previous occurrence, if the new one belongs with it."""
        if alert.source in FRESH_AFTER_RESOLVE:
            return None
        incident = session.scalars(
            select(Incident)
            .join(IncidentAlert, IncidentAlert.incident_id == Incident.id)
            .join(Alert, Alert.id == IncidentAlert.alert_id)
            .where(Alert.source == alert.source, Alert.fingerprint == alert.fingerprint, Alert.id < alert.id)
            .order_by(Alert.id.desc())
            .limit(1)
        ).first()
        if incident is None or incident.is_open:
            return incident
        assert incident.resolved_at is not None
        return incident if at - incident.resolved_at <= self.reopen_window else None
