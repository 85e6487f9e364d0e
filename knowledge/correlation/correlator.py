"""The correlator: one decision per new alert occurrence — join a candidate incident, or open a new one.

The same alert (same fingerprint) rejoins its incident by rule while that incident is open or resolved within
the reopen window. Any other alert is scored against every candidate by the calibrated pair model; the most
probable candidate is joined when its probability reaches the threshold, unless the runaway guard refuses
(the incident already spans too many services, or is too old), in which case a new incident opens and a merge
is suggested. Every decision carries a reason a person can check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import numpy.typing as npt

from knowledge.correlation.facts import REPORTER, AlertFacts
from knowledge.correlation.features import PairEvidence, pair_features
from knowledge.correlation.profile import IncidentProfile
from knowledge.correlation.topology import FAR, Components, Topology

DEFAULT_THRESHOLD = 0.5
DEFAULT_REOPEN_WINDOW = timedelta(minutes=60)  # the service's default (INCIBOT_REOPEN_WINDOW)
DEFAULT_MAX_SERVICES = 25
DEFAULT_MAX_AGE = timedelta(hours=12)
NEAR_MISS = 0.2  # a new incident names the closest candidate when it scored at least this
CHATTY_EPISODES = 3  # a lone alert that fired this many times is chatty: its quiet spells may last longer
CHATTY_WINDOW_FACTOR = 2  # ... and it rejoins its incident within this many reopen windows


class PairScorer(Protocol):
    def probabilities(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...


class TextEmbedder(Protocol):
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class Kind:
    SAME_ALERT = "same_alert"
    LEARNED = "learned"
    NEW = "new"
    GUARDED = "guarded"  # a join the runaway guard refused


@dataclass(frozen=True, slots=True)
class Decision:
    """Join ``incident`` (``None``: open a new incident), with the reason to show people."""

    kind: str
    incident: int | None
    probability: float | None
    reason: str
    considered: tuple[tuple[int, int], ...] = ()  # (incident, version) of every candidate the decision read
    merge_with: int | None = None  # the guard refused to join this incident: suggest a merge


@dataclass(frozen=True, slots=True)
class CorrelationPolicy:
    threshold: float = DEFAULT_THRESHOLD
    reopen_window: timedelta = DEFAULT_REOPEN_WINDOW
    max_services: int = DEFAULT_MAX_SERVICES
    max_age: timedelta = DEFAULT_MAX_AGE

    @property
    def horizon(self) -> timedelta:
        """How long a resolved incident stays a candidate at all (a chatty alert's rejoin window)."""
        return self.reopen_window * CHATTY_WINDOW_FACTOR


class Correlator:
    """Decides which incident an alert joins; the same class runs in the worker and in ``eval dedup``."""

    def __init__(
        self,
        scorer: PairScorer,
        embedder: TextEmbedder | None,
        topology: Topology | None = None,
        policy: CorrelationPolicy | None = None,
    ) -> None:
        self.scorer = scorer
        self.embedder = embedder
        self.topology = topology
        self.policy = policy or CorrelationPolicy()

    def components(self, facts: AlertFacts) -> Components | None:
        return self.topology.components(facts) if self.topology is not None else None

    def same_alert(
        self, facts: AlertFacts, at: datetime, candidates: Sequence[IncidentProfile]
    ) -> IncidentProfile | None:
        """The incident this very alert rejoins by rule: an open one that holds it (an earlier occurrence still
        firing), or a lone alert's incident resolved within the reopen window (a flap), or within
        :data:`CHATTY_WINDOW_FACTOR` reopen windows once it has fired :data:`CHATTY_EPISODES` times (a chatty
        alert, one incident all day). A resolved incident of several alerts that held it is a candidate like any
        other: a shared symptom may belong to a new fault."""
        for candidate in sorted(candidates, key=lambda c: c.last_at, reverse=True):
            if facts.fingerprint not in candidate.fingerprints:
                continue
            lone = candidate.fingerprints == {facts.fingerprint}
            if candidate.firing > 0 or (lone and self._rejoinable(candidate, at)):
                return candidate
        return None

    def decide(self, facts: AlertFacts, at: datetime, candidates: Sequence[IncidentProfile]) -> Decision:
        considered = tuple((c.id, c.version) for c in candidates)
        same = self.same_alert(facts, at, candidates)
        if same is not None:
            reason = f"joined #{same.id}: the same alert ({facts.alertname}) fired again"
            return Decision(Kind.SAME_ALERT, same.id, None, reason, considered)
        eligible = [c for c in candidates if self._reopenable(c, at)]
        if not eligible:
            return Decision(Kind.NEW, None, None, "new incident: no open incident near in time and system", considered)
        rows, evidence = self.score_rows(facts, at, eligible)
        probabilities = self.scorer.probabilities(rows)
        best = int(np.argmax(probabilities))
        chosen, p, why = eligible[best], float(probabilities[best]), evidence[best]
        if p < self.policy.threshold:
            reason = "new incident"
            if p >= NEAR_MISS:
                closest = _explain(facts, chosen, why)
                reason += f": closest was #{chosen.id} ({closest}, p = {p:.2f} < {self.policy.threshold:.2f})"
            return Decision(Kind.NEW, None, p, reason, considered)
        refused = self._guard(chosen, facts, at)
        if refused:
            reason = f"new incident: #{chosen.id} matched (p = {p:.2f}) but {refused}; merge them if they are one fault"
            return Decision(Kind.GUARDED, None, p, reason, considered, merge_with=chosen.id)
        reason = f"joined #{chosen.id}: {_explain(facts, chosen, why)} (p = {p:.2f})"
        return Decision(Kind.LEARNED, chosen.id, p, reason, considered)

    def score_rows(
        self, facts: AlertFacts, at: datetime, candidates: Sequence[IncidentProfile]
    ) -> tuple[npt.NDArray[np.float64], list[PairEvidence]]:
        """The feature rows of (``facts``, candidate) pairs, for the model and for training."""
        return pair_features(
            facts, at, candidates, self._similarities(facts, candidates), self.topology, self.components(facts)
        )

    def _similarities(self, facts: AlertFacts, candidates: Sequence[IncidentProfile]) -> list[float]:
        if self.embedder is None or not candidates:
            return [0.0] * len(candidates)
        texts = list(dict.fromkeys([facts.text, *(t for c in candidates for t in c.texts)]))
        vectors = self.embedder.embed(texts)
        row = {text: i for i, text in enumerate(texts)}
        mine = vectors[0]
        return [max((float(np.dot(mine, vectors[row[t]])) for t in c.texts), default=0.0) for c in candidates]

    def _reopenable(self, candidate: IncidentProfile, at: datetime) -> bool:
        if candidate.firing > 0 or candidate.resolved_at is None:
            return True
        return at - candidate.resolved_at <= self.policy.reopen_window

    def _rejoinable(self, lone: IncidentProfile, at: datetime) -> bool:
        if self._reopenable(lone, at):
            return True
        chatty = lone.alerts >= CHATTY_EPISODES and lone.resolved_at is not None
        return chatty and at - lone.resolved_at <= self.policy.horizon  # type: ignore[operator]

    def _guard(self, candidate: IncidentProfile, facts: AlertFacts, at: datetime) -> str | None:
        if facts.fingerprint in candidate.fingerprints:
            return None  # its own alert again (a flap): it cannot make the incident run away
        if at - candidate.opened_at > self.policy.max_age:
            hours = self.policy.max_age.total_seconds() / 3600
            return f"it opened more than {hours:g} h ago"
        services = {value for kind, value in facts.entities if kind in ("service", "workload")}
        theirs = {value for kind, value in candidate.entities if kind in ("service", "workload")}
        if len(theirs | services) > self.policy.max_services and not services <= theirs:
            return f"it already spans {len(theirs)} services (limit {self.policy.max_services})"
        return None


def _explain(facts: AlertFacts, candidate: IncidentProfile, why: PairEvidence) -> str:
    parts: list[str] = []
    if why.shared:
        kind, value = why.shared[0]
        if kind == REPORTER:  # name it by its job rather than its pod or address: no digits, shortest
            reporters = [v for k, v in why.shared if k == REPORTER]
            name = min(reporters, key=lambda v: (any(c.isdigit() for c in v), len(v)))
            parts.append(f"reported by the same exporter ({name}) as #{candidate.id}")
        else:
            parts.append(f"same {kind} {value} as #{candidate.id}")
    if why.runs_on:
        parts.append("runs on a node of its alerts" if not why.shared else "on a shared node")
    if why.topology_distance < FAR:
        parts.append(_topology_relation(candidate.id, why))
    if why.same_group_key:
        parts.append("same source group")
    minutes = why.minutes_since_latest
    parts.append(f"{minutes:.0f} min after its latest alert" if minutes >= 1 else "within a minute of its latest alert")
    parts.append(f"text similarity {why.text_similarity:.2f}")
    return ", ".join(parts)


def _topology_relation(incident: int, why: PairEvidence) -> str:
    hops = why.topology_distance
    if hops == 0:
        return "same service"
    if why.depends_on_it == hops:
        return f"depends on #{incident}'s services ({_hops(hops)})"
    if why.it_depends_on == hops:
        return f"#{incident}'s services depend on it ({_hops(hops)})"
    return f"{_hops(hops)} away"


def _hops(count: int) -> str:
    return f"{count} dependency hop{'s' if count > 1 else ''}"
