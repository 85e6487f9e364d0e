"""Rank the probable causes of one incident from its alerts, recent changes and past confirmed causes.

Three sources add to each candidate's score, each with the evidence it gives:

* **topology**: the component the incident's other alerts depend on. A candidate explains an alert about itself,
  about a pod on it (a node), about anything that depends on what it explains (callers of a database, up to
  :data:`MAX_HOPS` hops), and a queue's backlog when it consumes that queue. It scores by the share of the
  incident's alerts it explains, whether its own alerts say it failed (rather than showing a symptom), and how
  early it began alerting. The topology is a file's, else the learned graph's (:mod:`knowledge.correlation.graph`).
  The root's own alert may be late or in another incident, so candidates also include components with no alert
  here: a node that pods of independent failing services run on, a dependency several alerting services share or
  that a service showing only symptoms calls, the consumers of a queue whose backlog grows (the queue's own backlog
  alerts explain it only :data:`OWN_BACKLOG`), and the cluster's DNS (every service's implicit dependency) when
  many independent services fail at once. They count :data:`SILENT` of what they explain. Each next candidate
  loses the part of its topology score for what better ones already explain, so an incident holding two faults
  shows both.
* **change**: a change to a suspected component shortly before the first alert.
* **history**: causes confirmed on similar resolved incidents, weighted by similarity and recency.

Cheap enough to rerun on every new alert of an incident: each alert's subject is computed once per fingerprint
and the dependency closure once per component.

It stays whole: the three sources add to one candidate table and the final ranking discounts what better
candidates explain, so they share the candidates' state; rule wording is :mod:`~knowledge.rootcause.semantics`,
naming :mod:`~knowledge.rootcause.subjects`.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from knowledge.correlation.graph import DependencyGraph
from knowledge.correlation.topology import Topology
from knowledge.rootcause.model import (
    CHANGE,
    HISTORY,
    NODE,
    SERVICE,
    TOPOLOGY,
    CauseCandidate,
    ChangeEvent,
    Evidence,
    IncidentAlert,
    PastCause,
)
from knowledge.rootcause.semantics import NEUTRAL, RuleMeaning, rule_meaning
from knowledge.rootcause.subjects import Subject, subject_of

MAX_HOPS = 4
HOP_DECAY = 0.85  # an alert n dependency hops away is explained with weight HOP_DECAY ** n
LOOSE_NODE = 0.5  # a service with a pod somewhere on the node, when the alert names no pod
COVERAGE_WEIGHT = 1.0
FAILURE_WEIGHT = 0.35
EARLY_WEIGHT = 0.25
EARLY_MINUTES = 10.0  # the earliness bonus decays with this time constant after the first alert
CHANGE_WEIGHT = 0.8
CHANGE_WINDOW = timedelta(hours=2)  # changes this long before the first alert are considered
CHANGE_MINUTES = 30.0
HISTORY_WEIGHT = 0.6
HISTORY_HALF_LIFE = timedelta(days=30)
OWN_BACKLOG = 0.5  # a queue's backlog is mostly its consumers' symptom, a little its own
SILENT = 0.6  # a service with no alert of its own in the incident gets this share of what it explains
DNS_SPREAD = 4  # independent services failing together that make the cluster's DNS a suspect ...
DNS_WINDOW = timedelta(minutes=5)  # ... when they began alerting within this of each other
_DNS = re.compile(r"(^|-)(core|kube)?dns($|-)")  # coredns, kube-dns, node-local-dns
OVERLAP = 0.75  # how much of what better candidates already explain a next candidate loses
TEMPERATURE = 0.15  # softmax temperature turning scores into confidences
LIMIT = 5
_CACHE_LIMIT = 50_000


@dataclass(slots=True)
class _Candidate:
    component: str
    kind: str
    score: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)
    explains: dict[str, float] = field(default_factory=dict)  # alert fingerprint → share of the incident
    share: float = 1.0  # how much of what it explains counts for it (less when it has no alert of its own)
    topology: float = 0.0  # the part of the score the topology gave

    def add(self, source: str, weight: float, text: str) -> None:
        self.score += weight
        if source == TOPOLOGY:
            self.topology += weight
        if text:
            self.evidence.append(Evidence(source, text, round(weight, 3)))


class RootCauseRanker:
    """Ranks causes for incidents of one world. ``topology`` (a file's) wins over ``graph`` (learned); with
    neither, candidates are the alerts' own services and nodes."""

    def __init__(self, topology: Topology | None = None, graph: DependencyGraph | None = None) -> None:
        self.topology = topology
        self.graph = graph
        self._world: Topology | None = None
        self._subjects: dict[str, tuple[Subject | None, RuleMeaning]] = {}
        self._dependents: dict[str, dict[str, int]] = {}
        self._callers: dict[str, set[str]] | None = None  # service → services that depend on it directly

    def rank(
        self,
        alerts: Sequence[IncidentAlert],
        changes: Iterable[ChangeEvent] = (),
        history: Iterable[PastCause] = (),
        now: datetime | None = None,
        limit: int = LIMIT,
    ) -> list[CauseCandidate]:
        """The probable causes of the incident holding ``alerts``, most probable first (at most ``limit``)."""
        self._refresh_world()
        seen: dict[str, IncidentAlert] = {}
        for alert in sorted(alerts, key=lambda a: a.first_seen):
            seen.setdefault(alert.fingerprint, alert)
        facts = [(alert, *self._subject(alert)) for alert in seen.values()]
        located = [(alert, subject, meaning) for alert, subject, meaning in facts if subject is not None]
        candidates: dict[str, _Candidate] = {}
        if located:
            self._topology_scores(located, len(facts), candidates)
        first = min((a.first_seen for a in seen.values()), default=now)
        if first is not None:
            self._change_scores(changes, first, candidates)
        self._history_scores(history, now or first, candidates)
        return _ranked(candidates, limit)

    def _refresh_world(self) -> None:
        world = self.topology if self.topology is not None else self.graph.topology() if self.graph else None
        if world is not self._world:
            self._world = world
            self._subjects.clear()
            self._dependents.clear()
            self._callers = None

    def _subject(self, alert: IncidentAlert) -> tuple[Subject | None, RuleMeaning]:
        cached = self._subjects.get(alert.fingerprint)
        if cached is None:
            if len(self._subjects) >= _CACHE_LIMIT:
                self._subjects.clear()
            cached = (subject_of(alert.labels, self._world), rule_meaning(alert.labels, alert.annotations))
            self._subjects[alert.fingerprint] = cached
        return cached

    def _topology_scores(
        self,
        located: list[tuple[IncidentAlert, Subject, RuleMeaning]],
        total: int,
        candidates: dict[str, _Candidate],
    ) -> None:
        first = located[0][0].first_seen
        by_component: dict[str, list[tuple[IncidentAlert, Subject, RuleMeaning]]] = {}
        for item in located:
            by_component.setdefault(item[1].component, []).append(item)
        kinds = {component: own[0][1].kind for component, own in by_component.items()}
        silent = self._silent(located, kinds)
        for component, kind in [*kinds.items(), *((c, k) for c, (k, _) in silent.items())]:
            explains, direct, callers = self._explained(component, kind, located)
            if not explains:
                continue
            own = by_component.get(component, [])
            shown = [a for a, _, _ in located if direct.get(a.fingerprint, 0.0) >= 1.0] or [
                a for a, _, _ in located if a.fingerprint in explains
            ]
            minutes = (min(a.first_seen for a in shown) - first).total_seconds() / 60
            failure, failure_text = 0.0, ""
            if own:
                failing = max(own, key=lambda item: item[2].failure)
                failure = failing[2].failure
                failure_text = f"its own alert {failing[0].labels.get('alertname', '?')} says it failed"
            if kind == NODE and failure < 1.0:
                hosted = self._failing_independent(component, located)
                if len(hosted) >= 2:
                    failure = 1.0
                    failure_text = f"{len(hosted)} independent services running on it failed: {', '.join(hosted)}"
            if failure < 1.0 and _DNS.search(_bare(component)):
                spread = self._independent(component.split("/", 1)[0], located)
                if len(spread) >= DNS_SPREAD:
                    failure = 1.0
                    failure_text = (
                        f"{len(spread)} services that do not depend on each other failed: {', '.join(spread)}"
                    )
            candidate = candidates.setdefault(component, _Candidate(component, kind))
            candidate.share = 1.0 if own else SILENT
            candidate.explains = {fp: w / total for fp, w in explains.items()}
            detail = f"{len(direct)} of the {total} alerts directly"
            if callers:
                detail += f", {callers} more on components that depend on it"
            if not own:
                detail += f"; no alert of its own in this incident ({silent[component][1]})"
            coverage = COVERAGE_WEIGHT * candidate.share * sum(candidate.explains.values())
            candidate.add(TOPOLOGY, coverage, f"explains {detail}")
            candidate.add(TOPOLOGY, FAILURE_WEIGHT * failure, failure_text if failure >= 1.0 else "")
            verb = "began alerting" if own else "its first explained alert came"
            when = (
                f"{verb} {minutes:.0f} min after the first alert" if minutes >= 0.5 else "alerted first" if own else ""
            )
            candidate.add(TOPOLOGY, EARLY_WEIGHT * math.exp(-minutes / EARLY_MINUTES), when)

    def _silent(
        self, located: list[tuple[IncidentAlert, Subject, RuleMeaning]], alerting: dict[str, str]
    ) -> dict[str, tuple[str, str]]:
        """Components with no alert in the incident that may still be its cause → (kind, why): a node that pods
        of independent failing services run on, a dependency that several alerting services share, what an
        alerting service that shows only symptoms depends on, the consumers of a queue whose backlog grows, and
        (with a topology file) the cluster's DNS when many services that do not depend on each other fail at once."""
        silent: dict[str, tuple[str, str]] = {}
        for node in {s.node for _, s, _ in located if s.node and s.node not in alerting}:
            if len(self._failing_independent(node, located)) >= 2:
                silent[node] = (NODE, "failing pods of independent services run on it")
        world = self._world
        if world is None:
            return silent
        sharing: dict[str, set[str]] = {}
        for component, kind in alerting.items():
            if kind == SERVICE:
                for dependency in world.services.get(component, ()):
                    if dependency not in alerting:
                        sharing.setdefault(dependency, set()).add(component)
        worst: dict[str, float] = {}
        for _, subject, meaning in located:
            worst[subject.component] = max(worst.get(subject.component, 0.0), meaning.failure)
        for dependency, users in sharing.items():
            symptomatic = sorted(user for user in users if worst[user] < NEUTRAL)
            if len(users) >= 2:
                silent[dependency] = (SERVICE, f"{len(users)} alerting services depend on it")
            elif symptomatic:
                silent[dependency] = (SERVICE, f"{_bare(symptomatic[0])} depends on it and shows only symptoms")
        for _, subject, meaning in located:
            if meaning.backlog:
                for consumer in self._reverse().get(subject.component, ()):
                    if consumer not in alerting:
                        silent.setdefault(
                            consumer, (SERVICE, f"it consumes {_bare(subject.component)}, whose backlog grows")
                        )
        if self.topology is None:
            return silent  # a learned graph knows too few dependencies to tell independent services apart
        for cluster in {c.split("/", 1)[0] for c, kind in alerting.items() if kind == SERVICE}:
            if len(self._independent(cluster, located)) >= DNS_SPREAD:
                for dns in world.services:
                    if dns.startswith(cluster + "/") and _DNS.search(_bare(dns)) and dns not in alerting:
                        silent[dns] = (SERVICE, "every service of the cluster resolves names through it")
        return silent

    def _explained(
        self, component: str, kind: str, located: list[tuple[IncidentAlert, Subject, RuleMeaning]]
    ) -> tuple[dict[str, float], dict[str, float], int]:
        """The alerts ``component`` explains (fingerprint → weight), those it explains directly, and how many
        it explains through what depends on it."""
        world = self._world
        base: dict[str, float] = {component: 1.0}
        direct: dict[str, float] = {}
        for alert, subject, meaning in located:
            weight = 0.0
            if subject.component == component and meaning.backlog:
                weight = OWN_BACKLOG
            elif subject.component == component or (kind == NODE and subject.node == component):
                weight = 1.0
            elif kind == NODE and world is not None and component in world.service_nodes.get(subject.component, ()):
                weight = LOOSE_NODE
            elif meaning.backlog and subject.component in self._consumed_by(component):
                direct[alert.fingerprint] = 1.0  # its consumer's symptom: what depends on the queue is not
                continue
            if weight:
                direct[alert.fingerprint] = weight
                if subject.kind == SERVICE:
                    base[subject.component] = max(base.get(subject.component, 0.0), weight)
        explains = dict(direct)
        callers = 0
        for alert, subject, _ in located:
            best = 0.0
            for source, weight in base.items():
                hops = self._dependents_of(source).get(subject.component)
                if hops:
                    best = max(best, weight * HOP_DECAY**hops)
            if best > explains.get(alert.fingerprint, 0.0):
                callers += alert.fingerprint not in explains
                explains[alert.fingerprint] = best
        return explains, direct, callers

    def _independent(self, cluster: str, located: list[tuple[IncidentAlert, Subject, RuleMeaning]]) -> list[str]:
        """The most services of ``cluster`` that began alerting within :data:`DNS_WINDOW` of each other while
        none of them depends on another (what a failure every service shares looks like)."""
        started: dict[str, datetime] = {}
        for alert, subject, meaning in located:
            broken = meaning.failure != NEUTRAL and not meaning.backlog  # not a resource warning
            if broken and subject.kind == SERVICE and subject.component.startswith(cluster + "/"):
                started.setdefault(subject.component, alert.first_seen)
        services = [s for s in started if not _DNS.search(_bare(s))]
        alone = sorted(
            (started[s], s)
            for s in services
            if not any(s in self._dependents_of(o, plain=True) for o in services if o != s)
        )
        best: list[str] = []
        for i, (at, _) in enumerate(alone):
            near = [s for when, s in alone[i:] if when - at <= DNS_WINDOW]
            if len(near) > len(best):
                best = near
        return sorted(_bare(s) for s in best)

    def _failing_independent(self, node: str, located: list[tuple[IncidentAlert, Subject, RuleMeaning]]) -> list[str]:
        """Services with a failed pod on ``node`` that none of the others explains (a node's failure signature)."""
        failing = {s.component for _, s, m in located if s.kind == SERVICE and s.node == node and m.failure >= 1.0}
        return sorted(
            _bare(s) for s in failing if not any(s in self._dependents_of(other) for other in failing if other != s)
        )

    def _dependents_of(self, component: str, plain: bool = False) -> dict[str, int]:
        """Components that depend on ``component`` (transitively, up to :data:`MAX_HOPS`) → hops; the cluster's
        DNS is one hop from every service of its cluster (unless ``plain``: only what the topology says)."""
        if not plain and _DNS.search(_bare(component)):
            cluster = component.split("/", 1)[0]
            cached = self._dependents.get("dns:" + component)
            if cached is None:
                world = self._world.services if self._world is not None else {}
                cached = {s: 1 for s in world if s.startswith(cluster + "/") and s != component}
                cached.update(self._dependents_of(component, plain=True))
                self._dependents["dns:" + component] = cached
            return cached
        cached = self._dependents.get(component)
        if cached is not None:
            return cached
        reverse = self._reverse()
        reach: dict[str, int] = {}
        queue = deque([(component, 0)])
        while queue:
            node, hops = queue.popleft()
            if hops >= MAX_HOPS:
                continue
            for caller in reverse.get(node, ()):
                if caller not in reach and caller != component:
                    reach[caller] = hops + 1
                    queue.append((caller, hops + 1))
        self._dependents[component] = reach
        return reach

    def _reverse(self) -> dict[str, set[str]]:
        if self._callers is None:
            self._callers = {}
            for service, targets in (self._world.services if self._world is not None else {}).items():
                for target in targets:
                    self._callers.setdefault(target, set()).add(service)
        return self._callers

    def _consumed_by(self, component: str) -> set[str]:
        """What ``component`` consumes (its direct dependencies): a backlog there is its symptom."""
        return self._world.services.get(component, set()) if self._world is not None else set()

    def _change_scores(
        self, changes: Iterable[ChangeEvent], first: datetime, candidates: dict[str, _Candidate]
    ) -> None:
        by_name = {_bare(c): c for c in candidates}
        for change in changes:
            before = (first - change.at).total_seconds() / 60
            if change.at - first > timedelta(0) or first - change.at > CHANGE_WINDOW:
                continue
            name = change.service.lower()
            key = by_name.get(name)
            if key is None:
                key = f"/{name}"
                candidates[key] = _Candidate(key, SERVICE)
                by_name[name] = key
            weight = CHANGE_WEIGHT * math.exp(-max(before, 0.0) / CHANGE_MINUTES)
            candidates[key].add(CHANGE, weight, _change_text(change, before))

    def _history_scores(
        self, history: Iterable[PastCause], now: datetime | None, candidates: dict[str, _Candidate]
    ) -> None:
        by_name = {_bare(c): c for c in candidates}
        nodes = {_bare(n) for n in self._world.node_names} if self._world is not None else set()
        for past in history:
            name = past.name.lower()
            age = (now - past.resolved_at) if now is not None else timedelta(0)
            recency = 0.5 ** (max(age.total_seconds(), 0.0) / HISTORY_HALF_LIFE.total_seconds())
            weight = HISTORY_WEIGHT * max(0.0, min(1.0, past.similarity)) * recency
            if weight <= 0:
                continue
            key = by_name.get(name)
            if key is None:
                key = f"/{name}"
                candidates[key] = _Candidate(key, NODE if name in nodes else SERVICE)
                by_name[name] = key
            days = age.total_seconds() / 86400
            ago = f"{days:.0f} days ago" if days >= 1 else "today"
            text = f"confirmed cause of similar incident {past.reference} (similarity {past.similarity:.2f}, {ago})"
            candidates[key].add(HISTORY, weight, text)


def _left(candidate: _Candidate, covered: dict[str, float]) -> float:
    """``candidate``'s score, its topology part cut by the share of what it explains that better candidates
    already explain (a symptom of the top cause is no second cause)."""
    mass = sum(candidate.explains.values())
    if not mass or not covered:
        return candidate.score
    overlap = sum(min(w, covered.get(fp, 0.0)) for fp, w in candidate.explains.items())
    return candidate.score - candidate.topology * OVERLAP * overlap / mass


def _bare(component: str) -> str:
    return component.split("/", 1)[-1]


def _change_text(change: ChangeEvent, minutes_before: float) -> str:
    what = change.service + (f" {change.version}" if change.version else "")
    verb = {"deploy": "deployed", "config": "reconfigured", "feature_flag": "feature flag flipped"}.get(
        change.kind, change.kind
    )
    who = f" by {change.who}" if change.who else ""
    when = f"{minutes_before:.0f} min before the first alert" if minutes_before >= 1 else "just before the first alert"
    return f"{what} {verb}{who} {when}"


def _ranked(candidates: dict[str, _Candidate], limit: int) -> list[CauseCandidate]:
    """Best first, each next candidate scored on the alerts the ones before it leave unexplained (an incident
    may hold two faults); one candidate per name across clusters; scores turned into confidences."""
    merged: dict[str, _Candidate] = {}
    for candidate in candidates.values():
        name = _bare(candidate.component)
        kept = merged.get(name)
        if kept is None or candidate.score > kept.score:
            merged[name] = candidate
    covered: dict[str, float] = {}
    chosen: list[tuple[str, _Candidate, float]] = []
    left = dict(merged)
    while left and len(chosen) < limit:
        scores = {name: _left(c, covered) for name, c in left.items()}
        name = min(scores, key=lambda n: (-scores[n], n))
        candidate = left.pop(name)
        chosen.append((name, candidate, scores[name]))
        for fp, w in candidate.explains.items():
            covered[fp] = max(covered.get(fp, 0.0), w)
    if not chosen:
        return []
    top = max(score for _, _, score in chosen)
    weights = [math.exp((score - top) / TEMPERATURE) for _, _, score in chosen]
    rest = sum(math.exp((c.score - top) / TEMPERATURE) for c in left.values())
    total = sum(weights) + rest
    return [
        CauseCandidate(
            name=name,
            kind=candidate.kind,
            confidence=round(weight / total, 3),
            evidence=tuple(sorted(candidate.evidence, key=lambda e: -e.weight)),
        )
        for (name, candidate, _), weight in zip(chosen, weights, strict=True)
    ]
