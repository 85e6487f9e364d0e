"""The learned correlator in the worker: decisions computed before the write transaction, applied in it.

:meth:`LearnedCorrelation.prepare` runs outside any write transaction (the SQLite writer lock is shared with
ingest): it reads the next pending deliveries' new alerts, embeds their texts and decides each against the
candidates it reads. In the transaction, :meth:`decide` reads the candidates again: if they are the same
incidents at the same versions, the prepared decision stands. Otherwise (another worker, a merge, an incident
opened or joined earlier in the transaction) the event waits for the next transaction and is decided again
before it, when the transaction has done other work already (:func:`~bot.incidents.service.may_decide_later`);
only as its transaction's first work is it decided there, with the embeddings already cached.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.correlation.store import ProfileStore
from bot.db.database import Database
from bot.incidents.grouping import SourceGrouping
from bot.incidents.models import Incident, IncidentAlert
from bot.incidents.service import DecideLater, may_decide_later
from bot.ingest.models import Alert, Delivery, DeliveryStatus
from bot.ingest.parsed import Action
from knowledge.correlation.correlator import Correlator, Decision, PairScorer
from knowledge.correlation.facts import AlertFacts, alert_facts
from knowledge.correlation.profile import IncidentProfile

log = logging.getLogger(__name__)

PREPARE_DELIVERIES = 50  # pending deliveries looked at per prepare
PREPARE_ALERTS = 200  # new alerts decided ahead per prepare
RECHECK = 2  # the next new alerts, whose decisions made ahead are checked against their candidates per prepare
_KEEP = 2_000  # prepared decisions kept at most (a decision never applied is dropped, oldest first)


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
    """One incident per fault: the pair model decides (see :mod:`knowledge.correlation.correlator`)."""

    def __init__(self, correlator: Correlator, store: ProfileStore) -> None:
        self.correlator = correlator
        self.store = store
        self._prepared: OrderedDict[int, Decision] = OrderedDict()
        self._facts = _FactsCache(_KEEP)

    def prepare(self, database: Database) -> int:
        """Decide ahead for the new alerts of the next pending deliveries; returns how many were decided.

        The first ``RECHECK`` of them are decided again when their candidates changed since (each join bumps its
        incident's version, and a storm's alerts share their candidates): the next transaction then finds their
        decisions standing, instead of deciding in the write lock or leaving them for the round after."""
        with database.read() as session:
            upcoming = []
            for alert, received_at in _upcoming_alerts(session, self._prepared):
                facts = self._facts(alert)
                candidates = self.store.candidates(session, facts, received_at)
                held = self._prepared.get(alert.id)
                if held is None or held.considered != _considered(candidates):
                    upcoming.append((alert.id, facts, received_at, candidates))
        self._embed_ahead(
            [facts.text, *(t for c in candidates for t in c.texts)] for _, facts, _, candidates in upcoming
        )
        batch = _BatchScorer(self.correlator.scorer)
        ahead = copy.copy(self.correlator)
        ahead.scorer = batch
        for _, facts, received_at, candidates in upcoming:  # the rows every decision asks to score
            ahead.decide(facts, received_at, candidates)
        batch.score()
        for alert_id, facts, received_at, candidates in upcoming:
            self._prepared[alert_id] = ahead.decide(facts, received_at, candidates)
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
        facts = self._facts(alert)
        candidates = self.store.candidates(session, facts, at)
        prepared = self._prepared.pop(alert.id, None)
        if prepared is not None and prepared.considered == _considered(candidates):
            return prepared
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


class _BatchScorer:
    """Scores many decisions' rows in one model call (a call costs milliseconds however few its rows): the
    decisions are made once to collect the rows each asks for (answered with zeros, those decisions are dropped),
    :meth:`score` calls the model on them all, and the decisions made again get their rows' probabilities (the
    same inputs give the same rows; rows never seen go to the model)."""

    def __init__(self, scorer: PairScorer) -> None:
        self._scorer = scorer
        self._asked: list[npt.NDArray[np.float64]] = []
        self._answers: dict[bytes, npt.NDArray[np.float64]] | None = None

    def probabilities(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if self._answers is None:
            self._asked.append(rows)
            return np.zeros(len(rows), dtype=np.float64)
        answer = self._answers.get(rows.tobytes())
        return answer if answer is not None else self._scorer.probabilities(rows)

    def score(self) -> None:
        self._answers = {}
        asked = [rows for rows in self._asked if len(rows)]
        if not asked:
            return
        every = self._scorer.probabilities(np.vstack(asked))
        start = 0
        for rows in asked:
            self._answers[rows.tobytes()] = every[start : start + len(rows)]
            start += len(rows)


def _considered(candidates: Sequence[IncidentProfile]) -> tuple[tuple[int, int], ...]:
    """What a decision on ``candidates`` read: each one's (incident, version), as ``Decision.considered``."""
    return tuple((c.id, c.version) for c in candidates)


def _upcoming_alerts(session: Session, prepared: OrderedDict[int, Decision]) -> Sequence[tuple[Alert, datetime]]:
    """The not yet linked alerts that the next pending deliveries fire, in order, with their delivery's time: the
    first ``RECHECK`` whether decided ahead or not, then those not decided ahead."""
    deliveries = session.execute(
        select(Delivery.events, Delivery.events_applied, Delivery.received_at)
        .where(Delivery.status == DeliveryStatus.PENDING)
        .order_by(Delivery.id)
        .limit(PREPARE_DELIVERIES)
    )
    wanted: dict[int, datetime] = {}
    firing = 0
    for events, applied, received_at in deliveries:
        for alert_id, action in events[applied:]:
            if action != Action.FIRING:
                continue
            firing += 1
            if firing <= RECHECK or alert_id not in prepared:
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
