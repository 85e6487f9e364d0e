"""The stand-in's sense of time, for the rules that depend on it (rate limits, ``response_url`` expiry).

Tests move it forward (:meth:`StandinClock.advance`, ``POST /_standin/clock``) instead of waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class StandinClock:
    """Seconds since the epoch from ``source``, plus however far tests have advanced it."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._source() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
