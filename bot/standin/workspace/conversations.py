"""What one person sees of the stand-in's workspace: the conversations they can open (public channels, private ones
they are in, their direct message with the app), unread counts, and the messages of a channel or thread as HTML
(ephemeral messages only for the person they were for), drawn by :mod:`bot.standin.workspace.render`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bot.standin.api import WebApi
from bot.standin.store import Channel, Message, Store, Window, parse_ts
from bot.standin.workspace import User, Workspace
from bot.standin.workspace.render import ephemeral_message, render_message

HISTORY = 200  # the newest top-level messages a channel shows


@dataclass(frozen=True)
class Shown:
    """One message as the page shows it: the message, its thread's reply count, whether it is an ephemeral one
    for this user, and a fingerprint of all that (it changes when the message does)."""

    message: Message
    replies: int
    ephemeral: bool
    fingerprint: bytes

    @property
    def ts(self) -> str:
        return self.message.ts


class ReadMarks:
    """How far each person has read each conversation (in memory: a restart shows everything as unread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marks: dict[tuple[str, str], int] = {}

    def mark(self, user: str, channel: str, ts: str) -> None:
        micros = parse_ts(ts) or 0
        with self._lock:
            key = (user, channel)
            self._marks[key] = max(self._marks.get(key, 0), micros)

    def since(self, user: str, channel: str) -> int:
        with self._lock:
            return self._marks.get((user, channel), 0)


class Conversations:
    """The workspace as ``user`` sees it."""

    def __init__(self, store: Store, api: WebApi, workspace: Workspace, marks: ReadMarks, user: str) -> None:
        self._store = store
        self._api = api
        self._ws = workspace
        self._marks = marks
        self.user = user

    def lookups(self) -> tuple[dict[str, User], dict[str, Channel]]:
        """Users and channels by id, for the renderer."""
        users = {user.id: user for user in self._store.users()}
        return users, {channel.id: channel for channel in self._store.all_channels()}

    def visible(self) -> list[Channel]:
        """Channels first (public, and private ones the user is in), then the user's direct message with the app."""
        shown = []
        for channel in self._store.all_channels():
            if channel.is_im:
                continue
            if not channel.is_private or self.user in self._store.members(channel.id):
                shown.append(channel)
        return shown + [channel for channel in self._store.all_channels() if channel.im_user == self.user]

    def unread(self) -> dict[str, int]:
        """Unread messages by channel id: top-level messages by others since the user last looked."""
        counts = {}
        for channel in self.visible():
            window = Window(oldest=self._marks.since(self.user, channel.id))
            counts[channel.id] = sum(
                1 for m in self._store.top_level(channel.id, window, limit=99) if m.user != self.user
            )
        return counts

    def mark_read(self, channel: Channel, shown: list[Shown]) -> None:
        if shown:
            self._marks.mark(self.user, channel.id, max(shown, key=lambda s: parse_ts(s.ts) or 0).ts)

    def title(self, channel: Channel) -> str:
        if channel.im_user is not None:
            return self._ws.bot_user.name
        return ("\U0001f512 " if channel.is_private else "# ") + channel.name

    def history(self, channel: Channel) -> list[Shown]:
        """The channel's newest top-level messages and the user's ephemerals outside threads, oldest first."""
        messages = [self._shown(m) for m in self._store.top_level(channel.id, limit=HISTORY)]
        ephemerals = [self._ephemeral(channel, e) for e in self._store.ephemerals(channel.id) if self._mine(e, None)]
        return sorted(messages + ephemerals, key=lambda s: parse_ts(s.ts) or 0)

    def thread(self, channel: Channel, thread_ts: str) -> list[Shown]:
        """A thread: its parent, replies and the user's ephemerals in it, oldest first; empty if no such parent."""
        parent = self._store.message(channel.id, thread_ts)
        if parent is None:
            return []
        shown = [self._shown(m, in_thread=True) for m in (parent, *self._store.replies(channel.id, thread_ts))]
        shown += [self._ephemeral(channel, e) for e in self._store.ephemerals(channel.id) if self._mine(e, thread_ts)]
        return sorted(shown, key=lambda s: parse_ts(s.ts) or 0)

    def html(self, shown: Shown, users: Mapping[str, User], channels: Mapping[str, Channel]) -> str:
        return render_message(shown.message, users, channels, replies=shown.replies, ephemeral=shown.ephemeral)

    def _mine(self, ephemeral: dict[str, Any], thread_ts: str | None) -> bool:
        return bool(ephemeral["user"] == self.user and ephemeral.get("thread_ts") == thread_ts)

    def _shown(self, message: Message, *, in_thread: bool = False) -> Shown:
        as_slack = self._api.message_json(message)  # with its edit and its thread's summary
        replies = 0 if in_thread else int(as_slack.get("reply_count") or 0)
        return Shown(message, replies, False, orjson.dumps(as_slack, option=orjson.OPT_SORT_KEYS))

    def _ephemeral(self, channel: Channel, entry: dict[str, Any]) -> Shown:
        message = ephemeral_message(channel.id, entry, self._ws.bot_user.id)
        return Shown(message, 0, True, orjson.dumps(entry, option=orjson.OPT_SORT_KEYS))
