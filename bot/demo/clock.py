"""The demo's clock: wall time, or wall time moved back while the seeded history is played."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class DemoClock:
    """Wall time minus ``behind`` (at first ``start_behind``); it only ever moves forward (the bot's timers
    assume so)."""

    def __init__(self, start_behind: timedelta = timedelta(0)) -> None:
        self._behind = start_behind
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) - self._behind

    def set_behind(self, behind: timedelta) -> None:
        """Run ``behind`` wall time from now on; refused (ValueError) if that would move the clock back."""
        with self._lock:
            if behind > self._behind:
                raise ValueError("the demo clock never moves back")
            self._behind = behind
