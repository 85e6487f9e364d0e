"""Prometheus Alertmanager webhooks (payload version 4).

Alertmanager sends a whole alert group on every notification (and from every HA replica); storage keeps
one row per occurrence (fingerprint + ``startsAt``), so re-sends cost nothing downstream.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.ingest.parsed import Action, AlertEvent, ParsedDelivery
from bot.ingest.validation import parse_body
from knowledge.alerts import AlertStatus, alertmanager_alert

SOURCE = "alertmanager"


def _zero_time_is_none(value: object) -> object:
    # Alertmanager and Grafana write Go's zero time for "not ended yet".
    if isinstance(value, str) and value.startswith("0001-01-01"):
        return None
    return value


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str | None = None
    fingerprint: str | None = Field(default=None, max_length=128)  # Alertmanager and Grafana send 16 hex digits

    _zero_ends = field_validator("endsAt", mode="before")(_zero_time_is_none)

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp needs a timezone (RFC 3339)")
        return value


class GroupedWebhook(BaseModel):
    """The fields Alertmanager and Grafana webhooks share."""

    model_config = ConfigDict(extra="ignore")

    status: AlertStatus
    receiver: str = ""
    # No upper bound: with ``group_by: ['...']`` it holds every label of the group (bot.ingest.keys).
    groupKey: str = Field(min_length=1)
    truncatedAlerts: int = Field(default=0, ge=0)
    alerts: list[WebhookAlert]


class AlertmanagerWebhook(GroupedWebhook):
    version: Literal["4"]


def grouped_delivery(source: str, payload: GroupedWebhook) -> ParsedDelivery:
    """Turn an Alertmanager-shaped group into events, computing missing fingerprints."""
    events = []
    for alert in payload.alerts:
        normalized = alertmanager_alert(
            source=source,
            status=alert.status,
            labels=alert.labels,
            annotations=alert.annotations,
            starts_at=alert.startsAt,
            ends_at=alert.endsAt,
            generator_url=alert.generatorURL,
            fingerprint=alert.fingerprint,
        )
        events.append(AlertEvent(normalized, Action(alert.status.value), payload.groupKey))
    return ParsedDelivery(
        source=source,
        order_key=f"{source}:{payload.groupKey}",
        events=events,
        truncated_alerts=payload.truncatedAlerts,
    )


def parse(body: bytes) -> ParsedDelivery:
    return grouped_delivery(SOURCE, parse_body(AlertmanagerWebhook, body))
