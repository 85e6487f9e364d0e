"""Group commit: many concurrent webhook requests share one durable transaction.

Each request hands its parsed delivery to the writer thread and waits; the thread stores everything
queued so far in one transaction, commits, and only then answers each waiter. A request is answered 202
only after its commit. If the batch fails for a reason that belongs to one delivery, the deliveries are
stored one by one so that a bad one cannot fail its neighbours; if the database is unavailable, every
waiter gets :class:`~bot.db.database.DatabaseUnavailable` (and its sender a 503).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from bot.db.database import Database, DatabaseUnavailable, is_transient
from bot.ingest.parsed import ParsedDelivery
from bot.ingest.store import DeliveryStore, StoredDelivery
from bot.threads import NamedThread

log = logging.getLogger(__name__)


AfterStore = Callable[[Connection, StoredDelivery, datetime], None]
"""Runs in the transaction that stores a delivery (with its result and the time): what must commit with it."""


@dataclass(slots=True)
class _Pending:
    parsed: ParsedDelivery
    body: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[StoredDelivery]
    then: AfterStore | None = None


_STOP = object()


class DeliveryWriter:
    """A single thread that commits queued deliveries in batches of up to ``max_batch``."""

    def __init__(
        self,
        database: Database,
        store: DeliveryStore,
        clock: Callable[[], datetime],
        *,
        on_commit: Callable[[list[StoredDelivery]], None] = lambda _stored: None,
        max_batch: int = 256,
    ) -> None:
        self._database = database
        self._store = store
        self._clock = clock
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._accepting = False

    @property
    def accepting(self) -> bool:
        return self._accepting

    def start(self) -> None:
        self._thread = NamedThread(target=self._run, name="delivery-writer", daemon=True)
        self._accepting = True
        self._thread.start()

    def stop(self) -> None:
        """Refuse new work, commit what is queued, and stop the thread."""
        self._accepting = False
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def submit(self, parsed: ParsedDelivery, body: bytes, then: AfterStore | None = None) -> StoredDelivery:
        """Store ``parsed`` durably (``then`` in the same transaction); returns once it is committed."""
        if not self._accepting:
            raise DatabaseUnavailable("shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoredDelivery] = loop.create_future()
        self._queue.put(_Pending(parsed, body, loop, future, then))
        return await future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Pending] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    assert isinstance(item, _Pending)
                    batch.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
        # Anything queued after the stop marker was submitted while stopping: still store it.
        leftovers: list[_Pending] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Pending):
                leftovers.append(item)
        if leftovers:
            self._write(leftovers)

    def _write(self, batch: list[_Pending]) -> None:
        try:
            stored = self._commit(batch)
        except Exception as exc:
            if is_transient(exc) or len(batch) == 1:
                self._fail_all(batch, exc)
                return
            log.warning("batch of %d deliveries failed (%s); storing them one by one", len(batch), exc)
            for pending in batch:
                self._write([pending])
            return
        for pending, result in zip(batch, stored, strict=True):
            pending.loop.call_soon_threadsafe(_resolve, pending.future, result)
        self._on_commit(stored)

    def _commit(self, batch: list[_Pending]) -> list[StoredDelivery]:
        now = self._clock()
        stored = []
        with self._database.write_connection() as connection:
            for pending in batch:
                stored.append(self._store.record(connection, pending.parsed, pending.body, now))
                if pending.then is not None:
                    pending.then(connection, stored[-1], now)
        return stored

    @staticmethod
    def _fail_all(batch: list[_Pending], exc: Exception) -> None:
        if is_transient(exc):
            log.warning("database unavailable, %d deliveries refused with 503: %s", len(batch), exc)
            error: Exception = DatabaseUnavailable(str(exc).splitlines()[0])
        else:
            log.exception("could not store a delivery", exc_info=exc)
            error = exc
        for pending in batch:
            pending.loop.call_soon_threadsafe(_reject, pending.future, error)


def _resolve(future: asyncio.Future[StoredDelivery], result: StoredDelivery) -> None:
    if not future.done():
        future.set_result(result)


def _reject(future: asyncio.Future[StoredDelivery], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
