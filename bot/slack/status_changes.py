"""The alerts' status changes of an incident in its thread, coalesced into one reply per burst.

A flapping alert resolves its incident and reopens it again and again: one thread reply per change queued
hundreds of replies for one incident in a storm, which Slack's rate limit spread over half an hour, and all day
long a reply every few minutes in real time. Such changes ("alerts resolved", "auto-resolved", "reopened") are
queued as one coalesced item per incident instead, sent after the notifier's coalescing window, or
:data:`FLAPPING_REPLY_EVERY` later while the incident flaps (:func:`flapping`); its "alerts joined" replies wait
for that reply then (:func:`held_until`). When it is sent, it reads the incident's status entries after those the
previous reply reported, up to the newest, and pins that range in its payload (a retry renders the same reply): a
few are listed, more are counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot.incidents.models import TimelineEntry
from bot.slack import mrkdwn
from bot.slack.blocks import MAX_SECTION_CHARS
from bot.slack.models import OutboxItem, OutboxKind, incident_coalesce_key

STATUS_KINDS = ("auto_resolved", "reopened", "alerts_resolved")  # timeline kinds the alerts' status changes write
LISTED = 5  # entries one reply lists in full; more are counted
FLAPPING = 4  # resolves and reopens of an incident within FLAP_WINDOW that make it flapping
FLAP_WINDOW = timedelta(minutes=10)
FLAPPING_REPLY_EVERY = timedelta(minutes=5)  # how long a status reply of a flapping incident waits for more
_CYCLE_KINDS = ("auto_resolved", "reopened")  # the whole incident going down and up (not one alert of many)
_SAID = {"auto_resolved": "auto-resolved", "reopened": "reopened", "alerts_resolved": "some alerts resolved"}
# Read for every status change of an incident (inside the worker's write transaction): built once.
_RECENT_CYCLES = (
    select(TimelineEntry.at)
    .where(TimelineEntry.incident_id == bindparam("incident_id"), TimelineEntry.kind.in_(_CYCLE_KINDS))
    .order_by(TimelineEntry.id.desc())
    .limit(FLAPPING)
)
_DUE_BY_KEY = select(OutboxItem.not_before).where(OutboxItem.coalesce_key == bindparam("key"))


def flapping(session: Session, incident_id: int, now: datetime) -> bool:
    """Whether the incident resolved and reopened :data:`FLAPPING` times within :data:`FLAP_WINDOW` (its newest
    entries are read, through the timeline's index, until that many of those are found)."""
    recent = session.scalars(_RECENT_CYCLES, {"incident_id": incident_id}).all()
    return len(recent) == FLAPPING and min(recent) >= now - FLAP_WINDOW


def held_until(session: Session, incident_id: int) -> datetime | None:
    """When the incident's pending status reply is due (None: none is pending): while it flaps, "alerts joined"
    replies wait for it too (each refire joins its alerts again). One read of the coalescing key's index."""
    return session.scalar(_DUE_BY_KEY, {"key": incident_coalesce_key(OutboxKind.STATUS_CHANGES, incident_id)})


def reported_up_to(session: Session, item: OutboxItem) -> int:
    """The last timeline entry an earlier status reply of the item's incident reported (0: none did)."""
    earlier = session.scalars(
        select(OutboxItem.payload)
        .where(
            OutboxItem.incident_id == item.incident_id,
            OutboxItem.kind == OutboxKind.STATUS_CHANGES,
            OutboxItem.id < item.id,
        )
        .order_by(OutboxItem.id.desc())
    )
    return next((int(payload["upto"]) for payload in earlier if "upto" in payload), 0)


def newest_entry(session: Session, incident_id: int) -> int:
    newest = select(TimelineEntry.id).where(TimelineEntry.incident_id == incident_id)
    return session.scalar(newest.order_by(TimelineEntry.id.desc()).limit(1)) or 0


def status_entries(session: Session, incident_id: int, after: int, upto: int) -> list[TimelineEntry]:
    return list(
        session.scalars(
            select(TimelineEntry)
            .where(
                TimelineEntry.incident_id == incident_id,
                TimelineEntry.id > after,
                TimelineEntry.id <= upto,
                TimelineEntry.kind.in_(STATUS_KINDS),
            )
            .order_by(TimelineEntry.id)
        )
    )


def status_text(entries: Sequence[TimelineEntry]) -> str:
    """The reply's text (mrkdwn, outside text escaped): each entry's line, or for more than :data:`LISTED` of
    them, how often each change happened and the latest one."""
    if not entries:
        return "The alerts' status changed."
    if len(entries) <= LISTED:
        per_line = MAX_SECTION_CHARS // len(entries) - 1
        return "\n".join(mrkdwn.escape(entry.text, per_line) for entry in entries)
    counts = Counter(entry.kind for entry in entries)
    changes = ", ".join(f"{_SAID[kind]} {_times(counts[kind])}" for kind in STATUS_KINDS if counts[kind])
    first, last = entries[0].at, entries[-1].at
    span = f"between {first:%H:%M:%S} and {last:%H:%M:%S} UTC"
    latest = mrkdwn.escape(entries[-1].text, MAX_SECTION_CHARS // 2)
    return f"{len(entries)} status changes {span} (flapping alerts): {changes}. Latest: {latest}"


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
