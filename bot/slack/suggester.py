"""Runbooks and similar incidents for an incident's first post, found when the incident opens, never holding
the post back for long.

The suggester works from a queue the database already holds: incidents whose first post was queued in the last
hour and that have no stored suggestions. It finds and stores them (a failed search is stored as failed, which the
post says plainly) and makes the waiting post due at once. The outbox sends a first post when its
suggestions are stored or ``budget`` (one second) after the incident opened, whichever is first; suggestions
found later are stored and arrive as an edit of the post.

Only the next :data:`AHEAD` first posts of each channel are searched for before they are sent: a channel takes one
post a second, so in a storm a post further back in the queue cannot go sooner, and searching for it at once
(embedding its alert's lines, tens of milliseconds) takes the CPU from applying the storm's alerts. Its turn comes,
and its suggestions are found before it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.background import BackgroundLoop
from bot.db.database import Database
from bot.incidents.models import Incident
from bot.knowledge.models import IncidentDocument
from bot.knowledge.service import KnowledgeService
from bot.knowledge.suggestions import Suggestions
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus
from bot.slack.notifier import enqueue_coalesced

log = logging.getLogger(__name__)

BUDGET = 1.0  # seconds a first post may wait for its suggestions
BATCH = 20
AHEAD = 3  # a channel's next first posts whose suggestions are found before their turn
QUEUE_READ = 500  # queued first posts read per look (a storm's queue, oldest first)
MAX_AGE = timedelta(hours=1)  # suggestions for an older post are not worth an edit (nor a search at start-up)


class Suggester(BackgroundLoop):
    def __init__(
        self,
        database: Database,
        knowledge: KnowledgeService,
        clock: Callable[[], datetime],
        *,
        budget: float = BUDGET,
        idle_poll: float = 0.1,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__("slack-suggest", idle_poll)
        self._database = database
        self._knowledge = knowledge
        self._clock = clock
        self.budget = budget
        self.on_stored = on_stored  # e.g. wake the outbox: a post became due, or an edit is queued

    def run_once(self) -> int:
        """Find and store suggestions for the incidents waiting for them; returns how many were stored."""
        stored = 0
        for incident_id in self._waiting():
            if self.stopping:
                break
            try:
                suggestions = self._knowledge.suggest(incident_id)
            except Exception:
                log.exception("finding suggestions for incident %d failed", incident_id)
                suggestions = Suggestions((), 0.0, (), failed=True)
            with self._database.write() as session:
                self._store(session, incident_id, suggestions.to_json())
            stored += 1
            self.on_stored()
        return stored

    def _waiting(self) -> list[int]:
        """Incidents whose first post was queued lately and whose suggestions are not stored: posts among the next
        :data:`AHEAD` of their channel first, then posts that went without them, oldest first."""
        since = self._clock() - MAX_AGE
        with self._database.read() as session:
            queued = session.execute(
                select(OutboxItem.incident_id, OutboxItem.channel, IncidentDocument.suggestions.is_(None))
                .outerjoin(IncidentDocument, IncidentDocument.incident_id == OutboxItem.incident_id)
                .where(
                    OutboxItem.kind == OutboxKind.POST_INCIDENT,
                    OutboxItem.status == OutboxStatus.PENDING,
                    OutboxItem.created_at >= since,
                )
                .order_by(OutboxItem.id)
                .limit(QUEUE_READ)
            ).tuples()
            turns: Counter[str] = Counter()
            waiting = []
            for incident_id, channel, missing in queued:
                turns[channel] += 1
                if missing and turns[channel] <= AHEAD and incident_id is not None:
                    waiting.append(incident_id)
            went_without = session.scalars(
                select(OutboxItem.incident_id)
                .outerjoin(IncidentDocument, IncidentDocument.incident_id == OutboxItem.incident_id)
                .where(
                    OutboxItem.kind == OutboxKind.POST_INCIDENT,
                    OutboxItem.status == OutboxStatus.DONE,
                    OutboxItem.created_at >= since,
                    IncidentDocument.suggestions.is_(None),
                )
                .order_by(OutboxItem.id)
                .limit(BATCH)
            )
            return [*waiting[:BATCH], *went_without][:BATCH]

    def _store(self, session: Session, incident_id: int, data: dict[str, object]) -> None:
        incident = session.get(Incident, incident_id)
        if incident is None:
            return
        now = self._clock()
        document = session.get(IncidentDocument, incident_id)
        if document is None:  # an incident from before search was on
            document = IncidentDocument(incident_id=incident_id, text=incident.title, updated_at=now)
            session.add(document)
        document.suggestions = data
        session.execute(  # the post waiting for them may go now
            update(OutboxItem)
            .where(
                OutboxItem.incident_id == incident_id,
                OutboxItem.kind == OutboxKind.POST_INCIDENT,
                OutboxItem.status == OutboxStatus.PENDING,
                OutboxItem.not_before > now,
                OutboxItem.attempts == 0,
            )
            .values(not_before=now)
        )
        if incident.slack_ts is not None:  # the post went out without them: edit it
            enqueue_coalesced(session, OutboxKind.UPDATE_INCIDENT, incident, incident.slack_channel or "", now)
