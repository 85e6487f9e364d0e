"""incibot's own JSON shape, for anything that can POST JSON (scripts, cron jobs, other tools).

The shape is the pydantic model below; its JSON Schema is published as ``docs/generic-alert.schema.json``
(a test keeps the two identical). An alert with ``starts_at`` is one occurrence per (fingerprint,
``starts_at``), like Alertmanager; without it, a firing alert stays one occurrence until it is resolved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from bot.ingest.parsed import Action, AlertEvent, ParsedDelivery
from bot.ingest.validation import parse_body
from knowledge.alerts import AlertStatus, NormalizedAlert
from knowledge.fingerprint import labels_fingerprint

SOURCE = "generic"


def _scalar_to_str(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


LabelValue = Annotated[str, BeforeValidator(_scalar_to_str)]


class GenericAlert(BaseModel):
    """One alert."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Alert name, e.g. DiskAlmostFull.")
    status: AlertStatus = Field(default=AlertStatus.FIRING, description="firing (default) or resolved.")
    severity: str | None = Field(default=None, max_length=32, description="critical, error, warning, info.")
    summary: str | None = Field(default=None, max_length=2000, description="One line for humans.")
    description: str | None = Field(default=None, max_length=20_000)
    labels: dict[str, LabelValue] = Field(default_factory=dict, description="Identifying labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Extra text (runbook_url, ...).")
    starts_at: datetime | None = Field(default=None, description="RFC 3339, when the condition began.")
    ends_at: datetime | None = Field(default=None, description="RFC 3339, when it ended (resolved).")
    fingerprint: str | None = Field(
        default=None, max_length=128, description="Stable identity; default: hash of name + labels."
    )
    group_key: str | None = Field(
        default=None, max_length=400, description="Alerts with one group key form one incident."
    )
    url: str | None = Field(default=None, max_length=2000, description="Link to the source of the alert.")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp needs a timezone (RFC 3339)")
        return value


class GenericWebhook(BaseModel):
    """A batch of alerts sent to ``POST /alerts/generic``."""

    model_config = ConfigDict(extra="forbid", title="incibot generic alert webhook")

    group_key: str | None = Field(
        default=None, max_length=400, description="Default group key for alerts that give none."
    )
    alerts: list[GenericAlert] = Field(min_length=1, max_length=1000)


def parse(body: bytes) -> ParsedDelivery:
    payload = parse_body(GenericWebhook, body)
    events = []
    for item in payload.alerts:
        labels = {**item.labels, "alertname": item.name}
        if item.severity:
            labels["severity"] = item.severity
        annotations = dict(item.annotations)
        if item.summary:
            annotations["summary"] = item.summary
        if item.description:
            annotations["description"] = item.description
        fingerprint = item.fingerprint or labels_fingerprint(labels)
        alert = NormalizedAlert(
            source=SOURCE,
            status=item.status,
            fingerprint=fingerprint,
            labels=labels,
            annotations=annotations,
            starts_at=item.starts_at,
            ends_at=item.ends_at,
            generator_url=item.url,
        )
        group_key = item.group_key or payload.group_key or fingerprint
        events.append(AlertEvent(alert, Action(item.status.value), group_key))
    first_group = events[0].group_key
    return ParsedDelivery(source=SOURCE, order_key=f"{SOURCE}:{first_group}", events=events)


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of the generic webhook body."""
    schema = GenericWebhook.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
