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

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.ingest.models import Alert, Delivery, DeliveryStatus
from bot.ingest.parsed import Action, AlertEvent, ParsedDelivery
from knowledge.alerts import AlertStatus

log = logging.getLogger(__name__)

Event = tuple[int, str]  # (alert id, Action value)


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    delivery_id: int
    events: list[Event]
    ignored: int


class DeliveryStore:
    """Writes deliveries and occurrences inside a caller's transaction."""

    def __init__(self, dialect: str, ignore_alertnames: frozenset[str]) -> None:
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._ignore = ignore_alertnames

    def record(self, session: Session, parsed: ParsedDelivery, body: bytes, now: datetime) -> StoredDelivery:
        token = uuid.uuid4().hex
        events: list[Event] = []
        ignored = 0
        for event in parsed.events:
            if event.alert.alertname in self._ignore:
                ignored += 1
                continue
            if event.alert.starts_at is not None and event.action is not Action.ACKNOWLEDGE:
                change = self._upsert_occurrence(session, event, now, token)
            else:
                change = self._apply_to_current(session, event, now, token)
            if change is not None:
                events.append(change)
        stored = parsed.stored_body if parsed.stored_body is not None else body
        delivery_id = session.execute(
            self._insert(Delivery)
            .values(
                source=parsed.source,
                received_at=now,
                order_key=parsed.order_key[:600],
                status=DeliveryStatus.PENDING if events else DeliveryStatus.DONE,
                attempts=0,
                processed_at=None if events else now,
                alert_count=len(parsed.events),
                ignored_count=ignored,
                truncated_alerts=parsed.truncated_alerts,
                body=stored.decode("utf-8", errors="replace"),
                events=events,
            )
            .returning(Delivery.id)
        ).scalar_one()
        return StoredDelivery(delivery_id, events, ignored)

    def _upsert_occurrence(self, session: Session, event: AlertEvent, now: datetime, token: str) -> Event | None:
        """One row per (fingerprint, starts_at); ``resolved`` is final; every mention refreshes last_seen."""
        alert = event.alert
        assert alert.starts_at is not None
        key = f"{alert.fingerprint}@{alert.starts_at.astimezone(UTC).isoformat()}"
        statement = self._insert(Alert).values(self._row(event, key, now, token))
        new = statement.excluded
        resolves = (Alert.status == AlertStatus.FIRING.value) & (new.status == AlertStatus.RESOLVED.value)

        def on_resolve(column: str) -> Any:
            return case((resolves, getattr(new, column)), else_=getattr(Alert, column))

        statement = statement.on_conflict_do_update(
            index_elements=[Alert.source, Alert.occurrence_key],
            set_={
                "last_seen_at": new.last_seen_at,
                **{
                    column: on_resolve(column)
                    for column in ("status", "ends_at", "resolved_received_at", "change_token")
                },
            },
        )
        row = session.execute(statement.returning(Alert.id, Alert.change_token)).one()
        return (row.id, event.action.value) if row.change_token == token else None

    def _apply_to_current(self, session: Session, event: AlertEvent, now: datetime, token: str) -> Event | None:
        """Sources without start times: one occurrence per life of the key, from trigger to resolve."""
        alert = event.alert
        current = session.execute(
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
            statement = self._insert(Alert).values(self._row(event, f"{alert.fingerprint}#{generation}", now, token))
            alert_id = session.execute(statement.on_conflict_do_nothing().returning(Alert.id)).scalar_one_or_none()
            return None if alert_id is None else (alert_id, event.action.value)
        changes: dict[str, Any] = {"last_seen_at": now}
        if event.action is Action.RESOLVED:
            changes.update(status=AlertStatus.RESOLVED.value, ends_at=now, resolved_received_at=now, change_token=token)
        session.execute(update(Alert).where(Alert.id == current.id).values(**changes))
        return None if event.action is Action.FIRING else (current.id, event.action.value)

    @staticmethod
    def _row(event: AlertEvent, occurrence_key: str, now: datetime, token: str) -> dict[str, Any]:
        alert = event.alert
        resolved = alert.status is AlertStatus.RESOLVED
        return {
            "source": alert.source,
            "occurrence_key": occurrence_key,
            "fingerprint": alert.fingerprint,
            "group_key": event.group_key[:500],
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
