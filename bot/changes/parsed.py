"""What every change shape parses into, and the small rules they share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.ingest.errors import InvalidPayload

MAX_CLOCK_SKEW = timedelta(minutes=5)  # a change "in the future" beyond this is refused
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True, slots=True)
class IncomingChange:
    """A change ready to store; ``at`` None means "when it was received"."""

    source: str
    dedup_key: str
    service: str
    kind: str
    at: datetime | None
    version: str | None = None
    who: str | None = None
    link: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A delivery understood and deliberately not stored (a GitHub ping, a failed deployment)."""

    reason: str


def short_version(version: str | None) -> str | None:
    """A full commit SHA shortened to 12 characters, as people quote it; anything else unchanged."""
    if version is not None and _COMMIT_SHA.fullmatch(version):
        return version[:12]
    return version


def check_not_future(at: datetime | None, now: datetime, field: str) -> None:
    """Refuse a change dated after ``now`` (beyond clock skew): it would rank as the cause of anything."""
    if at is not None and at > now + MAX_CLOCK_SKEW:
        raise InvalidPayload(f"{field}: {at.isoformat()} is in the future", field=field)
