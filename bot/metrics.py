"""Prometheus metrics, in a registry of the app's own (nothing global).

Counters are updated as things happen; the gauges that describe stored state (processing lag, open
incidents, last delivery per source, incident documents waiting for the indexer) are read from the
database at scrape time, so they are right after a restart and across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bot.db.database import Database
from bot.incidents.models import OPEN_STATUSES, Incident
from bot.ingest.models import Delivery, DeliveryStatus
from bot.knowledge.models import IncidentDocument
from knowledge.alerts import SEVERITY_ORDER


class Metrics:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide: *_created is noise here
        self.registry = CollectorRegistry(auto_describe=True)
        self._deliveries = Counter(
            "incibot_deliveries",
            "Webhook deliveries by source and outcome (accepted, rejected, processed, failed).",
            ["source", "outcome", "reason"],
            registry=self.registry,
        )
        self.registry.register(_StoredStateCollector(database, clock))

    def delivery_accepted(self, source: str, reason: str = "ok") -> None:
        self._deliveries.labels(source, "accepted", reason).inc()

    def delivery_rejected(self, source: str, reason: str) -> None:
        self._deliveries.labels(source, "rejected", reason).inc()

    def delivery_processed(self, source: str) -> None:
        self._deliveries.labels(source, "processed", "ok").inc()

    def delivery_failed(self, source: str) -> None:
        self._deliveries.labels(source, "failed", "max_attempts").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoredStateCollector(Collector):
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._database = database
        self._clock = clock

    def describe(self) -> list[Metric]:
        return []  # collected from the database at scrape time only

    def collect(self) -> Iterator[Metric]:
        with self._database.read() as session:
            oldest = session.scalar(
                select(func.min(Delivery.received_at)).where(Delivery.status == DeliveryStatus.PENDING)
            )
            open_by_severity = {
                severity: count
                for severity, count in session.execute(
                    select(Incident.severity, func.count())
                    .where(Incident.status.in_(OPEN_STATUSES))
                    .group_by(Incident.severity)
                )
            }
            unindexed = session.scalar(
                select(func.count()).select_from(IncidentDocument).where(IncidentDocument.pending.is_(True))
            )
            last_by_source = session.execute(
                select(Delivery.source, func.max(Delivery.received_at)).group_by(Delivery.source)
            ).tuples()
            lag = GaugeMetricFamily(
                "incibot_processing_lag_seconds",
                "Age of the oldest delivery not yet processed (0 when none).",
            )
            age = 0.0 if oldest is None else (self._clock() - oldest).total_seconds()
            lag.add_metric([], max(0.0, age))
            yield lag
            incidents = GaugeMetricFamily(
                "incibot_incidents_open", "Open (triggered or acknowledged) incidents.", labels=["severity"]
            )
            for severity in sorted(set(SEVERITY_ORDER) | set(open_by_severity)):
                incidents.add_metric([severity], float(open_by_severity.get(severity, 0)))
            yield incidents
            last = GaugeMetricFamily(
                "incibot_last_delivery_timestamp_seconds",
                "Unix time of the last delivery accepted from each source.",
                labels=["source"],
            )
            for source, received_at in last_by_source:
                last.add_metric([source], received_at.timestamp())
            yield last
            backlog = GaugeMetricFamily(
                "incibot_incident_documents_pending",
                "Incident texts changed but not yet embedded and indexed (grows while search is off or behind).",
            )
            backlog.add_metric([], float(unindexed or 0))
            yield backlog
