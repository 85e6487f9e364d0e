"""Which incident an alert joins: the grouping interface and today's rule.

Today an incident is one source group: Alertmanager/Grafana ``groupKey``, PagerDuty routing key +
``dedup_key``, the generic ``group_key`` (else the fingerprint). A learned correlator can replace
:class:`SourceGroupGrouper` without touching the lifecycle code.
"""

from __future__ import annotations

from typing import Protocol

from bot.ingest.models import Alert


class Grouper(Protocol):
    def group_key(self, alert: Alert) -> str:
        """The key shared by all alerts that belong in one open incident."""
        ...


class SourceGroupGrouper:
    """Groups alerts exactly as their source grouped them."""

    def group_key(self, alert: Alert) -> str:
        return f"{alert.source}:{alert.group_key}"
