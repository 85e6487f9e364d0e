"""Scripted faults: make the next Web API calls (of a method, to a channel) fail the way Slack can fail.

* ``ratelimited`` — HTTP 429, ``Retry-After: <retry_after>``, ``{"ok": false, "error": "ratelimited"}``;
* ``server_error`` — HTTP ``status`` (500 or 503 …) and nothing done;
* ``error`` — HTTP 200, ``{"ok": false, "error": <error>}`` and nothing done: how Slack answers most refusals, and
  ``rate_limited`` (the body form of a rate limit, with no ``Retry-After``);
* ``latency`` — wait ``seconds``, then answer normally;
* ``accept_then_drop`` — do the call for real (a message is stored), then drop the connection unanswered.

A fault fires ``times`` times (``None``: until cleared); the first matching fault added wins. Faults live in
memory only: a restarted stand-in has none.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast, get_args

FaultKind = Literal["ratelimited", "server_error", "error", "latency", "accept_then_drop"]
KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass
class Fault:
    kind: FaultKind
    method: str | None = None
    channel: str | None = None
    times: int | None = 1
    retry_after: int = 1
    status: int = 500
    seconds: float = 1.0
    error: str = "internal_error"  # the ``error`` kind's Slack error code

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault must be one of {', '.join(KINDS)}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1, or null for until cleared")
        if not 500 <= self.status <= 599:
            raise ValueError("status must be a 5xx code")
        if self.retry_after < 0 or self.seconds < 0:
            raise ValueError("retry_after and seconds must not be negative")
        if not self.error or not self.error.replace("_", "").isalnum():
            raise ValueError("error must be a Slack error code such as rate_limited")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """From ``POST /_standin/faults``: ``{"fault": KIND, "method"?, "channel"?, "times"?, ...}``."""
        fields = {"method", "channel", "times", "retry_after", "status", "seconds", "error"}
        unknown = set(data) - fields - {"fault"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        try:
            return cls(kind=cast(FaultKind, data["fault"]), **{key: data[key] for key in fields & set(data)})
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed fault: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {"fault": data.pop("kind"), **data}

    def matches(self, method: str, channel_keys: Collection[str]) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.channel is None or self.channel.removeprefix("#") in channel_keys


class FaultBook:
    """The faults in force; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        """The faults in force, as ``POST /_standin/faults`` takes them (with ``times`` left)."""
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def take(self, method: str, channel_keys: Collection[str]) -> Fault | None:
        """The fault this call runs into, if any, counting it as used."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, channel_keys):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None
