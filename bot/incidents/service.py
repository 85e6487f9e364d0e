"""The incident lifecycle: triggered → acknowledged → resolved, driven by alerts and by people.

Alert-driven changes (:meth:`IncidentService.apply_events`) are called by the processing worker inside its
transaction; people's actions (:meth:`acknowledge`, :meth:`resolve`) by the CLI and Slack. Every change
writes a timeline entry. A resolve is never inferred from an alert's absence.

It stays one module on purpose: every change to an incident, from alerts or from people, passes through this one
class, which keeps the status rules, the timeline and the correlation bookkeeping in step.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot.db.database import Database
from bot.incidents.errors import IncidentNotFound
from bot.incidents.grouping import Correlation, source_key
from bot.incidents.models import (
    SERVICE_LENGTH,
    Incident,
    IncidentAlert,
    IncidentStatus,
    TimelineEntry,
)
from bot.ingest.models import ALERTS_BY_ID, Alert
from bot.ingest.parsed import Action
from knowledge.alerts import DEFAULT_SEVERITY, AlertStatus, severity_rank
from knowledge.correlation.correlator import Decision, Kind

SYSTEM_ACTOR = "incibot"
MANUAL_SOURCE = "manual"
_PRELOAD = 100  # alerts loaded per query while applying a delivery


class DecideLater(Exception):
    """Raised by a correlation's ``decide`` when :func:`may_decide_later` says so and no decision made ahead holds:
    the event waits for the next transaction, and the decision is made before it, outside the write lock."""


_DECIDE_LATER: ContextVar[bool] = ContextVar("decide_later", default=False)


def may_decide_later() -> bool:
    """Whether the event being applied may wait (:class:`DecideLater`) rather than be decided in this transaction."""
    return _DECIDE_LATER.get()


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a person's action: whether it changed anything, and what to tell them."""

    changed: bool
    message: str


class IncidentListener(Protocol):
    """Told of every timeline entry, inside the transaction that writes it (Slack's outbox listens)."""

    def on_timeline(self, session: Session, incident: Incident, entry: TimelineEntry) -> None: ...


class IncidentService:
    def __init__(
        self,
        correlation: Correlation,
        reopen_window: timedelta,
        clock: Callable[[], datetime],
        listeners: Sequence[IncidentListener] = (),
        preparers: Sequence[Callable[[Database], int]] = (),
    ) -> None:
        """``preparers``: more work done ahead outside the write transaction, after the correlation's (the
        classifier's predictions)."""
        self.correlation = correlation
        self._reopen_window = reopen_window
        self._clock = clock
        self._listeners = list(listeners)
        self._preparers = list(preparers)

    # --- alert-driven -------------------------------------------------------------------------------

    def prepare(self, database: Database) -> int:
        """Outside any write transaction: let the correlation decide ahead for the alerts applied next (and the
        preparers do their part)."""
        return self.correlation.prepare(database) + sum(prepare(database) for prepare in self._preparers)

    def apply_events(
        self,
        session: Session,
        events: Sequence[Sequence[object]],
        received_at: datetime,
        *,
        enough: Callable[[int], bool] = lambda _applied: False,
        decide_later: bool = False,
    ) -> int:
        """Apply the occurrence changes one delivery recorded at ingest, in order; returns how many were applied.

        ``enough(applied)`` is asked after each event: when it says so, the rest is left for a later call (a
        large delivery is applied in chunks). Timeline entries are written once per incident and call (a
        500-alert group is one line), and an incident resolves by itself once no alert of it is firing.

        ``decide_later``: the caller's transaction has done some work already, so a new occurrence whose decision
        was not made ahead (or no longer holds) may stop the call there (:class:`DecideLater`), to be decided
        before the next transaction instead of in this one. An event after one applied in this call may always.
        """
        changes: dict[int, _Changes] = {}
        applied = 0
        alerts: dict[int, Alert] = {}
        owners: dict[int, Incident] = {}  # the incident each alert is linked to (kept up to date as they link)
        for index, event in enumerate(events):
            if index % _PRELOAD == 0:  # two queries per block instead of two per alert
                alerts, owners = _load_alerts(session, events[index : index + _PRELOAD])
            alert_id, action = event
            if not isinstance(alert_id, int) or not isinstance(action, str):
                raise ValueError(f"malformed event {list(event)!r}")
            alert = alerts.get(alert_id)
            if alert is None:
                raise LookupError(f"alert {alert_id} does not exist")
            if action == Action.FIRING:
                allowed = _DECIDE_LATER.set(decide_later or applied > 0)
                try:
                    incident, linked = self._on_firing(session, alert, received_at, owners.get(alert.id))
                except DecideLater:
                    break  # nothing of this event was written
                finally:
                    _DECIDE_LATER.reset(allowed)
                owners[alert.id] = incident
                if linked is not None:
                    changes.setdefault(incident.id, _Changes(incident)).linked.append(linked)
            elif action == Action.RESOLVED:
                owner = owners.get(alert.id)
                if owner is not None:  # else it resolved before it ever fired: nothing was opened
                    changes.setdefault(owner.id, _Changes(owner)).resolved.append(alert)
            elif action == Action.ACKNOWLEDGE:
                owner = owners.get(alert.id)
                if owner is not None and owner.status == IncidentStatus.TRIGGERED:
                    self._acknowledge(session, owner, alert.source, received_at)
            else:
                raise ValueError(f"unknown action {action!r}")
            applied += 1
            if enough(applied):
                break
        for change in changes.values():
            self._settle(session, change, received_at)
        return applied

    def _on_firing(
        self, session: Session, alert: Alert, at: datetime, owner: Incident | None
    ) -> tuple[Incident, _Linked | None]:
        """Link a new occurrence to its incident (reopened, joined or opened); None if already linked (to
        ``owner``)."""
        if owner is not None:
            return owner, None
        decision = self.correlation.decide(session, alert, at)
        incident = session.get(Incident, decision.incident) if decision.incident is not None else None
        opened = incident is None
        if incident is None:
            incident = self._open(session, alert, source_key(alert), at)
        elif incident.status == IncidentStatus.RESOLVED:
            self._reopen(session, incident, alert, at, decision)
        self._link(session, incident, alert, at, decision)
        self.correlation.record(session, incident, alert, at, decision)
        if opened:  # noted once the alert is linked, so listeners see it (Slack routes by its labels)
            self._note(
                session, incident, at, SYSTEM_ACTOR, "opened", f"Opened by {alert.source} alert {alert.alertname}."
            )
            if decision.merge_with is not None:
                self._note(
                    session, incident, at, SYSTEM_ACTOR, "merge_suggested", f"Suggested merge: {decision.reason}"
                )
        return incident, _Linked(alert, opened)

    def _open(self, session: Session, alert: Alert, key: str, at: datetime) -> Incident:
        incident = Incident(
            status=IncidentStatus.TRIGGERED,
            title=alert.normalized().title[:500],
            severity=alert.severity,
            service=_service(alert),
            source=alert.source,
            group_key=key,
            alert_count=0,
            opened_at=at,
            last_alert_at=at,
        )
        session.add(incident)
        session.flush()
        return incident

    def _reopen(self, session: Session, incident: Incident, alert: Alert, at: datetime, decision: Decision) -> None:
        incident.status = IncidentStatus.TRIGGERED
        incident.resolved_at = None
        incident.resolved_by = None
        incident.quiet_flagged_at = None
        self._note(
            session,
            incident,
            at,
            SYSTEM_ACTOR,
            "reopened",
            f"Reopened: {alert.alertname} fired again within {_minutes(self._reopen_window)} of the resolve."
            if decision.kind == Kind.SAME_ALERT or _holds_fingerprint(session, incident.id, alert.fingerprint)
            else f"Reopened: {alert.alertname} joined it ({decision.reason}).",
        )

    def _link(self, session: Session, incident: Incident, alert: Alert, at: datetime, decision: Decision) -> None:
        reason = decision.reason[:4000]
        session.add(
            IncidentAlert(
                incident_id=incident.id,
                alert_id=alert.id,
                linked_at=at,
                decision=decision.kind[:16],
                probability=decision.probability,
                reason=reason,
            )
        )
        incident.alert_count += 1
        incident.last_alert_at = at
        if severity_rank(alert.severity) > severity_rank(incident.severity):
            incident.severity = alert.severity
        incident.service = incident.service or _service(alert)

    def _settle(self, session: Session, change: _Changes, at: datetime) -> None:
        incident = change.incident
        added = [link.alert for link in change.linked if not link.opened]
        if added:
            self._note(session, incident, at, SYSTEM_ACTOR, "alerts_added", _describe("added", added))
        if not change.resolved:
            return  # a resolve is not an alert joining: ``last_alert_at`` stays (the correlator reads it so)
        resolved = _describe("resolved", change.resolved)
        if not incident.is_open or _any_firing(session, incident.id):
            self._note(session, incident, at, SYSTEM_ACTOR, "alerts_resolved", resolved)
            return
        _mark_resolved(incident, at, SYSTEM_ACTOR)
        every = "its alert" if incident.alert_count == 1 else f"all {incident.alert_count} alerts"
        self._note(session, incident, at, SYSTEM_ACTOR, "auto_resolved", f"Auto-resolved: {every} resolved. {resolved}")

    # --- people --------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    def open_incident(self, session: Session, alert: Alert, at: datetime) -> Incident:
        """A new incident for ``alert`` as the alert path opens one (unlinked, no timeline entry yet)."""
        return self._open(session, alert, source_key(alert), at)

    def note(self, session: Session, incident: Incident, actor: str, kind: str, text: str) -> None:
        """A timeline entry for a change made outside this class (corrections); the listeners are told."""
        self._note(session, incident, self._clock(), actor, kind, text)

    def acknowledge(self, session: Session, incident_id: int, actor: str, actor_name: str | None = None) -> Outcome:
        """Acknowledge; the first to acknowledge becomes the commander. ``actor_name`` is shown to people."""
        incident = self._get_for_update(session, incident_id)
        if incident.status == IncidentStatus.RESOLVED:
            return Outcome(False, f"Incident {incident_id} is already resolved; nothing to acknowledge.")
        if incident.status == IncidentStatus.ACKNOWLEDGED:
            return Outcome(False, f"Incident {incident_id} was already acknowledged by {incident.acknowledged_by}.")
        name = actor_name or actor
        self._acknowledge(session, incident, actor, self._clock(), name)
        return Outcome(True, f"Incident {incident_id} acknowledged by {name}.")

    def resolve(
        self, session: Session, incident_id: int, actor: str, note: str | None = None, actor_name: str | None = None
    ) -> Outcome:
        incident = self._get_for_update(session, incident_id)
        if incident.status == IncidentStatus.RESOLVED:
            return Outcome(False, f"Incident {incident_id} is already resolved (by {incident.resolved_by}).")
        now = self._clock()
        name = actor_name or actor
        _mark_resolved(incident, now, name)
        incident.resolution_note = note
        self._note(session, incident, now, actor, "resolved", f"Resolved by {name}" + (f": {note}" if note else "."))
        return Outcome(True, f"Incident {incident_id} resolved by {name}.")

    def assign(self, session: Session, incident_id: int, commander: str, actor: str, actor_name: str) -> Outcome:
        """Make ``commander`` (a display name) the incident commander."""
        incident = self._get_for_update(session, incident_id)
        if incident.commander == commander:
            return Outcome(False, f"{commander} is already the commander of incident {incident_id}.")
        incident.commander = commander
        self._note(session, incident, self._clock(), actor, "assigned", f"{actor_name} made {commander} the commander.")
        return Outcome(True, f"{commander} is now the commander of incident {incident_id}.")

    def declare(self, session: Session, title: str, actor: str, actor_name: str) -> Incident:
        """Open a manual incident (no alerts) on a person's word."""
        now = self._clock()
        incident = Incident(
            status=IncidentStatus.TRIGGERED,
            title=title[:500],
            severity=DEFAULT_SEVERITY,
            service=None,
            source=MANUAL_SOURCE,
            group_key=f"{MANUAL_SOURCE}:{uuid.uuid4().hex}",
            alert_count=0,
            opened_at=now,
            last_alert_at=now,
        )
        session.add(incident)
        session.flush()
        self._note(session, incident, now, actor, "opened", f"Declared by {actor_name}.")
        return incident

    def remind(self, session: Session, incident: Incident, now: datetime) -> None:
        """Note that an incident is still unacknowledged (Slack turns it into a thread reply)."""
        waited = int((now - incident.opened_at).total_seconds() // 60)
        self._note(
            session,
            incident,
            now,
            SYSTEM_ACTOR,
            "reminder",
            f"Still unacknowledged after {waited} min. Acknowledge it if you are on it.",
        )

    def flag_quiet(self, session: Session, incident: Incident, now: datetime, quiet_after: timedelta) -> None:
        """Flag an open incident whose source has gone quiet (never resolve it)."""
        incident.quiet_flagged_at = now
        hours = quiet_after.total_seconds() / 3600
        self._note(
            session,
            incident,
            now,
            SYSTEM_ACTOR,
            "flagged_quiet",
            f"No alert activity for {hours:g} h and still open: the source may never send a resolve. "
            "Resolve it by hand if it is over.",
        )

    def _acknowledge(
        self, session: Session, incident: Incident, actor: str, at: datetime, name: str | None = None
    ) -> None:
        name = name or actor
        incident.status = IncidentStatus.ACKNOWLEDGED
        incident.acknowledged_at = at
        incident.acknowledged_by = name
        incident.commander = incident.commander or name
        self._note(session, incident, at, actor, "acknowledged", f"Acknowledged by {name}.")

    def _note(self, session: Session, incident: Incident, at: datetime, actor: str, kind: str, text: str) -> None:
        entry = TimelineEntry(incident_id=incident.id, at=at, actor=actor[:200], kind=kind, text=text)
        session.add(entry)
        for listener in self._listeners:
            listener.on_timeline(session, incident, entry)

    @staticmethod
    def _get_for_update(session: Session, incident_id: int) -> Incident:
        incident = session.scalars(select(Incident).where(Incident.id == incident_id).with_for_update()).first()
        if incident is None:
            raise IncidentNotFound(incident_id)
        return incident


# The statements applied for every event, built once: building one per call (and its cache key) cost more than
# running it, inside the write transaction that ingestion waits for.
_OWNERS = (
    select(IncidentAlert.alert_id, Incident)
    .join(Incident, Incident.id == IncidentAlert.incident_id)
    .where(IncidentAlert.alert_id.in_(bindparam("ids", expanding=True)))
)
_HOLDS_FINGERPRINT = (
    select(IncidentAlert.alert_id)
    .join(Alert, Alert.id == IncidentAlert.alert_id)
    .where(IncidentAlert.incident_id == bindparam("incident_id"), Alert.fingerprint == bindparam("fingerprint"))
    .limit(1)
)
_ANY_FIRING = (
    select(IncidentAlert.alert_id)
    .join(Alert, Alert.id == IncidentAlert.alert_id)
    .where(IncidentAlert.incident_id == bindparam("incident_id"), Alert.status == AlertStatus.FIRING.value)
    .limit(1)
)


def _load_alerts(session: Session, events: Sequence[Sequence[object]]) -> tuple[dict[int, Alert], dict[int, Incident]]:
    """The events' alerts by id, and the incidents those already linked belong to, in two queries. (Held here: the
    session's identity map keeps no strong reference, so loading them only "into the session" let them go at
    once, and ``session.get`` queried each one again.)"""
    ids = [event[0] for event in events if event and isinstance(event[0], int)]
    alerts = {alert.id: alert for alert in session.scalars(ALERTS_BY_ID, {"ids": ids})}
    owners: dict[int, Incident] = {}
    for alert_id, incident in session.execute(_OWNERS, {"ids": ids}).tuples():
        owners.setdefault(alert_id, incident)
    return alerts, owners


def _holds_fingerprint(session: Session, incident_id: int, fingerprint: str) -> bool:
    """Whether an alert with ``fingerprint`` is linked to the incident (a storm's incident links thousands: one row
    is looked for, none are loaded)."""
    return session.scalar(_HOLDS_FINGERPRINT, {"incident_id": incident_id, "fingerprint": fingerprint}) is not None


def _mark_resolved(incident: Incident, at: datetime, by: str) -> None:
    """Resolve; a correlation decision prepared on the incident while it fired is made again (its version)."""
    incident.status = IncidentStatus.RESOLVED
    incident.resolved_at = at
    incident.resolved_by = by
    incident.correlation_version += 1


def _any_firing(session: Session, incident_id: int) -> bool:
    """Whether any alert of the incident still fires (the first one found answers; none are counted)."""
    return session.scalar(_ANY_FIRING, {"incident_id": incident_id}) is not None


def _service(alert: Alert) -> str | None:
    """The alert's service label, clipped to the column (it only names the incident to people)."""
    service = alert.normalized().service
    return service[:SERVICE_LENGTH] if service else None


@dataclass(frozen=True, slots=True)
class _Linked:
    alert: Alert
    opened: bool  # this alert opened the incident


@dataclass(slots=True)
class _Changes:
    """What one delivery did to one incident."""

    incident: Incident
    linked: list[_Linked] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)


def _describe(verb: str, alerts: list[Alert], shown: int = 5) -> str:
    titles = [alert.normalized().title.rstrip(".") for alert in alerts]
    listed = "; ".join(dict.fromkeys(titles[:shown]))
    more = f" and {len(titles) - shown} more" if len(titles) > shown else ""
    noun = "alert" if len(titles) == 1 else f"{len(titles)} alerts"
    return f"{noun.capitalize()} {verb}: {listed}{more}."


def _minutes(window: timedelta) -> str:
    return f"{int(window.total_seconds() // 60)} min"
