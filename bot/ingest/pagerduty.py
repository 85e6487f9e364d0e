"""PagerDuty Events API v2 (``/v2/enqueue``), for senders that speak PagerDuty.

The ``routing_key`` is the sender's credential (many senders cannot add a header), so it is checked like
an ingest token, replaced by a short non-reversible id before anything is stored, and never logged.
An occurrence is one life of a ``dedup_key``: after a resolve, the same key starts a new incident.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.ingest.parsed import Action, AlertEvent, ParsedDelivery
from bot.ingest.validation import parse_body
from knowledge.alerts import AlertStatus, NormalizedAlert

SOURCE = "pagerduty"
REDACTED = "[redacted]"

_ACTIONS = {"trigger": Action.FIRING, "acknowledge": Action.ACKNOWLEDGE, "resolve": Action.RESOLVED}


class EventPayload(BaseModel):
    """PagerDuty documents length limits for ``summary`` (1024) and ``dedup_key`` (255) only: those are kept,
    the other strings are not bounded here either."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: datetime | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: Any = None


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore")

    routing_key: str = Field(min_length=1, max_length=128)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, min_length=1, max_length=255)
    payload: EventPayload | None = None
    client: str | None = None
    client_url: str | None = None

    @model_validator(mode="after")
    def _required_by_action(self) -> Event:
        if self.event_action == "trigger" and self.payload is None:
            raise ValueError("payload is required for a trigger event")
        if self.event_action != "trigger" and self.dedup_key is None:
            raise ValueError(f"dedup_key is required for an {self.event_action} event")
        return self


def routing_key_from(body: bytes) -> str | None:
    """The routing key of a body, read leniently so it can be checked before strict validation."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    key = document.get("routing_key") if isinstance(document, dict) else None
    return key if isinstance(key, str) else None


def integration_id(routing_key: str) -> str:
    """A short, non-reversible stand-in for a routing key, safe to store and show."""
    return hashlib.sha256(routing_key.encode()).hexdigest()[:12]


def parse(body: bytes) -> ParsedDelivery:
    event = parse_body(Event, body)
    dedup_key = event.dedup_key or uuid.uuid4().hex
    identity = f"{integration_id(event.routing_key)}:{dedup_key}"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if event.payload is not None:
        details = event.payload
        labels = {"alertname": details.class_ or details.summary[:200], "source": details.source}
        labels.update(
            {
                name: value
                for name, value in (
                    ("component", details.component),
                    ("group", details.group),
                    ("class", details.class_),
                )
                if value
            }
        )
        annotations = {"summary": details.summary}
        if details.custom_details is not None:
            annotations["custom_details"] = orjson.dumps(details.custom_details).decode()
    action = _ACTIONS[event.event_action]
    alert = NormalizedAlert(
        source=SOURCE,
        status=AlertStatus.RESOLVED if action is Action.RESOLVED else AlertStatus.FIRING,
        fingerprint=identity,
        labels=labels,
        annotations=annotations,
        generator_url=event.client_url,
        severity_hint=event.payload.severity if event.payload else None,
    )
    document = orjson.loads(body)
    document["routing_key"] = REDACTED
    return ParsedDelivery(
        source=SOURCE,
        order_key=f"{SOURCE}:{identity}",
        events=[AlertEvent(alert, action, identity)],
        reply={"dedup_key": dedup_key},
        stored_body=orjson.dumps(document),
    )
