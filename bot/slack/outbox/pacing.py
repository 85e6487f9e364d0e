"""How fast the outbox may call Slack: Slack's limits are per Web API method (per app and workspace), and
``chat.postMessage`` also allows about one message per second per channel.

So a rate-limit answer pauses only what it limits: the method, or for a post the method in that channel. Slack
says so in two forms, both honoured: HTTP 429 with ``Retry-After``, and an ``ok: false`` answer whose error is
``ratelimited`` (or ``rate_limited``), with or without the header. Between answers the outbox paces itself: one
post per channel per ``post_interval``, one edit per message per ``update_interval``.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from datetime import datetime, timedelta

from slack_sdk.errors import SlackApiError

RATE_LIMIT_ERRORS = frozenset({"ratelimited", "rate_limited"})
DEFAULT_RETRY_AFTER = timedelta(seconds=1)  # a rate-limit answer without Retry-After
POST = "chat.postMessage"
UPDATE = "chat.update"


def retry_after(exc: SlackApiError) -> timedelta | None:
    """How long Slack asked to wait, if ``exc`` is a rate-limit answer (either form); else None."""
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    if exc.response.status_code != 429 and data.get("error") not in RATE_LIMIT_ERRORS:
        return None
    headers = {str(key).lower(): value for key, value in (exc.response.headers or {}).items()}
    value = headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        seconds = None
    return timedelta(seconds=seconds) if seconds is not None and seconds >= 0 else DEFAULT_RETRY_AFTER


class Pacing:
    """Pauses and intervals, keyed by method (and channel for posts, message for edits); thread-safe."""

    def __init__(self, post_interval: timedelta, update_interval: timedelta) -> None:
        self._post_interval = post_interval
        self._update_interval = update_interval
        self._lock = threading.Lock()
        self._paused: dict[tuple[str, str | None], datetime] = {}
        self._last: dict[tuple[str, Hashable], datetime] = {}

    def ready_at(self, method: str, now: datetime, *, channel: str | None = None, message: Hashable = None) -> datetime:
        """When ``method`` may next be called (``now`` or earlier: at once)."""
        with self._lock:
            ready = max(self._paused.get((method, None), now), self._paused.get(self._pause_key(method, channel), now))
            if method == POST and channel is not None and (POST, channel) in self._last:
                ready = max(ready, self._last[POST, channel] + self._post_interval)
            if method == UPDATE and message is not None and (UPDATE, message) in self._last:
                ready = max(ready, self._last[UPDATE, message] + self._update_interval)
            return ready

    def called(self, method: str, now: datetime, *, channel: str | None = None, message: Hashable = None) -> None:
        """Note a call Slack did (a post, an edit), for the intervals."""
        with self._lock:
            if method == POST and channel is not None:
                self._last[POST, channel] = now
            elif method == UPDATE and message is not None:
                self._last[UPDATE, message] = now

    def rate_limited(self, method: str, until: datetime, *, channel: str | None = None) -> None:
        """Slack said to wait: pause the method (a post: the method in that channel) until ``until``."""
        with self._lock:
            key = self._pause_key(method, channel)
            self._paused[key] = max(until, self._paused.get(key, until))

    @staticmethod
    def _pause_key(method: str, channel: str | None) -> tuple[str, str | None]:
        return (method, channel if method == POST else None)
