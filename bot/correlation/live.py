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
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot.correlation.plan import Plan, Recent, resolved
from bot.correlation.store import ProfileStore
from bot.db.database import Database
from bot.incidents.grouping import SourceGrouping
from bot.incidents.models import Incident, IncidentAlert
from bot.incidents.service import DecideLater, may_decide_later
from bot.ingest.models import ALERTS_BY_ID, Alert, Delivery, DeliveryStatus
from bot.ingest.parsed import Action
from knowledge.alerts import AlertStatus
from knowledge.correlation.correlator import Correlator, Decision
from knowledge.correlation.facts import AlertFacts, alert_facts
from knowledge.correlation.profile import IncidentProfile

log = logging.getLogger(__name__)

PREPARE_DELIVERIES = 50  # pending deliveries looked at per prepare
PREPARE_ALERTS = 200  # new alerts looked at per prepare (planned ahead at most)
PLAN_STEP = 32  # new alerts added to the plan per prepare at most
_KEEP = 2_000  # prepared decisions kept at most (a decision never applied is dropped, oldest first)
_PLANNED_INCIDENTS = 500  # a plan touching more incidents is made again from the database (each is a profile copy)
# Read every round (before each write transaction), built once.
_NEXT_PENDING = (
    select(Delivery.events, Delivery.events_applied, Delivery.received_at)
    .where(Delivery.status == DeliveryStatus.PENDING)
    .order_by(Delivery.id)
    .limit(PREPARE_DELIVERIES)
)
_LINKED = select(IncidentAlert.alert_id).where(IncidentAlert.alert_id.in_(bindparam("ids", expanding=True)))


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
            elif not _prefix(self._prepared, upcoming.firing):
                self._drop_plan()  # the deliveries are applied in another order than planned
            todo = [alert_id for alert_id in upcoming.firing if alert_id not in self._prepared][:PLAN_STEP]
            reads = []
            for alert in _load(session, todo):
                facts = self._facts(alert)
                at = upcoming.firing[alert.id]
                fires = alert.status == AlertStatus.FIRING.value
                recent = self.store.recent(session, facts) if self._planning else {}
                reads.append(_Read(alert.id, facts, at, fires, self.store.candidates(session, facts, at), recent))
            resolves = None
            if self._planning:
                resolves = _Resolves.read(session, self.store, self._plan, upcoming, todo, reads)
        self._embed_ahead([read.facts.text, *(t for c in read.candidates for t in c.texts)] for read in reads)
        for read in reads:
            if resolves is not None:
                resolves.apply(self._plan, read.alert_id)
            candidates = (
                self._plan.candidates(read.facts, read.candidates, read.recent) if self._planning else read.candidates
            )
            decision = self.correlator.decide(read.facts, read.at, candidates)
            self._prepared[read.alert_id] = decision
            if self._planning:
                components = self.correlator.components(read.facts)
                self._plan.add(read.alert_id, read.facts, read.at, decision, candidates, components, fires=read.fires)
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
        rows = self.store.candidate_rows(session, facts, at)
        prepared = self._prepared.pop(alert.id, None)
        if prepared is not None:
            decision = resolved(session, prepared)
            # The same incidents at the same versions: it stands, and no profile is built (this is the write lock).
            if decision is not None and set(decision.considered) == {(r.id, r.correlation_version) for r in rows}:
                return decision
        if self._planning:
            self._drop_plan()  # what follows was planned on a state the database did not reach
        if may_decide_later():
            raise DecideLater(alert.id)  # prepare decides it again, before the next transaction
        return self.correlator.decide(facts, at, self.store.profiles_of(session, rows))

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


def _prefix(prepared: OrderedDict[int, Decision], upcoming: dict[int, datetime]) -> bool:
    """Whether the upcoming alerts decided ahead come before every one not decided yet (the plan's order)."""
    undecided = False
    for alert_id in upcoming:
        if alert_id not in prepared:
            undecided = True
        elif undecided:
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Upcoming:
    """What the next pending deliveries do that correlation plans for."""

    firing: dict[int, datetime]  # the alerts they fire, not linked yet, in order, with their delivery's time
    resolves: dict[int, list[tuple[int, datetime]]]  # per alert of ``firing``: alerts resolved since the one before


def _upcoming(session: Session) -> _Upcoming:
    """The new alerts of the next pending deliveries, and the resolves between them. A delivery's resolves count
    after its new alerts, as the worker settles its incidents once the delivery's events are applied."""
    deliveries = session.execute(_NEXT_PENDING)
    wanted: dict[int, datetime] = {}
    steps: list[tuple[list[int], list[int], datetime]] = []  # per delivery: alerts fired first, resolved
    for events, applied, received_at in deliveries:
        fired: list[int] = []
        resolved: list[int] = []
        for alert_id, action in events[applied:]:
            if action == Action.FIRING and alert_id not in wanted:
                wanted[alert_id] = received_at
                fired.append(alert_id)
                if len(wanted) >= PREPARE_ALERTS:
                    break
            elif action == Action.RESOLVED:
                resolved.append(alert_id)
        steps.append((fired, resolved, received_at))
        if len(wanted) >= PREPARE_ALERTS:
            break
    if not wanted:
        return _Upcoming({}, {})
    linked = set(session.scalars(_LINKED, {"ids": list(wanted)}))
    firing: dict[int, datetime] = {}
    resolves: dict[int, list[tuple[int, datetime]]] = {}
    since: list[tuple[int, datetime]] = []
    for fired, resolved, received_at in steps:
        for alert_id in fired:
            if alert_id not in linked:
                firing[alert_id] = received_at
                if since:
                    resolves[alert_id], since = since, []
        since += [(alert_id, received_at) for alert_id in resolved]
    return _Upcoming(firing, resolves)


@dataclass(frozen=True, slots=True)
class _Read:
    """What a prepare read for one upcoming alert: its candidates in the database, and the per-key lists they were
    found through (planning only)."""

    alert_id: int
    facts: AlertFacts
    at: datetime
    fires: bool
    candidates: list[IncidentProfile]
    recent: Recent


@dataclass(slots=True)
class _Resolves:
    """The resolves a prepare plans, with what the database says of them: the incident each resolved alert is
    linked to, those incidents' profiles, and which incidents have a linked alert that fires."""

    before: dict[int, list[tuple[int, datetime]]]
    linked: dict[int, int]
    stored: dict[int, IncidentProfile]
    firing: set[int]

    @classmethod
    def read(
        cls,
        session: Session,
        store: ProfileStore,
        plan: Plan,
        upcoming: _Upcoming,
        todo: Sequence[int],
        reads: Sequence[_Read],
    ) -> _Resolves:
        before = {alert_id: upcoming.resolves[alert_id] for alert_id in todo if alert_id in upcoming.resolves}
        resolved = {alert_id for pairs in before.values() for alert_id, _ in pairs}
        if not resolved:
            return cls(before, {}, {}, set())
        links = select(IncidentAlert.alert_id, IncidentAlert.incident_id).where(IncidentAlert.alert_id.in_(resolved))
        linked = dict(session.execute(links).tuples().all())
        # Any incident a resolve may reach: linked to a resolved alert, or one a planned alert joins (a candidate).
        reachable = set(linked.values()) | {c.id for read in reads for c in read.candidates} | set(plan.incidents())
        reachable = {i for i in reachable if i > 0}
        firing = select(IncidentAlert.incident_id).join(Alert, Alert.id == IncidentAlert.alert_id)
        firing = firing.where(IncidentAlert.incident_id.in_(reachable), Alert.status == AlertStatus.FIRING.value)
        return cls(before, linked, store.profiles(session, set(linked.values())), set(session.scalars(firing)))

    def apply(self, plan: Plan, alert_id: int) -> None:
        """Resolve in ``plan`` what the resolves before ``alert_id`` resolve."""
        for gone, at in self.before.get(alert_id, ()):
            incident = plan.incident_of(gone)
            if incident is None:
                incident = self.linked.get(gone)
            if incident is not None:
                plan.resolve(incident, at, self.stored.get(incident), fires_in_store=incident in self.firing)


def _load(session: Session, ids: Sequence[int]) -> list[Alert]:
    """The alerts of ``ids`` that exist, in the order given."""
    if not ids:
        return []
    alerts = {a.id: a for a in session.scalars(ALERTS_BY_ID, {"ids": list(ids)})}
    return [alerts[i] for i in ids if i in alerts]


def upcoming_alerts(session: Session, known: Container[int] = ()) -> list[tuple[int, Alert | None]]:
    """The not yet linked alerts that the next pending deliveries fire, in order: each id with its alert, read
    only when not in ``known`` (None for those)."""
    ids = list(_upcoming(session).firing)
    loaded = {alert.id: alert for alert in _load(session, [i for i in ids if i not in known])}
    return [(alert_id, loaded.get(alert_id)) for alert_id in ids if alert_id in known or alert_id in loaded]
