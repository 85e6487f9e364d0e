"""What an adapter makes of a webhook body: alert events ready to be stored."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from knowledge.alerts import NormalizedAlert


class Action(enum.StrEnum):
    """What an event asks of its alert occurrence."""

    FIRING = "firing"
    RESOLVED = "resolved"
    ACKNOWLEDGE = "acknowledge"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert in a delivery, with the group it belongs to at its source."""

    alert: NormalizedAlert
    action: Action
    group_key: str


@dataclass(slots=True)
class ParsedDelivery:
    """A validated webhook body.

    ``order_key`` keeps deliveries of one source group in arrival order during processing;
    ``reply`` is merged into the 202 answer (PagerDuty's ``dedup_key``); ``stored_body`` replaces the raw
    body in storage when the raw one carries a secret (PagerDuty's routing key).
    """

    source: str
    order_key: str
    events: list[AlertEvent]
    truncated_alerts: int = 0
    reply: dict[str, str] = field(default_factory=dict)
    stored_body: bytes | None = None
