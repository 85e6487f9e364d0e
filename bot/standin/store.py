"""The stand-in's memory in one SQLite file (stdlib ``sqlite3``): users, channels, members, messages with their
edit history, ephemeral messages, response URLs and what was posted to them, and the API call log.

Deleting a message that has thread replies leaves a tombstone in its place, as in Slack.

A restarted stand-in that opens the same file finds its workspace as it left it. One connection, guarded
by a lock, serves every thread. Message timestamps are Slack's ``"<seconds>.<micros>"`` strings, unique and
increasing across the whole workspace, restarts included. It stays whole: one schema, one connection.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bot.standin.workspace import ChannelSeed, User

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, real_name TEXT NOT NULL, display_name TEXT NOT NULL,
    is_bot INTEGER NOT NULL, tz TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS channels (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, is_private INTEGER NOT NULL,
    created INTEGER NOT NULL, creator TEXT NOT NULL, im_user TEXT
);
CREATE TABLE IF NOT EXISTS members (
    channel_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (channel_id, user_id)
);
CREATE TABLE IF NOT EXISTS messages (
    channel_id TEXT NOT NULL, ts TEXT NOT NULL, micros INTEGER NOT NULL, user_id TEXT NOT NULL,
    text TEXT NOT NULL, blocks TEXT, attachments TEXT, metadata TEXT, thread_ts TEXT,
    edited_ts TEXT, edited_by TEXT, deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (channel_id, ts)
);
CREATE INDEX IF NOT EXISTS messages_by_thread ON messages (channel_id, thread_ts, micros);
CREATE TABLE IF NOT EXISTS edits (
    channel_id TEXT NOT NULL, ts TEXT NOT NULL, replaced_at TEXT NOT NULL,
    text TEXT NOT NULL, blocks TEXT, attachments TEXT, metadata TEXT
);
CREATE TABLE IF NOT EXISTS ephemerals (
    channel_id TEXT NOT NULL, ts TEXT NOT NULL, user_id TEXT NOT NULL, text TEXT NOT NULL, blocks TEXT,
    thread_ts TEXT
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, method TEXT NOT NULL, at REAL NOT NULL, params TEXT NOT NULL,
    status INTEGER NOT NULL, error TEXT, fault TEXT
);
CREATE TABLE IF NOT EXISTS response_urls (
    id TEXT PRIMARY KEY, channel_id TEXT NOT NULL, message_ts TEXT, user_id TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT, response_url_id TEXT NOT NULL, at REAL NOT NULL, body TEXT NOT NULL,
    error TEXT
);
"""


def format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def parse_ts(text: str) -> int | None:
    """``"1712345678.000100"`` (or ``"1712345678"``, ``"1712345678.5"``) as microseconds; None if malformed."""
    seconds, _, fraction = text.strip().partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 6:
        return None
    return int(seconds) * 1_000_000 + int(fraction.ljust(6, "0") or 0)


@dataclass(frozen=True)
class Content:
    """What a message says: its fallback text, Block Kit blocks, attachments and metadata."""

    text: str
    blocks: list[Any] | None = None
    attachments: list[Any] | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Channel:
    """A conversation; ``im_user`` is set for a direct message between the bot and that user (``D…``)."""

    id: str
    name: str
    is_private: bool
    created: int
    creator: str
    im_user: str | None = None

    @property
    def is_im(self) -> bool:
        return self.im_user is not None


@dataclass(frozen=True)
class Message:
    channel_id: str
    ts: str
    user: str
    content: Content
    thread_ts: str | None
    edited_ts: str | None
    edited_by: str | None
    deleted: bool = False
    """A tombstone: the message was deleted while it had thread replies."""


@dataclass(frozen=True)
class Version:
    """A message as it was before an edit replaced it at ``replaced_at``."""

    content: Content
    replaced_at: str


@dataclass(frozen=True)
class ResponseUrl:
    id: str
    channel_id: str
    message_ts: str | None
    user_id: str
    created: float


@dataclass(frozen=True)
class Window:
    """Bounds on message timestamps (microseconds), each inclusive or not."""

    oldest: int = 0
    latest: int | None = None
    oldest_inclusive: bool = False
    latest_inclusive: bool = False


def _dump(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _load(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _content(row: sqlite3.Row) -> Content:
    return Content(row["text"], _load(row["blocks"]), _load(row["attachments"]), _load(row["metadata"]))


def _message(row: sqlite3.Row) -> Message:
    return Message(
        row["channel_id"],
        row["ts"],
        row["user_id"],
        _content(row),
        row["thread_ts"],
        row["edited_ts"],
        row["edited_by"],
        bool(row["deleted"]),
    )


def _user(row: sqlite3.Row) -> User:
    return User(row["id"], row["name"], row["real_name"], row["display_name"], bool(row["is_bot"]), row["tz"])


def _channel(row: sqlite3.Row) -> Channel:
    return Channel(row["id"], row["name"], bool(row["is_private"]), row["created"], row["creator"], row["im_user"])


class NameTaken(Exception):
    """A channel with that name exists already."""


class Store:
    """Thread-safe access to the stand-in's SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._version = 0
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        if "deleted" not in columns:  # a file from before tombstones
            self._db.execute("ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0")
        if "im_user" not in {row[1] for row in self._db.execute("PRAGMA table_info(channels)")}:  # before DMs
            self._db.execute("ALTER TABLE channels ADD COLUMN im_user TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def version(self) -> int:
        """A number that grows with every write (the local workspace page watches it for changes)."""
        return self._version

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with self._db:
                    yield self._db
            finally:
                self._version += 1

    def _rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _next_micros(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'last_ts'").fetchone()
        micros = max(time.time_ns() // 1000, (row[0] + 1) if row else 0)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_ts', ?)", (micros,))
        return micros

    def next_ts(self) -> str:
        """A fresh timestamp, later than every one handed out before (an edit's ``edited.ts``, say)."""
        with self._write() as db:
            return format_ts(self._next_micros(db))

    # Users.

    def add_user(self, user: User) -> bool:
        """Add a workspace member; False if one with that id exists already."""
        with self._write() as db:
            return bool(
                db.execute(
                    "INSERT OR IGNORE INTO users (id, name, real_name, display_name, is_bot, tz)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (user.id, user.name, user.real_name, user.display_name, int(user.is_bot), user.tz),
                ).rowcount
            )

    def user(self, user_id: str) -> User | None:
        rows = self._rows("SELECT * FROM users WHERE id = ?", user_id)
        return _user(rows[0]) if rows else None

    def users(self) -> list[User]:
        return [_user(row) for row in self._rows("SELECT * FROM users ORDER BY rowid")]

    # Channels and members.

    def seed(self, users: tuple[User, ...], channels: tuple[ChannelSeed, ...], creator: str) -> None:
        """Create the seed users and channels that do not exist yet (a restart keeps what changed since)."""
        for user in users:
            self.add_user(user)
        with self._write() as db:
            for seed in channels:
                created = db.execute(
                    "INSERT OR IGNORE INTO channels (id, name, is_private, created, creator) VALUES (?, ?, ?, ?, ?)",
                    (seed.id, seed.name, int(seed.is_private), int(time.time()), creator),
                ).rowcount
                if created:
                    db.executemany(
                        "INSERT OR IGNORE INTO members (channel_id, user_id) VALUES (?, ?)",
                        [(seed.id, user) for user in seed.members],
                    )

    def channel(self, ref: str) -> Channel | None:
        """A channel by id, or by name with or without ``#``."""
        rows = self._rows("SELECT * FROM channels WHERE id = ? OR name = ?", ref, ref.removeprefix("#"))
        by_id = [row for row in rows if row["id"] == ref]
        return _channel((by_id or rows)[0]) if rows else None

    def all_channels(self) -> list[Channel]:
        return [_channel(row) for row in self._rows("SELECT * FROM channels ORDER BY created, id")]

    def create_channel(self, channel_id: str, name: str, *, is_private: bool, creator: str) -> Channel:
        """A new channel with its creator as the one member; :class:`NameTaken` if the name is in use."""
        channel = Channel(channel_id, name, is_private, int(time.time()), creator)
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO channels (id, name, is_private, created, creator) VALUES (?, ?, ?, ?, ?)",
                    (channel.id, channel.name, int(channel.is_private), channel.created, channel.creator),
                )
                db.execute("INSERT INTO members (channel_id, user_id) VALUES (?, ?)", (channel_id, creator))
        except sqlite3.IntegrityError:
            raise NameTaken(name) from None
        return channel

    def open_im(self, user: str, bot: str) -> tuple[Channel, bool]:
        """The direct message between ``bot`` and ``user`` (its id is its name), created on first use; True when
        it existed already."""
        with self._write() as db:
            row = db.execute("SELECT * FROM channels WHERE im_user = ?", (user,)).fetchone()
            if row is not None:
                return _channel(row), True
            im_id = "D" + secrets.token_hex(5).upper()
            channel = Channel(im_id, im_id, True, int(time.time()), bot, user)
            db.execute(
                "INSERT INTO channels (id, name, is_private, created, creator, im_user) VALUES (?, ?, 1, ?, ?, ?)",
                (channel.id, channel.name, channel.created, bot, user),
            )
            db.executemany("INSERT INTO members (channel_id, user_id) VALUES (?, ?)", [(im_id, bot), (im_id, user)])
        return channel, False

    def members(self, channel_id: str) -> list[str]:
        rows = self._rows("SELECT user_id FROM members WHERE channel_id = ? ORDER BY rowid", channel_id)
        return [row[0] for row in rows]

    def add_members(self, channel_id: str, users: list[str]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO members (channel_id, user_id) VALUES (?, ?)",
                [(channel_id, user) for user in users],
            )

    # Messages.

    def add_message(self, channel_id: str, user: str, content: Content, thread_ts: str | None = None) -> Message:
        with self._write() as db:
            micros = self._next_micros(db)
            ts = format_ts(micros)
            db.execute(
                "INSERT INTO messages (channel_id, ts, micros, user_id, text, blocks, attachments, metadata, thread_ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    channel_id,
                    ts,
                    micros,
                    user,
                    content.text,
                    _dump(content.blocks),
                    _dump(content.attachments),
                    _dump(content.metadata),
                    thread_ts,
                ),
            )
        return Message(channel_id, ts, user, content, thread_ts, None, None)

    def message(self, channel_id: str, ts: str) -> Message | None:
        rows = self._rows("SELECT * FROM messages WHERE channel_id = ? AND ts = ?", channel_id, ts)
        return _message(rows[0]) if rows else None

    def update_message(self, channel_id: str, ts: str, content: Content, editor: str) -> Message | None:
        """Replace a message's content, keeping the old one as a :class:`Version`; None if it does not exist."""
        with self._write() as db:
            row = db.execute("SELECT * FROM messages WHERE channel_id = ? AND ts = ?", (channel_id, ts)).fetchone()
            if row is None:
                return None
            edited_ts = format_ts(self._next_micros(db))
            db.execute(
                "INSERT INTO edits (channel_id, ts, replaced_at, text, blocks, attachments, metadata)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (channel_id, ts, edited_ts, row["text"], row["blocks"], row["attachments"], row["metadata"]),
            )
            db.execute(
                "UPDATE messages SET text = ?, blocks = ?, attachments = ?, metadata = ?, edited_ts = ?, edited_by = ?"
                " WHERE channel_id = ? AND ts = ?",
                (
                    content.text,
                    _dump(content.blocks),
                    _dump(content.attachments),
                    _dump(content.metadata),
                    edited_ts,
                    editor,
                    channel_id,
                    ts,
                ),
            )
        return Message(channel_id, ts, row["user_id"], content, row["thread_ts"], edited_ts, editor)

    def delete_message(self, channel_id: str, ts: str) -> bool:
        """Delete a message; one with thread replies becomes a tombstone. False if there was none to delete."""
        with self._write() as db:
            has_replies = db.execute(
                "SELECT 1 FROM messages WHERE channel_id = ? AND thread_ts = ? LIMIT 1", (channel_id, ts)
            ).fetchone()
            if has_replies:
                deleted = db.execute(
                    "UPDATE messages SET deleted = 1, text = '', blocks = NULL, attachments = NULL, metadata = NULL"
                    " WHERE channel_id = ? AND ts = ? AND deleted = 0",
                    (channel_id, ts),
                ).rowcount
            else:
                deleted = db.execute("DELETE FROM messages WHERE channel_id = ? AND ts = ?", (channel_id, ts)).rowcount
            db.execute("DELETE FROM edits WHERE channel_id = ? AND ts = ?", (channel_id, ts))
        return deleted > 0

    def edits(self, channel_id: str, ts: str) -> list[Version]:
        rows = self._rows("SELECT * FROM edits WHERE channel_id = ? AND ts = ? ORDER BY rowid", channel_id, ts)
        return [Version(_content(row), row["replaced_at"]) for row in rows]

    def top_level(self, channel_id: str, window: Window = Window(), *, limit: int | None = None) -> list[Message]:
        """Messages that are not thread replies, newest first, within ``window``."""
        sql = "SELECT * FROM messages WHERE channel_id = ? AND thread_ts IS NULL"
        args: list[Any] = [channel_id]
        sql += " AND micros >= ?" if window.oldest_inclusive else " AND micros > ?"
        args.append(window.oldest)
        if window.latest is not None:
            sql += " AND micros <= ?" if window.latest_inclusive else " AND micros < ?"
            args.append(window.latest)
        sql += " ORDER BY micros DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_message(row) for row in self._rows(sql, *args)]

    def replies(self, channel_id: str, thread_ts: str) -> list[Message]:
        """A thread's replies, oldest first (without the parent)."""
        rows = self._rows(
            "SELECT * FROM messages WHERE channel_id = ? AND thread_ts = ? ORDER BY micros", channel_id, thread_ts
        )
        return [_message(row) for row in rows]

    # Ephemeral messages: seen by one user, never in history.

    def add_ephemeral(self, channel_id: str, user: str, content: Content, thread_ts: str | None) -> str:
        with self._write() as db:
            ts = format_ts(self._next_micros(db))
            db.execute(
                "INSERT INTO ephemerals (channel_id, ts, user_id, text, blocks, thread_ts) VALUES (?, ?, ?, ?, ?, ?)",
                (channel_id, ts, user, content.text, _dump(content.blocks), thread_ts),
            )
        return ts

    def ephemerals(self, channel_id: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM ephemerals WHERE channel_id = ? ORDER BY rowid", channel_id)
        return [
            {
                "ts": row["ts"],
                "user": row["user_id"],
                "text": row["text"],
                "blocks": _load(row["blocks"]),
                "thread_ts": row["thread_ts"],
            }
            for row in rows
        ]

    # The API call log.

    def record_call(
        self, method: str, params: dict[str, Any], status: int, error: str | None, fault: str | None = None
    ) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO calls (method, at, params, status, error, fault) VALUES (?, ?, ?, ?, ?, ?)",
                (method, time.time(), _dump(params), status, error, fault),
            )

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM calls", []
        if method is not None:
            sql, args = sql + " WHERE method = ?", [method]
        return [
            {
                "method": row["method"],
                "time": row["at"],
                "params": _load(row["params"]),
                "status": row["status"],
                "error": row["error"],
                "fault": row["fault"],
            }
            for row in self._rows(sql + " ORDER BY id", *args)
        ]

    # Response URLs.

    def add_response_url(self, url: ResponseUrl) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO response_urls (id, channel_id, message_ts, user_id, created) VALUES (?, ?, ?, ?, ?)",
                (url.id, url.channel_id, url.message_ts, url.user_id, url.created),
            )

    def response_url(self, url_id: str) -> ResponseUrl | None:
        rows = self._rows("SELECT * FROM response_urls WHERE id = ?", url_id)
        if not rows:
            return None
        row = rows[0]
        return ResponseUrl(url_id, row["channel_id"], row["message_ts"], row["user_id"], row["created"])

    def add_response(self, url_id: str, body: dict[str, Any], error: str | None) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO responses (response_url_id, at, body, error) VALUES (?, ?, ?, ?)",
                (url_id, time.time(), _dump(body), error),
            )

    def responses(self, url_id: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM responses WHERE response_url_id = ? ORDER BY id", url_id)
        return [{"time": row["at"], "body": _load(row["body"]), "error": row["error"]} for row in rows]
