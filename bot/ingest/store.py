"""Stores a parsed delivery and decides, atomically, what it changes.

Every accepted body becomes a ``deliveries`` row. Each alert in it is upserted as an occurrence; only
real changes (a new firing occurrence, firing → resolved, an acknowledge of a live one) are recorded as
the delivery's ``events`` for the worker. Re-sends, HA duplicates and stale firings after a resolve
change nothing but the occurrence's ``last_seen_at``. Each delivery stamps the rows it changes with a
fresh ``change_token``, which is how one upsert statement tells a change from a re-send.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, String, Table, TextualSelect, bindparam, insert, select, text, update
from sqlalchemy.engine import Connection

from bot.ingest.keys import bounded_key
from bot.ingest.models import ORDER_KEY_LENGTH, Alert, Delivery, DeliveryStatus
from bot.ingest.parsed import Action, AlertEvent, ParsedDelivery
from knowledge.alerts import AlertStatus

log = logging.getLogger(__name__)

Event = tuple[int, str]  # (alert id, Action value)

# The upserts are plain SQL that SQLite and PostgreSQL both speak: SQLAlchemy's dialect-specific
# ``insert(...).on_conflict_*`` constructs are not cacheable and cost milliseconds to compile per call.
_ALERT_COLUMNS = (
    "source", "occurrence_key", "fingerprint", "group_key", "alertname", "status", "severity", "labels",
    "annotations", "starts_at", "ends_at", "generator_url", "severity_hint", "received_at",
    "resolved_received_at", "last_seen_at", "change_token",
)  # fmt: skip
_CHANGED_BY_RESOLVE = ("status", "ends_at", "resolved_received_at", "change_token")
_RESOLVES = "alerts.status = 'firing' AND excluded.status = 'resolved'"


def _insert_alert(on_conflict: str) -> TextualSelect:
    columns = ", ".join(_ALERT_COLUMNS)
    values = ", ".join(f":{column}" for column in _ALERT_COLUMNS)
    statement = text(  # built from the constants above, never from input
        f"INSERT INTO alerts ({columns}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT (source, occurrence_key) {on_conflict} RETURNING id, change_token"
    )
    types = Alert.__table__.c
    return statement.bindparams(*(bindparam(c, type_=types[c].type) for c in _ALERT_COLUMNS)).columns(
        id=Integer, change_token=String
    )


# Insert an occurrence; on a re-send only refresh last_seen_at, unless it resolves a firing one.
UPSERT_OCCURRENCE = _insert_alert(
    "DO UPDATE SET last_seen_at = excluded.last_seen_at, "
    + ", ".join(f"{c} = CASE WHEN {_RESOLVES} THEN excluded.{c} ELSE alerts.{c} END" for c in _CHANGED_BY_RESOLVE)
)
INSERT_GENERATION = _insert_alert("DO NOTHING")
# A Core insert of the table (not the ORM entity): compiled once, cached after.
_DELIVERIES: Table = Delivery.__table__  # type: ignore[assignment]
INSERT_DELIVERY = insert(_DELIVERIES).returning(_DELIVERIES.c.id)


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    delivery_id: int
    events: list[Event]
    ignored: int


class DeliveryStore:
    """Writes deliveries and occurrences inside a caller's transaction (Core only: this is the hot path)."""

    def __init__(self, ignore_alertnames: frozenset[str]) -> None:
        self._ignore = ignore_alertnames

    def record(self, connection: Connection, parsed: ParsedDelivery, body: bytes, now: datetime) -> StoredDelivery:
        token = uuid.uuid4().hex
        events: list[Event] = []
        ignored = 0
        for event in parsed.events:
            if event.alert.alertname in self._ignore:
                ignored += 1
                continue
            if event.alert.starts_at is not None and event.action is not Action.ACKNOWLEDGE:
                change = self._upsert_occurrence(connection, event, now, token)
            else:
                change = self._apply_to_current(connection, event, now, token)
            if change is not None:
                events.append(change)
        stored = parsed.stored_body if parsed.stored_body is not None else body
        delivery_id = connection.execute(
            INSERT_DELIVERY,
            {
                "source": parsed.source,
                "received_at": now,
                "order_key": bounded_key(parsed.order_key, ORDER_KEY_LENGTH),
                "status": DeliveryStatus.PENDING if events else DeliveryStatus.DONE,
                "attempts": 0,
                "processed_at": None if events else now,
                "alert_count": len(parsed.events),
                "ignored_count": ignored,
                "truncated_alerts": parsed.truncated_alerts,
                "body": stored.decode("utf-8", errors="replace"),
                "events": events,
            },
        ).scalar_one()
        return StoredDelivery(delivery_id, events, ignored)

    def _upsert_occurrence(self, connection: Connection, event: AlertEvent, now: datetime, token: str) -> Event | None:
        """One row per (fingerprint, starts_at); ``resolved`` is final; every mention refreshes last_seen."""
        alert = event.alert
        assert alert.starts_at is not None
        key = f"{alert.fingerprint}@{alert.starts_at.astimezone(UTC).isoformat()}"
        row = connection.execute(UPSERT_OCCURRENCE, self._row(event, key, now, token)).one()
        return (row.id, event.action.value) if row.change_token == token else None

    def _apply_to_current(self, connection: Connection, event: AlertEvent, now: datetime, token: str) -> Event | None:
        """Sources without start times: one occurrence per life of the key, from trigger to resolve."""
        alert = event.alert
        current = connection.execute(
            select(Alert.id, Alert.status, Alert.occurrence_key)
            .where(Alert.source == alert.source, Alert.fingerprint == alert.fingerprint)
            .order_by(Alert.id.desc())
            .limit(1)
        ).first()
        if current is None or current.status != AlertStatus.FIRING.value:
            if event.action is not Action.FIRING:
                log.info(
                    "%s %s for unknown or resolved key %s; ignored",
                    alert.source,
                    event.action,
                    alert.fingerprint,
                )
                return None
            generation = 0 if current is None else int(current.occurrence_key.rpartition("#")[2]) + 1
            row = connection.execute(
                INSERT_GENERATION, self._row(event, f"{alert.fingerprint}#{generation}", now, token)
            ).first()
            return None if row is None else (row.id, event.action.value)
        changes: dict[str, Any] = {"last_seen_at": now}
        if event.action is Action.RESOLVED:
            changes.update(status=AlertStatus.RESOLVED.value, ends_at=now, resolved_received_at=now, change_token=token)
        connection.execute(update(Alert).where(Alert.id == current.id).values(**changes))
        return None if event.action is Action.FIRING else (current.id, event.action.value)

    @staticmethod
    def _row(event: AlertEvent, occurrence_key: str, now: datetime, token: str) -> dict[str, Any]:
        alert = event.alert
        resolved = alert.status is AlertStatus.RESOLVED
        return {
            "source": alert.source,
            "occurrence_key": occurrence_key,
            "fingerprint": alert.fingerprint,
            "group_key": event.group_key,
            "alertname": alert.alertname[:200],
            "status": alert.status.value,
            "severity": alert.severity,
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "starts_at": alert.starts_at,
            "ends_at": alert.ends_at,
            "generator_url": alert.generator_url,
            "severity_hint": alert.severity_hint,
            "received_at": now,
            "resolved_received_at": now if resolved else None,
            "last_seen_at": now,
            "change_token": token,
        }
