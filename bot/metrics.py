"""Prometheus metrics, in a registry of the app's own (nothing global).

Counters are updated as things happen; the gauges that describe stored state (processing lag, open
incidents, last delivery per source, incident documents waiting for the indexer) are read from the
database at scrape time, so they are right after a restart and across processes. So are the models' drift
figures (bot.registry.drift): decisions by outcome and confidence over the last day, people's corrections,
each kind's champion version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db.database import Database
from bot.incidents.models import OPEN_STATUSES, Incident
from bot.ingest.models import Delivery, DeliveryStatus
from bot.knowledge.models import IncidentDocument
from bot.registry import drift
from bot.registry.store import KINDS
from knowledge.alerts import SEVERITY_ORDER

DRIFT_WINDOW = timedelta(days=1)  # the models' decisions and confidence in /metrics: the last day's


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
            yield from _model_drift(session, self._clock() - DRIFT_WINDOW)


def _model_drift(session: Session, since: datetime) -> Iterator[Metric]:
    decisions = GaugeMetricFamily(
        "incibot_model_decisions",
        "The models' decisions of the last day by outcome (correlate: joined, new; classify: classified, abstained).",
        labels=["kind", "outcome"],
    )
    confidence = HistogramMetricFamily(
        "incibot_model_confidence",
        "Confidence of the last day's decisions (the correlator's join probability, the classifier's class).",
        labels=["kind"],
    )
    for kind in KINDS:
        observed = drift.observe(session, kind, since)
        for outcome, count in observed.outcomes.items():
            decisions.add_metric([kind, outcome], float(count))
        buckets = [
            (f"{bound:g}", float(count))
            for bound, count in zip(drift.CONFIDENCE_BUCKETS, observed.confidences, strict=True)
        ]
        confidence.add_metric([kind], [*buckets, ("+Inf", float(observed.confidence_count))], observed.confidence_sum)
    yield decisions
    yield confidence
    corrections = CounterMetricFamily(
        "incibot_model_corrections",
        "People's corrections by kind (merge, split, not_related, category).",
        labels=["kind"],
    )
    for kind, count in sorted(drift.corrections(session).items()):
        corrections.add_metric([kind], float(count))
    yield corrections
    champions = GaugeMetricFamily(
        "incibot_model_champion",
        "The serving version of each model kind (0: the packaged default).",
        labels=["kind", "version"],
    )
    for kind, version in drift.champions(session).items():
        champions.add_metric([kind, version], 1.0)
    yield champions
