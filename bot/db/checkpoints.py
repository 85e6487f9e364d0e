"""SQLite's WAL checkpoints, run by a thread of each long-running process rather than by a commit.

By default SQLite checkpoints inside the commit that grows the write-ahead log past 1,000 pages: that commit
copies the log into the database file and waits for its fsyncs (55 to 340 ms measured on this project's 2-core
machine at 1,000 webhooks/s) while it holds the only write lock, so the webhook it commits, and every one queued
behind it, waits too. :class:`WalCheckpointer` runs a ``PASSIVE`` checkpoint every second instead: it copies what
no reader still needs without taking the write lock, and a commit only appends to the log. The automatic
checkpoint stays as a bound (:data:`~bot.db.database.AUTO_CHECKPOINT_PAGES`) for a process without the thread (the
CLI), or if the thread falls behind.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from bot.background import BackgroundLoop
from bot.db.database import Database

log = logging.getLogger(__name__)

INTERVAL = 1.0  # seconds between checkpoints


class Checkpoint(NamedTuple):
    """What ``PRAGMA wal_checkpoint`` reports: whether it was blocked, the log's pages and those copied."""

    busy: bool
    log_pages: int
    copied_pages: int


def checkpoint(database: Database) -> Checkpoint:
    """One ``PASSIVE`` checkpoint on a connection outside any transaction (it takes no write lock)."""
    connection = database.engine.raw_connection()
    try:
        cursor = connection.cursor()
        busy, log_pages, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        cursor.close()
    finally:
        connection.close()
    return Checkpoint(bool(busy), int(log_pages), int(copied))


class WalCheckpointer(BackgroundLoop):
    """Checkpoints an SQLite database every :data:`INTERVAL` seconds (see the module docstring)."""

    def __init__(self, database: Database, *, interval: float = INTERVAL) -> None:
        super().__init__("wal-checkpoint", interval)
        self._database = database

    def run_once(self) -> int:
        done = checkpoint(self._database)
        if done.log_pages > 0 and done.copied_pages < done.log_pages:
            log.debug("WAL checkpoint: %d of %d pages copied", done.copied_pages, done.log_pages)
        return 0  # never busy: the next one in INTERVAL seconds
