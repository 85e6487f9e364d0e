"""Embeds the texts of alerts waiting in the delivery queue, in a thread of its own, ahead of the worker.

In a storm the embedding model is most of the worker's cost: each new alert text is compared with its candidates'.
The worker's prepare embeds what it needs when it needs it; this loop reads the pending deliveries past the last
one it read and embeds their new alerts' texts into the shared embedder's cache first, in small batches, while the
worker does its database work. Torch computes outside the interpreter lock, so the two use a core each. Each
round's texts, once embedded, are handed to ``then``: the runtime passes the classifier's
:meth:`~bot.classification.live.LiveClassification.predict_ahead`, so that a new alert's category is predicted on
this thread too, not on the worker's (whose one thread is what a storm waits for).

The thread runs at a lower CPU priority than everything else (``nice`` +10 over its process, 19 in the service), so
that ingestion, which shares the machine, keeps the cores it needs during a storm; a worker that waits for a text
it is encoding leaves it the worker's core. It is not scheduled as idle (Linux ``SCHED_IDLE``): such a thread gets
no CPU at all while busy processes fill the cores, and when that happened while it held the interpreter lock (between
torch's operations), the worker's thread, in the same interpreter, waited for it (the storm measured both ways is in
the README). Nothing waits for this
loop: a text it has not reached is embedded by prepare, one it is encoding right now is waited for
(:meth:`~knowledge.embeddings.Embedder.embed`), and a delivery it skipped (committed after a later id was read, on
PostgreSQL) only costs prepare the time it would have taken anyway.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from sqlalchemy import select

from bot.background import BackgroundLoop
from bot.correlation.live import facts_of
from bot.db.database import Database
from bot.ingest.models import ALERTS_BY_ID, Delivery, DeliveryStatus
from bot.ingest.parsed import Action
from knowledge.correlation.correlator import TextEmbedder

log = logging.getLogger(__name__)

NICENESS = 10  # added to the thread's nice value
MAX_NICE = 19  # the lowest priority a nice value gives
DELIVERIES = 200  # pending deliveries read per round
BATCH = 4  # texts per model call: prepare waits for a text in flight at most one call (larger batches gain ~5%)
IDLE_POLL = 0.5  # seconds between looks at the queue when nothing was new (ingest also wakes it)


class EmbeddingPrefetch(BackgroundLoop):
    """Keeps the embedder's cache ahead of the processing worker (``run_once``: one read of the queue)."""

    def __init__(
        self,
        database: Database,
        embedder: TextEmbedder,
        *,
        then: Callable[[list[str]], object] | None = None,
        idle_poll: float = IDLE_POLL,
    ) -> None:
        super().__init__("embedding-prefetch", idle_poll)
        self._database = database
        self._embedder = embedder
        self._then = then  # given each round's texts once they are embedded (the classifier predicts ahead)
        self._after = 0  # the newest delivery read

    def _run(self) -> None:
        lower_thread_priority()
        super()._run()

    def run_once(self) -> int:
        """Embed the new alerts' texts of the next pending deliveries not read yet; returns how many were read."""
        with self._database.read() as session:
            deliveries = session.execute(
                select(Delivery.id, Delivery.events)
                .where(Delivery.status == DeliveryStatus.PENDING, Delivery.id > self._after)
                .order_by(Delivery.id)
                .limit(DELIVERIES)
            ).all()
            if not deliveries:
                return 0
            fired = {alert_id for _, events in deliveries for alert_id, action in events if action == Action.FIRING}
            alerts = session.scalars(ALERTS_BY_ID, {"ids": list(fired)})
            texts = list(dict.fromkeys(facts_of(alert).text for alert in alerts))  # what correlation compares
        self._after = deliveries[-1].id
        for start in range(0, len(texts), BATCH):
            if self.stopping:
                return len(deliveries)
            self._embedder.embed(texts[start : start + BATCH])
        if self._then is not None and texts:
            self._then(texts)
        return len(deliveries)


def lower_thread_priority() -> None:
    """Nice the calling thread alone by :data:`NICENESS` (Linux: a thread id is a process id there), at most to 19."""
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, thread) + NICENESS))
    except (AttributeError, OSError):  # no per-thread priority here: the thread runs at the process's
        log.debug("embedding prefetch runs at the process's priority")
