"""The worker's indexer: embeds new incident document revisions, stores their vectors, saves the index.

It runs in the worker process only. At start it re-queues documents embedded with another model, opens the
incident index (loading and catching up, or rebuilding; see :mod:`bot.knowledge.incident_index`) and the
runbook index. Each round embeds up to ``batch`` pending revisions outside any transaction, stores them in one
short transaction, and applies them to its index; the index is saved at most every ``save_every`` and on stop.
A crash between the database commit and the save loses nothing: the next start catches up from the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update

from bot.background import BackgroundLoop
from bot.db.database import Database
from bot.knowledge.incident_index import IncidentIndex, StoredVector, store_vectors
from bot.knowledge.models import IncidentDocument
from bot.knowledge.runbook_library import RunbookLibrary
from knowledge.embeddings import Embedder

log = logging.getLogger(__name__)

BATCH = 64


class KnowledgeIndexer(BackgroundLoop):
    """Keeps the search indexes up to date: :meth:`open` catches them up once (start-up, before the thread), the
    thread then embeds pending incident documents as they come."""

    def __init__(
        self,
        database: Database,
        embedder: Embedder,
        incidents: IncidentIndex,
        runbooks: RunbookLibrary,
        *,
        save_every: timedelta = timedelta(seconds=60),
        idle_poll: float = 0.5,
        batch: int = BATCH,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("knowledge-indexer", idle_poll)
        self._database = database
        self._embedder = embedder
        self._incidents = incidents
        self._runbooks = runbooks
        self._save_every = save_every.total_seconds()
        self._batch = batch
        self._monotonic = monotonic
        self._last_save = monotonic()

    def open(self) -> None:
        """Bring both indexes up to date with the database and the runbook folder (start-up; also the CLI)."""
        with self._database.write() as session:
            requeued = session.execute(
                update(IncidentDocument)
                .where(IncidentDocument.model.is_not(None), IncidentDocument.model != self._embedder.name)
                .values(pending=True)
            ).rowcount  # type: ignore[attr-defined]
        if requeued:
            log.warning("%d incident documents were embedded with another model: embedding them again", requeued)
        log.info("incident index: %s", self._incidents.open())
        if self._incidents.save():
            log.info("incident index saved (watermark %d)", self._incidents.watermark)
        log.info("runbooks %s: %s", self._runbooks.folder, self._runbooks.rebuild()[1])

    def stop(self) -> None:
        super().stop()
        self._incidents.save()

    def step(self) -> int:
        try:
            done = self.run_once()
            if self._monotonic() - self._last_save >= self._save_every:
                self._incidents.save()
                self._last_save = self._monotonic()
            return done
        except Exception:
            log.exception("indexing pass failed")
            return 0

    def run_once(self) -> int:
        """Embed and store one batch of pending revisions; returns how many were stored."""
        with self._database.read() as session:
            rows = session.execute(
                select(IncidentDocument.incident_id, IncidentDocument.rev, IncidentDocument.text)
                .where(IncidentDocument.pending.is_(True))
                .order_by(IncidentDocument.incident_id)
                .limit(self._batch)
            ).all()
        if not rows:
            return 0
        vectors = self._embedder.embed([row.text for row in rows])
        stored = store_vectors(
            self._database,
            self._embedder.name,
            [StoredVector(row.incident_id, row.rev, vector) for row, vector in zip(rows, vectors, strict=True)],
        )
        self._incidents.catch_up()
        return stored
