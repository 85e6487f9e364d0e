"""The engine and transactions, with each backend's durability and locking settings.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (a commit survives a process crash; the last commits
before a power loss may not). Write transactions start with ``BEGIN IMMEDIATE`` so two writers queue on the
busy timeout instead of deadlocking on a lock upgrade; pysqlite's own transaction handling is switched off
so that SAVEPOINTs work (SQLAlchemy's documented recipe). A write transaction waits for the lock in 0.5 ms steps up
to the lock timeout, then fails (a webhook answers 503). Long-running processes checkpoint the WAL from a thread
(:mod:`bot.db.checkpoints`); a commit does so itself only past :data:`AUTO_CHECKPOINT_PAGES`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

_BEGIN_OPTION = "incibot_sqlite_begin"
LOCK_RETRY_SECONDS = 0.0005
# A commit checkpoints the WAL itself only past this many pages (~40 MB); long-running processes checkpoint from a
# thread (bot.db.checkpoints) long before, so that no webhook's commit waits for a checkpoint's fsyncs.
AUTO_CHECKPOINT_PAGES = 10_000


class DatabaseUnavailable(Exception):
    """The database cannot serve us right now (down, locked, shutting down); try again later."""


def is_transient(exc: BaseException) -> bool:
    """True for errors that a later retry may not hit: lost connections, lock timeouts."""
    if isinstance(exc, DatabaseUnavailable | OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Database:
    """Owns the engine; hands out write and read sessions."""

    def __init__(self, url: str, *, lock_timeout: float = 5.0, pool_size: int = 8) -> None:
        parsed = make_url(url)
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                url,
                connect_args={"timeout": lock_timeout, "check_same_thread": False},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
            _configure_sqlite(self.engine, lock_timeout)
        else:
            self.engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                pool_timeout=lock_timeout,
                connect_args=_postgres_connect_args(lock_timeout),
            )
        self._turns = threading.RLock() if self.is_sqlite else None
        self._lock_timeout = lock_timeout
        self._writer: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self._reader: sessionmaker[Session] = sessionmaker(
            self.engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"}), expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed on success, rolled back on error."""
        with self._write_turn(), self._writer.begin() as session:
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in one write transaction, for hot paths that need no ORM."""
        with self._write_turn(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        """On SQLite, this process's writers take turns on a lock instead of all spinning for SQLite's own
        (a burst of Slack commands otherwise starved the ingest writer of connections and of the lock)."""
        if self._turns is None:
            yield
            return
        if not self._turns.acquire(timeout=self._lock_timeout):
            raise DatabaseUnavailable("timed out waiting for the database write lock")
        try:
            yield
        finally:
            self._turns.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; on SQLite it takes no write lock."""
        with self._reader() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _postgres_connect_args(lock_timeout: float) -> dict[str, Any]:
    millis = int(lock_timeout * 1000)
    return {
        "connect_timeout": max(1, int(lock_timeout)),
        "options": f"-c lock_timeout={millis} -c statement_timeout={millis * 6}",
    }


def _configure_sqlite(engine: Engine, lock_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=0")  # _on_begin waits for the write lock, more finely than SQLite
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTO_CHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                connection.exec_driver_sql(f"BEGIN {mode}")
                return
            except OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            # SQLite's own busy handler sleeps 1, 2, 5, 10 … 100 ms between tries: under a steady stream of
            # short transactions from another process that adds tens of milliseconds to a webhook's answer.
            time.sleep(LOCK_RETRY_SECONDS)
