"""The learned correlator in the worker: decisions computed before the write transaction, applied in it.

:meth:`LearnedCorrelation.prepare` runs outside any write transaction (the SQLite writer lock is shared with
ingest): it reads the next pending deliveries' new alerts, embeds their texts and decides each in order, on the
candidates it reads overlaid with what the earlier decisions will do (:mod:`bot.correlation.plan`). In the
transaction, :meth:`decide` reads the candidates again: if they are the same incidents at the same versions, the
prepared decision stands. Otherwise (another worker, a merge, a resolve, an alert applied out of the planned
order) the plan is dropped, and the event waits for the next transaction and is decided again before it, when
the transaction has done other work already (:func:`~bot.incidents.service.may_decide_later`); only as its
transaction's first work is it decided there, with the embeddings already cached.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.correlation.plan import Plan, resolved
from bot.correlation.store import ProfileStore
from bot.db.database import Database
from bot.incidents.grouping import SourceGrouping
from bot.incidents.models import Incident, IncidentAlert
from bot.incidents.service import DecideLater, may_decide_later
from bot.ingest.models import Alert, Delivery, DeliveryStatus
from bot.ingest.parsed import Action
from knowledge.correlation.correlator import Correlator, Decision
from knowledge.correlation.facts import AlertFacts, alert_facts
from knowledge.correlation.profile import IncidentProfile

log = logging.getLogger(__name__)

PREPARE_DELIVERIES = 50  # pending deliveries looked at per prepare
PREPARE_ALERTS = 200  # new alerts looked at per prepare (planned ahead at most)
PLAN_STEP = 32  # new alerts added to the plan per prepare at most
_KEEP = 2_000  # prepared decisions kept at most (a decision never applied is dropped, oldest first)
_PLANNED_INCIDENTS = 500  # a plan touching more incidents is made again from the database (each is a profile copy)


def facts_of(alert: Alert) -> AlertFacts:
    return alert_facts(alert.normalized(), alert.group_key)


class _FactsCache:
    """The facts of recently seen alerts by id (an alert never changes what correlation reads from it; prepare
    reads the next alerts again each round, and the transaction once more)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._facts: OrderedDict[int, AlertFacts] = OrderedDict()

    def __call__(self, alert: Alert) -> AlertFacts:
        facts = self._facts.get(alert.id)
        if facts is None:
            facts = self._facts[alert.id] = facts_of(alert)
            if len(self._facts) > self._size:
                self._facts.popitem(last=False)
        return facts


class LearnedCorrelation:
    """One incident per fault: the pair model decides (see :mod:`knowledge.correlation.correlator`).

    ``plan``: decide ahead on the incidents as the earlier decisions will leave them (the worker applies these
    decisions). In shadow mode they are never applied, so each is made on the database's incidents as they are."""

    def __init__(self, correlator: Correlator, store: ProfileStore, *, plan: bool = True) -> None:
        self.correlator = correlator
        self.store = store
        self._planning = plan
        self._plan = Plan()
        self._prepared: OrderedDict[int, Decision] = OrderedDict()
        self._facts = _FactsCache(_KEEP)

    def prepare(self, database: Database) -> int:
        """Decide ahead, in order, for the new alerts of the next pending deliveries not decided yet; returns how
        many were decided."""
        with database.read() as session:
            upcoming = _upcoming(session)
            if not self._prepared or len(self._plan) > _PLANNED_INCIDENTS:
                self._drop_plan()  # all of it applied (the database is what it planned), or grown large
            elif not _prefix(self._prepared, upcoming):
                self._drop_plan()  # the deliveries are applied in another order than planned
            todo = [alert_id for alert_id in upcoming if alert_id not in self._prepared][:PLAN_STEP]
            reads = []
            for alert in _load(session, todo):
                facts = self._facts(alert)
                at = upcoming[alert.id]
                reads.append((alert.id, facts, at, self.store.candidates(session, facts, at)))
        self._embed_ahead([facts.text, *(t for c in read for t in c.texts)] for _, facts, _, read in reads)
        for alert_id, facts, at, read in reads:
            candidates = self._plan.candidates(facts, read) if self._planning else read
            decision = self.correlator.decide(facts, at, candidates)
            self._prepared[alert_id] = decision
            if self._planning:
                self._plan.add(alert_id, facts, at, decision, candidates, self.correlator.components(facts))
        while len(self._prepared) > _KEEP:
            self._prepared.popitem(last=False)
        return len(reads)

    def _embed_ahead(self, texts: Iterable[list[str]]) -> None:
        """Embed the texts the decisions will compare in one batch (one model call per alert cost far more); the
        embedder's cache then answers each decision."""
        wanted = list(dict.fromkeys(t for group in texts for t in group))
        if self.correlator.embedder is not None and wanted:
            self.correlator.embedder.embed(wanted)

    def _drop_plan(self) -> None:
        self._prepared.clear()
        self._plan = Plan()

    def decide(self, session: Session, alert: Alert, at: datetime) -> Decision:
        facts = self._facts(alert)
        candidates = self.store.candidates(session, facts, at)
        prepared = self._prepared.pop(alert.id, None)
        if prepared is not None:
            decision = resolved(session, prepared)
            if decision is not None and set(decision.considered) == set(_considered(candidates)):
                return decision
        if self._planning:
            self._drop_plan()  # what follows was planned on a state the database did not reach
        if may_decide_later():
            raise DecideLater(alert.id)  # prepare decides it again, before the next transaction
        return self.correlator.decide(facts, at, candidates)

    def record(self, session: Session, incident: Incident, alert: Alert, at: datetime, decision: Decision) -> None:
        facts = self._facts(alert)
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


def _considered(candidates: Sequence[IncidentProfile]) -> tuple[tuple[int, int], ...]:
    """What a decision on ``candidates`` read: each one's (incident, version), as ``Decision.considered``."""
    return tuple((c.id, c.version) for c in candidates)


def _prefix(prepared: OrderedDict[int, Decision], upcoming: dict[int, datetime]) -> bool:
    """Whether the upcoming alerts decided ahead come before every one not decided yet (the plan's order)."""
    undecided = False
    for alert_id in upcoming:
        if alert_id not in prepared:
            undecided = True
        elif undecided:
            return False
    return True


def _upcoming(session: Session) -> dict[int, datetime]:
    """The ids of :func:`upcoming_alerts` (nothing of the alerts read), in order, with their delivery's time."""
    deliveries = session.execute(
        select(Delivery.events, Delivery.events_applied, Delivery.received_at)
        .where(Delivery.status == DeliveryStatus.PENDING)
        .order_by(Delivery.id)
        .limit(PREPARE_DELIVERIES)
    )
    wanted: dict[int, datetime] = {}
    for events, applied, received_at in deliveries:
        for alert_id, action in events[applied:]:
            if action == Action.FIRING:
                wanted.setdefault(alert_id, received_at)
            if len(wanted) >= PREPARE_ALERTS:
                break
        if len(wanted) >= PREPARE_ALERTS:
            break
    if not wanted:
        return {}
    linked = set(session.scalars(select(IncidentAlert.alert_id).where(IncidentAlert.alert_id.in_(wanted))))
    return {alert_id: at for alert_id, at in wanted.items() if alert_id not in linked}


def _load(session: Session, ids: Sequence[int]) -> list[Alert]:
    """The alerts of ``ids`` that exist, in the order given."""
    if not ids:
        return []
    alerts = {a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_(ids)))}
    return [alerts[i] for i in ids if i in alerts]


def upcoming_alerts(session: Session) -> list[tuple[Alert, datetime]]:
    """The not yet linked alerts that the next pending deliveries fire, in order, with their delivery's time."""
    upcoming = _upcoming(session)
    return [(alert, upcoming[alert.id]) for alert in _load(session, list(upcoming))]
