"""Checks that a request really comes from Slack, before Bolt or anything else sees it.

slack_sdk's verifier raises on a non-numeric timestamp; here every malformed header is simply "not
verified" (401), and the body is never logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from slack_sdk.signature import Clock, SignatureVerifier

MAX_SKEW_SECONDS = 300


class RequestVerifier:
    def __init__(self, signing_secret: str, clock: Callable[[], float] = time.time) -> None:
        self._verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self._clock = clock

    def verify(self, headers: Mapping[str, str], body: bytes) -> bool:
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp.isdigit() or len(timestamp) > 12 or not signature.startswith("v0="):
            return False
        if abs(self._clock() - int(timestamp)) > MAX_SKEW_SECONDS:
            return False
        return self._verifier.is_valid(body, timestamp, signature)


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()
