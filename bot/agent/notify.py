""" "Notify me when resolved": when an incident resolves, each subscriber gets a DM, queued in the outbox in the
resolving transaction (like every other Slack write of an incident's change)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.agent.answers import when
from bot.agent.models import AgentSubscription
from bot.incidents.models import Incident, TimelineEntry
from bot.slack import mrkdwn
from bot.slack.models import OutboxItem, OutboxKind

RESOLVED_KINDS = frozenset({"resolved", "auto_resolved"})


class ResolvedNotifier:
    """An :class:`~bot.incidents.service.IncidentListener`: a resolve queues one DM per subscriber, once."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    def on_timeline(self, session: Session, incident: Incident, entry: TimelineEntry) -> None:
        if entry.kind not in RESOLVED_KINDS:
            return
        now = self._clock()
        waiting = session.scalars(
            select(AgentSubscription).where(
                AgentSubscription.incident_id == incident.id, AgentSubscription.notified_at.is_(None)
            )
        ).all()
        for subscription in waiting:
            subscription.notified_at = now
            session.add(
                OutboxItem(
                    kind=OutboxKind.AGENT_DM,
                    incident_id=incident.id,
                    channel=subscription.dm_channel,
                    payload={"user": subscription.user_id},
                    not_before=now,
                    created_at=now,
                )
            )


def resolved_text(incident: Incident) -> str:
    """The DM: what an end user may see of the incident (its title and service), and when it resolved."""
    service = f" ({mrkdwn.escape(incident.service, 100, one_line=True)})" if incident.service else ""
    resolved = f", {when(incident.resolved_at)}" if incident.resolved_at else ""
    title = mrkdwn.escape(incident.title, 200, one_line=True)
    return f":white_check_mark: Resolved{resolved}: #{incident.id} {title}{service}. Thanks for your patience."
