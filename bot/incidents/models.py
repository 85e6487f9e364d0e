"""Incidents, their alerts, and their timeline."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.base import Base
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
