"""Incidents, their alerts, and their timeline."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.base import Base, JSONDocument
from bot.ingest.models import Alert


class IncidentStatus(enum.StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


OPEN_STATUSES = (IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED)
GROUP_KEY_LENGTH = 600  # longer group keys are stored by digest (bot.ingest.keys); the alerts keep them in full
SERVICE_LENGTH = 200


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_group", "group_key", "status"),
        Index("ix_incidents_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[IncidentStatus] = mapped_column(String(16), default=IncidentStatus.TRIGGERED)
    title: Mapped[str] = mapped_column(String(500))
    severity: Mapped[str] = mapped_column(String(16))
    service: Mapped[str | None] = mapped_column(String(SERVICE_LENGTH))
    source: Mapped[str] = mapped_column(String(32))
    group_key: Mapped[str] = mapped_column(String(GROUP_KEY_LENGTH))
    alert_count: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[datetime]
    last_alert_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    commander: Mapped[str | None] = mapped_column(String(200))
    quiet_flagged_at: Mapped[datetime | None]
    # Where the incident's Slack message lives (filled by the Slack integration).
    slack_channel: Mapped[str | None] = mapped_column(String(64))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    incident_channel: Mapped[str | None] = mapped_column(String(64))  # the optional per-incident channel
    alerts_reported: Mapped[int] = mapped_column(default=0, server_default="0")  # alerts already in the thread
    # What the correlator knows of it (knowledge.correlation.profile.IncidentProfile.to_json), and a counter
    # bumped on every change: a decision read at one version is applied only at that version.
    correlation: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    correlation_version: Mapped[int] = mapped_column(default=0, server_default="0")
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    # Its category (knowledge.classify.categories); None while unclassified (the classifier abstained). Who set it:
    # "model" (with the model version and its confidence) or "person" (a pick or a correction).
    category: Mapped[str | None] = mapped_column(String(40))
    category_confidence: Mapped[float | None]
    category_source: Mapped[str | None] = mapped_column(String(16))
    category_model: Mapped[str | None] = mapped_column(String(80))

    alerts: Mapped[list[Alert]] = relationship(
        secondary="incident_alerts", order_by="Alert.id", lazy="raise_on_sql", viewonly=True
    )
    timeline: Mapped[list[TimelineEntry]] = relationship(
        order_by="TimelineEntry.id", lazy="raise_on_sql", viewonly=True
    )

    @property
    def is_open(self) -> bool:
        return self.status != IncidentStatus.RESOLVED


class IncidentAlert(Base):
    """Links an alert occurrence to the incident it belongs to."""

    __tablename__ = "incident_alerts"
    __table_args__ = (Index("ix_incident_alerts_alert", "alert_id"),)

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    linked_at: Mapped[datetime]
    # Why it joined (or opened) the incident: the correlator's decision, kept for people and for training.
    decision: Mapped[str | None] = mapped_column(String(16))
    probability: Mapped[float | None]
    reason: Mapped[str | None] = mapped_column(Text)
    shadow_reason: Mapped[str | None] = mapped_column(Text)  # INCIBOT_CORRELATION=shadow: what it would have done


class IncidentKey(Base):
    """The correlator's candidate index: an incident under each key of its alerts (entity, cluster, fingerprint),
    with when an alert with that key last joined, so that candidates are the most recent per key, never a scan."""

    __tablename__ = "incident_keys"
    __table_args__ = (Index("ix_incident_keys_recent", "key", "last_at"),)

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    last_at: Mapped[datetime]


class CorrelationFeedback(Base):
    """A person's correction (merge, split, "not related") as labelled pairs for the next training run."""

    __tablename__ = "correlation_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # merge | split | not_related
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    related: Mapped[bool]  # the label: do the alert and the incident belong together?
    features: Mapped[list[float]] = mapped_column(JSONDocument)  # the pair's row of FEATURES at correction time


class CategoryLabel(Base):
    """A person's category for an incident (a pick from the menu or a correction): a labelled example for the next
    classifier training, with who and when. One per incident: a later pick replaces it (and is trained on once)."""

    __tablename__ = "category_labels"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"), unique=True)
    category: Mapped[str] = mapped_column(String(40))
    previous: Mapped[str | None] = mapped_column(String(40))  # what it was before (None: unclassified)
    model_confidence: Mapped[float | None]  # the model's confidence in ``previous`` when it set it
    texts: Mapped[list[str]] = mapped_column(JSONDocument)  # the incident's alert texts: the example itself


class TimelineEntry(Base):
    """Who did what to an incident, and when."""

    __tablename__ = "timeline_entries"
    __table_args__ = (Index("ix_timeline_incident", "incident_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
