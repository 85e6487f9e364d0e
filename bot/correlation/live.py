"""The learned correlator in the worker: decisions computed before the write transaction, applied in it.

:meth:`LearnedCorrelation.prepare` runs outside any write transaction (the SQLite writer lock is shared with
ingest): it reads the next pending deliveries' new alerts, embeds their texts and decides each against the
candidates it reads. In the transaction, :meth:`decide` reads the candidates again: if they are the same
incidents at the same versions, the prepared decision stands; otherwise (another worker, a merge, an incident
opened earlier in the batch) it decides again there, with the embeddings already cached.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.correlation.store import ProfileStore
from bot.db.database import Database
from bot.incidents.grouping import SourceGrouping
from bot.incidents.models import Incident, IncidentAlert
from bot.ingest.models import Alert, Delivery, DeliveryStatus
from bot.ingest.parsed import Action
from knowledge.correlation.correlator import Correlator, Decision
from knowledge.correlation.facts import AlertFacts, alert_facts

log = logging.getLogger(__name__)

PREPARE_DELIVERIES = 50  # pending deliveries looked at per prepare
PREPARE_ALERTS = 200  # new alerts decided ahead per prepare
_KEEP = 2_000  # prepared decisions kept at most (a decision never applied is dropped, oldest first)


def facts_of(alert: Alert) -> AlertFacts:
    return alert_facts(alert.normalized(), alert.group_key)


class LearnedCorrelation:
    """One incident per fault: the pair model decides (see :mod:`knowledge.correlation.correlator`)."""

    def __init__(self, correlator: Correlator, store: ProfileStore) -> None:
        self.correlator = correlator
        self.store = store
        self._prepared: OrderedDict[int, Decision] = OrderedDict()
        self._last: tuple[Alert, AlertFacts] | None = None  # the alert just decided, for its record

    def prepare(self, database: Database) -> int:
        """Decide ahead for the new alerts of the next pending deliveries; returns how many were decided."""
        with database.read() as session:
            upcoming = []
            for alert, received_at in _upcoming_alerts(session, self._prepared):
                facts = facts_of(alert)
                upcoming.append((alert.id, facts, received_at, self.store.candidates(session, facts, received_at)))
        self._embed_ahead(
            [facts.text, *(t for c in candidates for t in c.texts)] for _, facts, _, candidates in upcoming
        )
        for alert_id, facts, received_at, candidates in upcoming:
            self._prepared[alert_id] = self.correlator.decide(facts, received_at, candidates)
        while len(self._prepared) > _KEEP:
            self._prepared.popitem(last=False)
        return len(upcoming)

    def _embed_ahead(self, texts: Iterable[list[str]]) -> None:
        """Embed the texts the decisions will compare in one batch (one model call per alert cost far more); the
        embedder's cache then answers each decision."""
        wanted = list(dict.fromkeys(t for group in texts for t in group))
        if self.correlator.embedder is not None and wanted:
            self.correlator.embedder.embed(wanted)

    def decide(self, session: Session, alert: Alert, at: datetime) -> Decision:
        facts = facts_of(alert)
        self._last = (alert, facts)
        candidates = self.store.candidates(session, facts, at)
        prepared = self._prepared.pop(alert.id, None)
        if prepared is not None and prepared.considered == tuple((c.id, c.version) for c in candidates):
            return prepared
        return self.correlator.decide(facts, at, candidates)

    def record(self, session: Session, incident: Incident, alert: Alert, at: datetime, decision: Decision) -> None:
        facts = self._last[1] if self._last is not None and self._last[0] is alert else facts_of(alert)
        self._last = None
        self.store.record(session, incident, facts, at, self.correlator.components(facts))


class ShadowCorrelation:
    """Incidents follow the source's groups; the learned correlator decides too, and its decision is recorded on
    the alert's link (``shadow_reason``) and logged, so people can compare before they switch."""

    def __init__(self, source: SourceGrouping, learned: LearnedCorrelation) -> None:
        self.source = source
        self.learned = learned
        self._shadow: dict[int, Decision] = {}

    def prepare(self, database: Database) -> int:
        return self.learned.prepare(database)

    def decide(self, session: Session, alert: Alert, at: datetime) -> Decision:
        self._shadow[alert.id] = self.learned.decide(session, alert, at)
        return self.source.decide(session, alert, at)

    def record(self, session: Session, incident: Incident, alert: Alert, at: datetime, decision: Decision) -> None:
        self.learned.record(session, incident, alert, at, decision)
        shadow = self._shadow.pop(alert.id, None)
        if shadow is None:
            return
        would = "open a new incident" if shadow.incident is None else f"join #{shadow.incident}"
        agrees = shadow.incident == decision.incident or (shadow.incident is None and decision.incident is None)
        text = f"{'agrees' if agrees else 'differs'}: would {would} ({shadow.reason})"
        link = session.get(IncidentAlert, (incident.id, alert.id))
        if link is not None:
            link.shadow_reason = text
        log.info("shadow correlation: alert %d (%s) → #%d; learned %s", alert.id, alert.alertname, incident.id, text)


def _upcoming_alerts(session: Session, prepared: OrderedDict[int, Decision]) -> Sequence[tuple[Alert, datetime]]:
    """The not yet linked alerts that the next pending deliveries fire, in order, with their delivery's time."""
    deliveries = session.execute(
        select(Delivery.events, Delivery.events_applied, Delivery.received_at)
        .where(Delivery.status == DeliveryStatus.PENDING)
        .order_by(Delivery.id)
        .limit(PREPARE_DELIVERIES)
    )
    wanted: dict[int, datetime] = {}
    for events, applied, received_at in deliveries:
        for alert_id, action in events[applied:]:
            if action == Action.FIRING and alert_id not in prepared:
                wanted.setdefault(alert_id, received_at)
            if len(wanted) >= PREPARE_ALERTS:
                break
        if len(wanted) >= PREPARE_ALERTS:
            break
    if not wanted:
        return []
    linked = set(session.scalars(select(IncidentAlert.alert_id).where(IncidentAlert.alert_id.in_(wanted))))
    alerts = {a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_(wanted)))}
    return [(alerts[i], at) for i, at in wanted.items() if i in alerts and i not in linked]
