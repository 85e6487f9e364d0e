"""Grafana unified alerting webhooks (contact point type "webhook").

Grafana's payload extends Alertmanager's (same alert objects, ``groupKey`` and ``truncatedAlerts``), so
it shares the Alertmanager conversion.
"""

from __future__ import annotations

from bot.ingest.alertmanager import GroupedWebhook, grouped_delivery
from bot.ingest.parsed import ParsedDelivery
from bot.ingest.validation import parse_body

SOURCE = "grafana"


class GrafanaWebhook(GroupedWebhook):
    orgId: int | None = None


def parse(body: bytes) -> ParsedDelivery:
    return grouped_delivery(SOURCE, parse_body(GrafanaWebhook, body))
