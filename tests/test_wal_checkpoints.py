"""SQLite's WAL checkpoints run off the commit path: a commit only appends to the log, the thread copies it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bot.db.checkpoints import WalCheckpointer, checkpoint
from bot.db.database import AUTO_CHECKPOINT_PAGES, Database
from tests.support import wait_for

PAGES = 1_500  # past SQLite's default automatic checkpoint (1,000 pages), which would run inside the commit


def _database(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    with database.write_connection() as connection:
        connection.execute(text("CREATE TABLE blobs (body BLOB)"))
    checkpoint(database)
    return database


def _write(database: Database, pages: int) -> None:
    with database.write_connection() as connection:
        for _ in range(pages):
            connection.execute(text("INSERT INTO blobs VALUES (randomblob(4000))"))


def test_a_large_commit_leaves_the_checkpoint_to_the_thread(tmp_path: Path) -> None:
    database = _database(tmp_path)
    file = tmp_path / "wal.db"
    try:
        with database.read() as session:
            assert session.execute(text("PRAGMA wal_autocheckpoint")).scalar() == AUTO_CHECKPOINT_PAGES
        before = file.stat().st_size
        _write(database, PAGES)
        assert file.stat().st_size == before  # the commit appended to the log and copied nothing
        done = checkpoint(database)
        assert not done.busy and done.log_pages >= PAGES and done.copied_pages == done.log_pages
        assert file.stat().st_size >= before + PAGES * 4000
    finally:
        database.dispose()


def test_the_checkpointer_copies_the_log_while_it_runs(tmp_path: Path) -> None:
    database = _database(tmp_path)
    file = tmp_path / "wal.db"
    checkpointer = WalCheckpointer(database, interval=0.05)
    try:
        before = file.stat().st_size
        checkpointer.start()
        _write(database, 100)
        assert wait_for(lambda: file.stat().st_size >= before + 100 * 4000)
    finally:
        checkpointer.stop()
        database.dispose()
