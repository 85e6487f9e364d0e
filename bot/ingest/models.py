"""What ingestion stores: raw deliveries (the durable queue) and alert occurrences."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, UniqueConstraint, bindparam, select
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONDocument
from knowledge.alerts import AlertStatus, NormalizedAlert

ORDER_KEY_LENGTH = 600  # longer order keys are stored by digest (bot.ingest.keys)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Delivery(Base):
    """One accepted webhook request: its body as received, and the occurrence changes it caused.

    Deliveries are the work queue of the processing worker: ``pending`` until processed (``done``) or
    given up after too many attempts (``failed``). ``order_key`` keeps one group's deliveries in order.
    A large delivery is applied in chunks, each committed with ``events_applied`` (how many of ``events``
    are applied), so a restart resumes after the last committed chunk.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_queue", "status", "id"),
        Index("ix_deliveries_order_key", "order_key", "id"),
        Index("ix_deliveries_source_received", "source", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]
    order_key: Mapped[str] = mapped_column(String(ORDER_KEY_LENGTH))
    status: Mapped[DeliveryStatus] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]
    alert_count: Mapped[int] = mapped_column(default=0)
    ignored_count: Mapped[int] = mapped_column(default=0)
    truncated_alerts: Mapped[int] = mapped_column(default=0)
    body: Mapped[str] = mapped_column(Text)
    # Occurrence changes decided at ingest, applied to incidents by the worker: [[alert_id, kind], ...]
    events: Mapped[list[Any]] = mapped_column(JSONDocument, default=list)
    events_applied: Mapped[int] = mapped_column(default=0, server_default="0")


class Alert(Base):
    """One occurrence of an alert: a fingerprint firing from ``starts_at`` until resolved.

    ``occurrence_key`` is unique per source, so re-sent and concurrent copies store one row. ``resolved``
    is final for an occurrence.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("source", "occurrence_key", name="uq_alerts_occurrence"),
        Index("ix_alerts_identity", "source", "fingerprint", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    occurrence_key: Mapped[str] = mapped_column(String(400))
    fingerprint: Mapped[str] = mapped_column(String(300))
    group_key: Mapped[str] = mapped_column(Text)  # in full, however long (the source's own group key)
    alertname: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, str]] = mapped_column(JSONDocument)
    annotations: Mapped[dict[str, str]] = mapped_column(JSONDocument)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    generator_url: Mapped[str | None] = mapped_column(Text)
    severity_hint: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[datetime]
    resolved_received_at: Mapped[datetime | None]
    # When a delivery last mentioned this occurrence (re-sends included): tells a quiet source apart.
    last_seen_at: Mapped[datetime]
    # Set by the delivery that last changed the row (insert or resolve), so an upsert can tell whether
    # it changed anything: a re-send leaves it alone.
    change_token: Mapped[str] = mapped_column(String(32))

    def normalized(self) -> NormalizedAlert:
        """This occurrence as the library's alert type (for titles, severity, and later search)."""
        return NormalizedAlert(
            source=self.source,
            status=AlertStatus(self.status),
            fingerprint=self.fingerprint,
            labels=self.labels,
            annotations=self.annotations,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            generator_url=self.generator_url,
            severity_hint=self.severity_hint,
        )


# Alerts by id (bound as ``ids``), oldest first, read every round by the worker, its preparers and the embedding
# prefetch: built once (building a statement and its cache key costs more than running this one).
ALERTS_BY_ID = select(Alert).where(Alert.id.in_(bindparam("ids", expanding=True))).order_by(Alert.id)
