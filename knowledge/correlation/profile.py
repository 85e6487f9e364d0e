"""An incident as the correlator sees it: what its alerts are about, when they came, what they say."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from knowledge.correlation.facts import AlertFacts
from knowledge.correlation.topology import Components

MAX_TEXTS = 12  # distinct alert texts kept per incident for text similarity (the first ones)
MAX_ENTITIES = 400  # distinct entities kept per incident (a 1,000-pod storm keeps its first pods, node and services)


@dataclass(slots=True)
class IncidentProfile:
    """The correlation-relevant summary of one incident, kept current as alerts join and resolve.

    ``version`` counts changes: a decision made on a profile is applied only if the version is unchanged.
    """

    id: int
    opened_at: datetime
    last_at: datetime  # when an alert last joined (a new occurrence, not a re-send)
    firing: int = 0  # alert occurrences still firing
    resolved_at: datetime | None = None
    alerts: int = 0
    version: int = 0
    fingerprints: set[str] = field(default_factory=set)
    alertnames: Counter[str] = field(default_factory=Counter)
    clusters: set[str] = field(default_factory=set)
    group_keys: set[str] = field(default_factory=set)
    entities: Counter[tuple[str, str]] = field(default_factory=Counter)
    texts: list[str] = field(default_factory=list)
    services: set[str] = field(default_factory=set)  # topology components
    nodes: set[str] = field(default_factory=set)

    @property
    def components(self) -> Components:
        return Components(frozenset(self.services), frozenset(self.nodes))

    def add(self, facts: AlertFacts, at: datetime, components: Components | None = None) -> None:
        """Record a new alert occurrence joining (or opening) the incident."""
        self.alerts += 1
        self.firing += 1
        self.version += 1
        self.last_at = max(self.last_at, at)
        self.resolved_at = None
        self.fingerprints.add(facts.fingerprint)
        self.alertnames[facts.alertname] += 1
        if facts.cluster:
            self.clusters.add(facts.cluster)
        if facts.group_key:
            self.group_keys.add(facts.group_key)
        for entity in facts.entities:
            if entity in self.entities or len(self.entities) < MAX_ENTITIES:
                self.entities[entity] += 1
        if facts.text not in self.texts and len(self.texts) < MAX_TEXTS:
            self.texts.append(facts.text)
        if components is not None:
            self.services |= components.services
            self.nodes |= components.nodes

    def copy(self) -> IncidentProfile:
        """A profile with sets of its own (the store's candidates share theirs with its cache)."""
        return replace(
            self,
            fingerprints=set(self.fingerprints),
            alertnames=self.alertnames.copy(),
            clusters=set(self.clusters),
            group_keys=set(self.group_keys),
            entities=self.entities.copy(),
            texts=list(self.texts),
            services=set(self.services),
            nodes=set(self.nodes),
        )

    def resolve_one(self, at: datetime) -> None:
        """One of its occurrences resolved; the incident resolves with its last."""
        self.firing = max(0, self.firing - 1)
        self.version += 1
        if self.firing == 0:
            self.resolved_at = at

    def resolve(self, at: datetime) -> None:
        """The incident resolved as a whole: none of its alerts fires any more."""
        self.firing = 0
        self.resolved_at = at
        self.version += 1

    def service_count(self) -> int:
        """How many distinct services its alerts name (for the runaway guard)."""
        return len({value for kind, value in self.entities if kind in ("service", "workload")})

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprints": sorted(self.fingerprints),
            "alertnames": dict(self.alertnames),
            "clusters": sorted(self.clusters),
            "group_keys": sorted(self.group_keys),
            "entities": [[kind, value, count] for (kind, value), count in sorted(self.entities.items())],
            "texts": self.texts,
            "services": sorted(self.services),
            "nodes": sorted(self.nodes),
        }

    def load_json(self, data: dict[str, Any]) -> None:
        """Fill the sets from :meth:`to_json`'s output (times and counts come from the incident's row)."""
        self.fingerprints = set(data.get("fingerprints", ()))
        self.alertnames = Counter(data.get("alertnames", {}))
        self.clusters = set(data.get("clusters", ()))
        self.group_keys = set(data.get("group_keys", ()))
        self.entities = Counter({(kind, value): count for kind, value, count in data.get("entities", ())})
        self.texts = list(data.get("texts", ()))
        self.services = set(data.get("services", ()))
        self.nodes = set(data.get("nodes", ()))
