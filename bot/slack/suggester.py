"""Runbooks and similar incidents for an incident's first post, without ever holding the post back.

Before the outbox sends a first post it asks :meth:`Suggester.ensure`, which waits at most ``budget`` (one
second) for the search. If the search takes longer the post goes out saying the suggestions are on their way;
when they are found they are stored with the incident and an edit of the post is queued.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime

from sqlalchemy.orm import Session

from bot.db.database import Database
from bot.incidents.models import Incident
from bot.knowledge.models import IncidentDocument
from bot.knowledge.service import KnowledgeService
from bot.knowledge.suggestions import Suggestions
from bot.slack.cards import stored_suggestions
from bot.slack.models import OutboxKind
from bot.slack.notifier import enqueue_coalesced

log = logging.getLogger(__name__)

BUDGET = 1.0  # seconds a first post may wait for its suggestions


class Suggester:
    def __init__(
        self,
        database: Database,
        knowledge: KnowledgeService,
        clock: Callable[[], datetime],
        *,
        budget: float = BUDGET,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self._database = database
        self._knowledge = knowledge
        self._clock = clock
        self.budget = budget
        self.on_stored = on_stored  # e.g. wake the outbox: an edit is queued
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="suggest")
        self._lock = threading.Lock()
        self._inflight: dict[int, Future[None]] = {}

    def ensure(self, incident_id: int) -> None:
        """Find and store the incident's suggestions unless stored, waiting at most :attr:`budget` seconds."""
        with self._database.read() as session:
            if stored_suggestions(session, incident_id) is not None:
                return
        with self._lock:
            future = self._inflight.get(incident_id)
            if future is None:
                future = self._pool.submit(self._find_and_store, incident_id)
                self._inflight[incident_id] = future
        try:
            future.result(timeout=self.budget)
        except FutureTimeout:
            log.info("suggestions for incident %d take over %.1fs: posting without them", incident_id, self.budget)

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _find_and_store(self, incident_id: int) -> None:
        try:
            try:
                suggestions = self._knowledge.suggest(incident_id)
            except Exception:
                log.exception("finding suggestions for incident %d failed", incident_id)
                suggestions = Suggestions((), 0.0, (), failed=True)
            with self._database.write() as session:
                self._store(session, incident_id, suggestions.to_json())
            self.on_stored()
        except Exception:
            log.exception("storing suggestions for incident %d failed", incident_id)
        finally:
            with self._lock:
                self._inflight.pop(incident_id, None)

    def _store(self, session: Session, incident_id: int, data: dict[str, object]) -> None:
        incident = session.get(Incident, incident_id)
        if incident is None:
            return
        document = session.get(IncidentDocument, incident_id)
        if document is None:  # an incident from before search was on
            document = IncidentDocument(incident_id=incident_id, text=incident.title, updated_at=self._clock())
            session.add(document)
        document.suggestions = data
        if incident.slack_ts is not None:  # the post went out without them: edit it
            enqueue_coalesced(
                session, OutboxKind.UPDATE_INCIDENT, incident, incident.slack_channel or "", self._clock()
            )
