"""Turns incident timeline entries into outbox items, in the transaction that made the change.

So a change and its Slack writes commit together: nothing is posted for a rolled-back change, and no
committed change goes unannounced. Updates of the main message, "alerts joined" replies and the alerts' status
changes (:mod:`bot.slack.status_changes`) are coalesced (one pending item per incident); every other entry becomes
one thread reply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from bot.classification.picks import CATEGORY_SET
from bot.db.base import UTCDateTime
from bot.incidents.models import CategoryLabel, Incident, IncidentAlert, TimelineEntry
from bot.ingest.models import Alert
from bot.settings import Route
from bot.slack.models import IncidentTimer, OutboxItem, OutboxKind, OutboxStatus, incident_coalesce_key
from bot.slack.status_changes import FLAPPING_REPLY_EVERY, STATUS_KINDS, flapping, held_until
from knowledge.alerts import severity_rank

REMINDER = "unacked_reminder"
MERGED = "merged"  # the timeline entry of an incident merged into another: its post's last change
COALESCE_WINDOW = timedelta(seconds=2)
# Asked for every timeline entry of an incident not posted yet (inside the worker's write transaction): built once.
_POST_OF = (
    select(OutboxItem.id)
    .where(OutboxItem.incident_id == bindparam("incident_id"), OutboxItem.kind == OutboxKind.POST_INCIDENT)
    .limit(1)
)

_INSERT_COALESCED = text(
    "INSERT INTO slack_outbox (kind, incident_id, channel, payload, status, coalesce_key, attempts, not_before,"
    " created_at, ambiguous) VALUES (:kind, :incident_id, :channel, '{}', 'pending', :key, 0, :not_before,"
    " :created_at, false) ON CONFLICT (coalesce_key) DO NOTHING"
).bindparams(bindparam("not_before", type_=UTCDateTime()), bindparam("created_at", type_=UTCDateTime()))


class ChannelRouter:
    """First route that matches wins (a label of one of the incident's alerts, or its category); else the alerts
    channel."""

    def __init__(self, routes: Sequence[Route], default_channel: str) -> None:
        self._routes = list(routes)
        self.default = default_channel.lstrip("#")
        # Every incident's channel when no route leads anywhere else (nothing to read to route it).
        self.only = self.default if all(route.channel == self.default for route in self._routes) else None

    def channel_for(self, labels: Sequence[dict[str, str]], category: str | None = None) -> str:
        for route in self._routes:
            if route.on_category:
                if category == route.value:
                    return route.channel
            elif any(alert_labels.get(route.label) == route.value for alert_labels in labels):
                return route.channel
        return self.default


class SlackNotifier:
    """An :class:`~bot.incidents.service.IncidentListener` that fills the Slack outbox."""

    def __init__(
        self,
        router: ChannelRouter,
        clock: Callable[[], datetime],
        *,
        min_severity: str,
        reminder_after: timedelta,
        incident_channels: bool,
    ) -> None:
        self._router = router
        self._clock = clock
        self._min_rank = severity_rank(min_severity)
        self._reminder_after = reminder_after
        self._incident_channels = incident_channels

    def on_timeline(self, session: Session, incident: Incident, entry: TimelineEntry) -> None:
        if severity_rank(incident.severity) < self._min_rank:
            return  # stored, not posted
        if incident.merged_into is not None and entry.kind != MERGED:
            return  # its post says where it went and stays as it is
        now = self._clock()
        if entry.kind == MERGED:  # its alerts are gone: nothing is left to announce as joined
            session.execute(
                update(OutboxItem)
                .where(
                    OutboxItem.incident_id == incident.id,
                    OutboxItem.kind == OutboxKind.ALERTS_JOINED,
                    OutboxItem.status == OutboxStatus.PENDING,
                )
                .values(status=OutboxStatus.DONE, coalesce_key=None, last_error="not sent: the incident was merged")
            )
        if entry.kind == "alerts_added":
            self._point_from_other_routes(session, incident, entry, now)
        if entry.kind == "opened" or not self._posted(session, incident):
            self._enqueue_post(session, incident, now)  # the post shows the current state: no history replies
            return
        if incident.slack_ts is None and entry.kind in ("alerts_added", "opened"):
            return  # the post is still queued; it renders the alerts as they are when it is sent
        channel = incident.slack_channel or self._channel(session, incident)
        if entry.kind == "alerts_added":
            due = now + COALESCE_WINDOW
            held = held_until(session, incident.id)  # a flapping incident's refires join with its status reply
            enqueue_coalesced(session, OutboxKind.ALERTS_JOINED, incident, channel, max(due, held or due))
        elif entry.kind in STATUS_KINDS:
            wait = FLAPPING_REPLY_EVERY if flapping(session, incident.id, now) else COALESCE_WINDOW
            enqueue_coalesced(session, OutboxKind.STATUS_CHANGES, incident, channel, now + wait)
        else:
            payload = {"text": entry.text, "timeline_kind": entry.kind}
            if entry.kind == CATEGORY_SET:  # a person's category: say where it would now go, if elsewhere
                payload |= self._new_route(session, incident)
            session.add(
                OutboxItem(
                    kind=OutboxKind.THREAD_REPLY,
                    incident_id=incident.id,
                    channel=channel,
                    payload=payload,
                    not_before=now,
                    created_at=now,
                )
            )
        enqueue_coalesced(session, OutboxKind.UPDATE_INCIDENT, incident, channel, now)

    def _point_from_other_routes(
        self, session: Session, incident: Incident, entry: TimelineEntry, now: datetime
    ) -> None:
        """An alert that joined an incident posted in another route's channel leaves a one-line pointer in its own
        route's channel (one per channel and delivery), so that team sees where its alert went."""
        if self._router.only is not None:
            return  # one channel for all: no alert has a route of its own
        home = self._channel(session, incident, opening=True)  # where it was posted: its opening alerts' route
        joined = session.execute(
            select(Alert.alertname, Alert.labels, IncidentAlert.reason)
            .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
            .where(IncidentAlert.incident_id == incident.id, IncidentAlert.linked_at == entry.at)
            .order_by(Alert.id)
        )
        pointed: set[str] = set()
        for alertname, labels, reason in joined:
            own = self._router.channel_for([labels], incident.category)
            if own == home or own in pointed:
                continue
            pointed.add(own)
            payload = {
                "alertname": alertname,
                "service": labels.get("service") or labels.get("namespace"),
                "incident_channel": home,
                "reason": reason or "",
            }
            session.add(
                OutboxItem(
                    kind=OutboxKind.POINTER,
                    incident_id=incident.id,
                    channel=own,
                    payload=payload,
                    not_before=now,
                    created_at=now,
                )
            )

    def _new_route(self, session: Session, incident: Incident) -> dict[str, str]:
        """``repost_to``: the route of the incident's new category, when it is not the route it was posted to
        (its opening alerts' with the category it had then). Nothing already posted moves."""
        previous = session.scalar(select(CategoryLabel.previous).where(CategoryLabel.incident_id == incident.id))
        labels = self._labels(session, incident, opening=True)
        posted, now = self._router.channel_for(labels, previous), self._router.channel_for(labels, incident.category)
        return {"repost_to": now} if now != posted else {}

    def _posted(self, session: Session, incident: Incident) -> bool:
        return incident.slack_ts is not None or session.scalar(_POST_OF, {"incident_id": incident.id}) is not None

    def _enqueue_post(self, session: Session, incident: Incident, now: datetime) -> None:
        channel = self._channel(session, incident)
        enqueue_coalesced(session, OutboxKind.POST_INCIDENT, incident, channel, now)
        if self._incident_channels:
            enqueue_coalesced(session, OutboxKind.CREATE_CHANNEL, incident, channel, now)
        if self._reminder_after > timedelta(0) and incident.acknowledged_at is None:
            session.add(IncidentTimer(incident_id=incident.id, kind=REMINDER, due_at=now + self._reminder_after))

    def _channel(self, session: Session, incident: Incident, *, opening: bool = False) -> str:
        """The incident's route, from its first alerts (``opening``: only those it opened with) and its category."""
        if self._router.only is not None:
            return self._router.only
        return self._router.channel_for(self._labels(session, incident, opening=opening), incident.category)

    def _labels(self, session: Session, incident: Incident, *, opening: bool) -> Sequence[dict[str, str]]:
        query = select(Alert.labels).join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        query = query.where(IncidentAlert.incident_id == incident.id)
        if opening:
            query = query.where(IncidentAlert.linked_at <= incident.opened_at)
        return session.scalars(query.order_by(Alert.id).limit(50)).all()


def enqueue_coalesced(
    session: Session, kind: OutboxKind, incident: Incident, channel: str, not_before: datetime
) -> None:
    """One pending item of this kind per incident (posts and channels: one, ever)."""
    session.execute(
        _INSERT_COALESCED,
        {
            "kind": kind.value,
            "incident_id": incident.id,
            "channel": channel,
            "key": incident_coalesce_key(kind, incident.id),
            "not_before": not_before,
            "created_at": not_before,
        },
    )
