"""Slack's per-method rate limits: each Web API method has a tier (requests per minute, per app per workspace),
and ``chat.postMessage`` allows about one message per second per channel, with short bursts, under a
workspace-wide ceiling. A call over its limit is answered HTTP 429 with ``Retry-After`` (seconds).

Each limit is a token bucket: it holds a minute's worth of calls (at least :data:`MIN_BURST`, the "small
amount of burst behavior" Slack tolerates even in Tier 1) and refills at the limit's rate. On by default;
tests that measure something else turn it off (``StandinServer(rate_limits=False)`` or
``POST /_standin/ratelimits {"enabled": false}``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final

from bot.standin.clock import StandinClock

TIER_PER_MINUTE: Final = {1: 1, 2: 20, 3: 50, 4: 100}
METHOD_TIERS: Final = {
    "apps.connections.open": 1,
    "conversations.create": 2,
    "conversations.list": 2,
    "usergroups.users.list": 2,
    "chat.update": 3,
    "chat.delete": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "conversations.info": 3,
    "conversations.open": 3,
    "conversations.invite": 3,
    "conversations.join": 3,
    "auth.test": 4,  # "special" at Slack, generous
    "chat.postEphemeral": 4,
    "users.info": 4,
    "views.open": 4,
    "views.push": 4,
    "views.update": 4,
}
"""Each method's tier, from its page at https://docs.slack.dev/reference/methods."""
POST_PER_CHANNEL_PER_SECOND: Final = 1.0
POST_CHANNEL_BURST: Final = 3
POST_WORKSPACE_PER_MINUTE: Final = 300
MIN_BURST: Final = 3


@dataclass
class _Bucket:
    capacity: float
    per_second: float
    tokens: float
    updated: float

    def take(self, now: float) -> float | None:
        """Spend one call; None if allowed, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.per_second


class RateLimiter:
    """Decides whether a call is over its method's limit; thread-safe."""

    def __init__(self, clock: StandinClock, *, enabled: bool = True) -> None:
        self._clock = clock
        self.enabled = enabled
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def set_enabled(self, enabled: bool) -> None:
        """Turn the limits on or off; either way they start again from full buckets."""
        with self._lock:
            self.enabled = enabled
            self._buckets.clear()

    def retry_after(self, method: str, channel_id: str | None) -> int | None:
        """Count the call; None if it is allowed, else the whole seconds to put in ``Retry-After``."""
        if not self.enabled:
            return None
        if method == "chat.postMessage":
            limits = [("*", POST_WORKSPACE_PER_MINUTE / 60, POST_WORKSPACE_PER_MINUTE)]
            if channel_id:
                limits.append((channel_id, POST_PER_CHANNEL_PER_SECOND, POST_CHANNEL_BURST))
        elif method in METHOD_TIERS:
            per_minute = TIER_PER_MINUTE[METHOD_TIERS[method]]
            limits = [("*", per_minute / 60, max(per_minute, MIN_BURST))]
        else:
            return None
        now = self._clock.now()
        with self._lock:
            buckets = [self._bucket(method, key, rate, burst, now) for key, rate, burst in limits]
            waits = [bucket.take(now) for bucket in buckets]
            refused = [wait for wait in waits if wait is not None]
            if not refused:
                return None
            for bucket, wait in zip(buckets, waits, strict=True):
                if wait is None:
                    bucket.tokens += 1  # a refused call spends nothing
            return max(1, math.ceil(max(refused)))

    def _bucket(self, method: str, key: str, per_second: float, burst: float, now: float) -> _Bucket:
        bucket = self._buckets.get((method, key))
        if bucket is None:
            bucket = self._buckets[(method, key)] = _Bucket(burst, per_second, burst, now)
        return bucket
