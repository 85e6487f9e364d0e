"""The processing worker: applies stored deliveries to incidents, after the sender got its 202.

A claim is a row lock inside the processing transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite
has one writer at a time), so a crash or a kill rolls the claim back with the work: every delivery is
processed exactly once, whenever the worker next runs. Deliveries of one source group are applied in
arrival order: a group whose earlier delivery is held by another worker, or is waiting for a retry, is
left for later. Each delivery runs in a savepoint; one that keeps failing ends ``failed`` after
``max_attempts`` and waits for ``incibot deliveries retry``.

A large delivery is applied in chunks (``chunk_events`` events, and no longer than the transaction's budget plus
``SQLITE_CHUNK_ROOM`` on SQLite, ``CHUNK_BUDGET`` elsewhere), each committed together with the delivery's
``events_applied``: locks are yielded between chunks, a crash resumes after the last committed chunk, and the
delivery stays ``pending`` (so its group's later deliveries wait) until its last chunk is applied. Transactions
alternate between taking the chunk first and taking newer small deliveries first, so that neither starves the other.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, text
from sqlalchemy.orm import Session, defer

from bot.background import BackgroundLoop
from bot.db.database import Database, is_transient
from bot.incidents.service import IncidentService
from bot.ingest.models import Delivery, DeliveryStatus
from bot.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(minutes=5)
BATCH = 100
SQLITE_BATCH = 32
SQLITE_HOLD_BUDGET = 0.012  # seconds of work per SQLite write transaction during a storm (each blocks ingestion)
SQLITE_CALM_BUDGET = 0.05  # ... otherwise (fewer, larger transactions: each round's preparation is paid less often)
SQLITE_CHUNK_ROOM = 0.038  # ... and a chunk of a large delivery in progress this much longer
CHUNK_BUDGET = 0.5  # elsewhere, seconds per chunk (its incident rows stay locked, e.g. to an acknowledge)
CHUNK_EVENTS = 500  # events of one delivery applied per transaction at most
SMALL_DELIVERY = 100  # alerts in a delivery whose events are read with its batch's (a larger one's when applied)
CHUNK_YIELD_FACTOR = 1  # on SQLite, after a chunk, leave the lock free as long as the chunk held it
STORM_ARRIVALS_PER_SECOND = 100  # above this, on SQLite, processing yields the write lock to ingestion
STORM_YIELD_FACTOR = 4  # ... holding it at most a fifth of the time
STORM_CALM_AFTER = 0.5  # seconds below that rate before a storm counts as over

# Run in every transaction (inside the write lock): built once (building a statement costs more than running these).
_OLDEST_PENDING = (  # per group, its oldest pending delivery up to the batch's last
    select(Delivery.order_key, func.min(Delivery.id))
    .with_hint(Delivery, "INDEXED BY ix_deliveries_queue", "sqlite")
    .where(
        Delivery.status == DeliveryStatus.PENDING,
        Delivery.id <= bindparam("last"),
        Delivery.order_key.in_(bindparam("keys", expanding=True)),
    )
    .group_by(Delivery.order_key)
)
_EVENTS_OF = select(Delivery.id, Delivery.events).where(Delivery.id.in_(bindparam("ids", expanding=True)))


class ProcessingWorker(BackgroundLoop):
    def __init__(
        self,
        database: Database,
        incidents: IncidentService,
        metrics: Metrics,
        clock: Callable[[], datetime],
        *,
        max_attempts: int = 5,
        batch_size: int | None = None,
        chunk_events: int = CHUNK_EVENTS,
        calm_budget: float = SQLITE_CALM_BUDGET,
        idle_poll: float = 1.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._incidents = incidents
        self._metrics = metrics
        self._clock = clock
        self._max_attempts = max_attempts
        # Short write transactions on SQLite (each holds the only write lock), larger ones elsewhere.
        self._batch_size = batch_size or (SQLITE_BATCH if database.is_sqlite else BATCH)
        self._due = (  # the first due pending deliveries, claimed (bound: now)
            select(Delivery)
            .where(
                Delivery.status == DeliveryStatus.PENDING,
                or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= bindparam("now")),
            )
            .order_by(Delivery.id)
            .limit(self._batch_size)
            .with_for_update(skip_locked=True)
            # A large delivery's body and events are megabytes: never read the body, and parse its events once.
            .options(defer(Delivery.body), defer(Delivery.events))
        )
        self._chunk_events = chunk_events
        self._calm_budget = calm_budget  # on SQLite, seconds a transaction takes deliveries on outside storms
        self._timer = timer
        super().__init__("processing-worker", idle_poll)
        self._held = 0.0  # seconds the last batch held the write lock
        self.held_total = 0.0  # seconds all batches held it (benchmarks: the lock's share of a storm)
        self._chunked = False  # the last batch stopped a delivery between two chunks
        self._storm = True  # deliveries arrive faster than STORM_ARRIVALS_PER_SECOND (until measured: ingestion first)
        self._chunk_first = False  # whether this batch takes deliveries in progress before the others
        self._newest = 0  # the newest delivery id seen, and when: the arrival rate tells a storm
        self._events: dict[int, Sequence[Any]] = {}  # parsed events of claimed deliveries (they never change)
        self._checked = timer()
        self._resume_at = 0.0  # on SQLite, when the next transaction may take the write lock (see step)

    def step(self) -> int:
        try:
            processed = self.run_once()
        except Exception as exc:
            if is_transient(exc):
                log.warning("processing paused, database unavailable: %s", str(exc).splitlines()[0])
            else:
                log.exception("processing batch failed")
            return 0
        if processed and self._database.is_sqlite:
            # SQLite has one writer at a time and no queue for its lock. While deliveries pour in, or between
            # the chunks of a large one, leave the lock free: accepting alerts comes first, applying can catch up.
            # The next round's prepare (outside the lock) counts towards that time; the rest is waited out before
            # its transaction.
            self._storm = self._storming()
            if self._storm:
                self._resume_at = self._timer() + self._held * STORM_YIELD_FACTOR
            elif self._chunked:
                self._resume_at = self._timer() + self._held * CHUNK_YIELD_FACTOR
        return processed

    def _storming(self) -> bool:
        """Whether deliveries arrive faster than :data:`STORM_ARRIVALS_PER_SECOND`. Until a first rate is measured it
        is assumed (a worker starting beside a busy ingest must not take long transactions while it finds out). A
        storm starts at the first look that sees it, and ends only after :data:`STORM_CALM_AFTER` seconds below the
        rate: between two rounds (tens of milliseconds) ingestion may have committed nothing, because this worker
        held the lock or because its writer commits webhooks in groups."""
        latest, now = self._newest_delivery(), self._timer()
        if self._newest == 0:  # the first look (or nothing stored yet): a baseline, no rate
            self._newest, self._checked = latest, now
            return self._storm
        rate = (latest - self._newest) / max(now - self._checked, 1e-3)
        if self._storm and rate <= STORM_ARRIVALS_PER_SECOND and now - self._checked < STORM_CALM_AFTER:
            return True  # too soon to tell: measured again over a longer time at the next look
        self._newest, self._checked = latest, now
        return rate > STORM_ARRIVALS_PER_SECOND

    def run_once(self) -> int:
        """Claim and process one batch; returns how much was done: deliveries finished (done or failed) and
        chunks applied of deliveries that go on."""
        self._incidents.prepare(self._database)  # model inference happens here, never inside the write lock
        if (wait := self._resume_at - self._timer()) > 0:
            self.pause(wait)
        now = self._clock()
        with self._database.write() as session:
            session.connection()  # BEGIN: on SQLite this waits for the write lock
            locked = self._timer()
            batch = self._claim(session, now)
            progress = 0
            blocked: set[str] = set()
            self._chunked = False
            self._chunk_first = not self._chunk_first
            for delivery in _in_progress_placed(batch, first=self._chunk_first):
                if delivery.order_key in blocked:
                    continue
                if self._database.is_sqlite and progress and self._timer() - locked > self._budget(delivery):
                    # Left pending for the next transaction (a claim is only a row lock), with its group. A large
                    # delivery in progress, when last in the batch, may still get its chunk.
                    blocked.add(delivery.order_key)
                    continue
                before = delivery.events_applied
                if self._process(session, delivery, now, locked, decide_later=progress > 0):
                    if delivery.status == DeliveryStatus.PENDING:  # more chunks to come: its group waits
                        blocked.add(delivery.order_key)
                        if delivery.events_applied == before:
                            continue  # its next event is decided first (outside this transaction)
                        self._chunked = True
                    progress += 1
                else:
                    blocked.add(delivery.order_key)
                    progress += delivery.status == DeliveryStatus.FAILED
        self._held = self._timer() - locked
        self.held_total += self._held
        return progress

    def _newest_delivery(self) -> int:
        with self._database.read() as session:
            return session.scalar(select(func.max(Delivery.id))) or 0

    def _claim(self, session: Session, now: datetime) -> list[Delivery]:
        candidates = list(session.scalars(self._due, {"now": now}))
        listed = {delivery.id for delivery in candidates}  # parsed events of deliveries no longer due are dropped
        self._events = {key: events for key, events in self._events.items() if key in listed}
        if not candidates:
            return []
        first_in_batch: dict[str, int] = {}
        for delivery in candidates:
            first_in_batch.setdefault(delivery.order_key, delivery.id)
        keys = [key for key in first_in_batch if self._lock_group(session, key)]
        # A group is ready when no pending delivery of it comes before its first in the batch (one waiting for a
        # retry, or held by another worker). The candidates are the first due pending deliveries by id, so only
        # pending ids below the last candidate's can be older: a short range of the queue index, where the group
        # index would read every delivery its group ever had (a storm's groups have thousands of re-sends).
        oldest_pending = dict(
            session.execute(_OLDEST_PENDING, {"last": candidates[-1].id, "keys": keys}).tuples().all()
        )
        ready = {key for key in keys if oldest_pending.get(key) == first_in_batch[key]}
        batch = [delivery for delivery in candidates if delivery.order_key in ready]
        self._load_small_events(session, batch)
        return batch

    def _load_small_events(self, session: Session, batch: list[Delivery]) -> None:
        """The events of the batch's small deliveries in one query (each one's own deferred load was a query built
        per delivery, inside the write lock), kept until each is applied: during a storm a transaction applies a
        few of the batch, and the next claims most of the others again. A large one's are read when its first
        chunk is applied, and kept too."""
        small = [d.id for d in batch if d.alert_count <= SMALL_DELIVERY and d.id not in self._events]
        if small:
            self._events.update(session.execute(_EVENTS_OF, {"ids": small}).tuples().all())

    def _lock_group(self, session: Session, order_key: str) -> bool:
        """On PostgreSQL, one worker at a time per group (released at commit)."""
        if not self._database.is_postgres:
            return True
        lock_id = zlib.crc32(order_key.encode())
        return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_id}).scalar())

    def _process(
        self, session: Session, delivery: Delivery, now: datetime, locked: float, *, decide_later: bool
    ) -> bool:
        """Apply the delivery's next chunk; False when it failed. It stays ``pending`` while chunks remain: also
        when a new alert's correlation is to be decided before the next transaction (``decide_later``, see
        :meth:`IncidentService.apply_events`)."""
        events = self._events.pop(delivery.id) if delivery.id in self._events else delivery.events
        try:
            with session.begin_nested():
                start = delivery.events_applied
                delivery.events_applied = start + self._incidents.apply_events(
                    session,
                    events[start : start + self._chunk_events],
                    delivery.received_at,
                    enough=self._chunk_limit(locked),
                    decide_later=decide_later,
                )
                if delivery.events_applied < len(events):
                    self._events[delivery.id] = events  # for its next chunk
                    return True
                delivery.status = DeliveryStatus.DONE
                delivery.processed_at = now
                delivery.last_error = None
        except Exception as exc:
            if is_transient(exc):
                raise
            self._record_failure(delivery, exc, now)
            return False
        self._metrics.delivery_processed(delivery.source)
        return True

    def _budget(self, delivery: Delivery) -> float:
        """How long (s) a SQLite transaction may already have held the lock and still take ``delivery`` on."""
        return self._hold_budget() + (SQLITE_CHUNK_ROOM if delivery.events_applied else 0.0)

    def _hold_budget(self) -> float:
        return SQLITE_HOLD_BUDGET if self._storm else self._calm_budget

    def _chunk_limit(self, locked: float) -> Callable[[int], bool]:
        """Whether a chunk is full: ``chunk_events`` applied, or the transaction has run for its budget."""
        budget = self._hold_budget() + SQLITE_CHUNK_ROOM if self._database.is_sqlite else CHUNK_BUDGET

        def enough(applied: int) -> bool:
            return applied >= self._chunk_events or self._timer() - locked > budget

        return enough

    def _record_failure(self, delivery: Delivery, exc: Exception, now: datetime) -> None:
        delivery.attempts += 1
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if delivery.attempts >= self._max_attempts:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            self._metrics.delivery_failed(delivery.source)
            log.error(
                "delivery %d failed after %d attempts: %s",
                delivery.id,
                delivery.attempts,
                delivery.last_error,
            )
        else:
            delivery.next_attempt_at = now + min(MAX_BACKOFF, timedelta(seconds=2**delivery.attempts))
            log.warning("delivery %d failed (attempt %d): %s", delivery.id, delivery.attempts, delivery.last_error)


def _in_progress_placed(batch: list[Delivery], *, first: bool) -> list[Delivery]:
    """The batch with the groups of partly applied deliveries first or last (in order within a group)."""
    started = {delivery.order_key for delivery in batch if delivery.events_applied}
    return sorted(batch, key=lambda delivery: (delivery.order_key in started) != first)
