"""What changed for one open page since it was drawn, as server-sent events.

A :class:`Feed` is primed with what the page was drawn with; each :meth:`Feed.changes` compares the stand-in's
state now with what the page has and answers the events that bring it up to date:

- ``message`` ``{"pane": "channel"|"thread", "ts", "html", "new"}``: a message (or one of the user's ephemeral
  ones) appeared or changed; a new one goes last in its pane, a changed one replaces the element with its
  ``data-ts`` in that pane;
- ``remove`` ``{"pane", "ts"}``: a message was deleted;
- ``unread`` ``{CHANNEL_ID: COUNT}``: unread counts, when they changed;
- ``view`` ``{"view_id", "html"}``: the user's top modal opened or changed (``html`` "" when none is open).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bot.standin.store import Channel
from bot.standin.views import ViewBook
from bot.standin.workspace.conversations import Conversations, Shown
from bot.standin.workspace.render import render_view

MAX_FEEDS = 64  # pages drawn but not (yet) listening are forgotten beyond this many

Event = tuple[str, dict[str, Any]]


@dataclass
class Feed:
    """One page: who it is for, which channel and thread it shows, and what it has."""

    conversations: Conversations
    channel: Channel
    thread_ts: str | None
    views: ViewBook
    _seen: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"channel": {}, "thread": {}})
    _unread: dict[str, int] | None = None
    _view: tuple[tuple[str, str], ...] = ()

    def prime(self, history: list[Shown], thread: list[Shown], unread: dict[str, int]) -> None:
        """What the page was drawn with."""
        self._seen = {"channel": _prints(history), "thread": _prints(thread)}
        self._unread = unread
        self._view = self.view_key()

    def changes(self) -> list[Event]:
        """The events since the last call (or since the page was drawn)."""
        conversations = self.conversations
        lookups = conversations.lookups()
        events: list[Event] = []
        history = conversations.history(self.channel)
        events += self._pane("channel", history, lookups)
        conversations.mark_read(self.channel, history)
        if self.thread_ts is not None:
            events += self._pane("thread", conversations.thread(self.channel, self.thread_ts), lookups)
        unread = conversations.unread()
        if unread != self._unread:
            self._unread = unread
            events.append(("unread", unread))
        key = self.view_key()
        if key != self._view:
            self._view = key
            stack = self.views.stack(conversations.user)
            html = render_view(stack[-1], *lookups) if stack else ""
            events.append(("view", {"view_id": stack[-1]["id"] if stack else "", "html": html}))
        return events

    def _pane(self, pane: str, now: list[Shown], lookups: tuple[Any, Any]) -> list[Event]:
        seen = self._seen[pane]
        events: list[Event] = []
        for shown in now:
            if seen.get(shown.ts) != shown.fingerprint:
                html = self.conversations.html(shown, *lookups)
                events.append(("message", {"pane": pane, "ts": shown.ts, "html": html, "new": shown.ts not in seen}))
        current = _prints(now)
        events += [("remove", {"pane": pane, "ts": ts}) for ts in seen if ts not in current]
        self._seen[pane] = current
        return events

    def view_key(self) -> tuple[tuple[str, str], ...]:
        """The user's open modals (id and hash each): it changes when one opens, closes or is updated."""
        return tuple((str(v["id"]), str(v["hash"])) for v in self.views.stack(self.conversations.user))


def _prints(shown: list[Shown]) -> dict[str, bytes]:
    return {item.ts: item.fingerprint for item in shown}


class Feeds:
    """The feeds of pages drawn recently, by a token the page listens with."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._feeds: OrderedDict[str, Feed] = OrderedDict()

    def add(self, feed: Feed) -> str:
        token = secrets.token_urlsafe(12)
        with self._lock:
            self._feeds[token] = feed
            while len(self._feeds) > MAX_FEEDS:
                self._feeds.popitem(last=False)
        return token

    def take(self, token: str) -> Feed | None:
        """The page's feed, now listened to (so never forgotten for newer pages)."""
        with self._lock:
            return self._feeds.pop(token, None)
