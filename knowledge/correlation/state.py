"""Correlation state kept in memory: incidents' profiles, a candidate index, and which occurrence is where.

``eval dedup`` and training replay a stream through it in simulated time; the worker keeps the same profiles
in the database (``bot.correlation``). Candidates come from an index keyed by the alert's cluster and entities,
most recent first, never from a scan of every open incident.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

from knowledge.correlation.correlator import Correlator, Decision
from knowledge.correlation.facts import AlertFacts
from knowledge.correlation.profile import IncidentProfile

PER_KEY = 24  # most recent incidents taken per index key
MAX_CANDIDATES = 64


def index_keys(facts: AlertFacts) -> list[str]:
    """The index keys of an alert: its fingerprint, each entity, and its cluster (the broadest, last)."""
    return [
        f"fp:{facts.fingerprint}",
        *(f"{kind}:{value}" for kind, value in sorted(facts.entities)),
        f"cluster:{facts.cluster}",
    ]


class CandidateIndex:
    """Incident ids by index key, in order of latest activity."""

    def __init__(self) -> None:
        self._keys: dict[str, OrderedDict[int, None]] = {}

    def touch(self, incident: int, keys: Iterable[str]) -> None:
        for key in keys:
            entries = self._keys.setdefault(key, OrderedDict())
            entries[incident] = None
            entries.move_to_end(incident)

    def remove(self, incident: int) -> None:
        for entries in self._keys.values():
            entries.pop(incident, None)

    def lookup(self, keys: Iterable[str], per_key: int = PER_KEY) -> list[int]:
        found: dict[int, None] = {}
        for key in keys:
            entries = self._keys.get(key)
            if not entries:
                continue
            for n, incident in enumerate(reversed(entries)):
                if n >= per_key:
                    break
                found[incident] = None
        return list(found)


class CorrelationState:
    """Profiles and occurrences of a replayed stream; ``observe`` applies one delivery line."""

    def __init__(self, correlator: Correlator) -> None:
        self.correlator = correlator
        self.horizon = correlator.policy.horizon  # resolved incidents older than this are forgotten
        self.profiles: dict[int, IncidentProfile] = {}
        self.index = CandidateIndex()
        self.occurrences: dict[tuple[str, str], int] = {}  # (fingerprint, starts) → incident
        self.firing: set[tuple[str, str]] = set()
        self._next_id = 1

    def candidates(self, facts: AlertFacts, at: datetime) -> list[IncidentProfile]:
        found = [self.profiles[i] for i in self.index.lookup(index_keys(facts)) if i in self.profiles]
        live = [p for p in found if p.firing > 0 or (p.resolved_at is not None and at - p.resolved_at <= self.horizon)]
        live.sort(key=lambda p: p.last_at, reverse=True)
        return live[:MAX_CANDIDATES]

    def decide(self, facts: AlertFacts, at: datetime) -> Decision:
        return self.correlator.decide(facts, at, self.candidates(facts, at))

    def apply(self, facts: AlertFacts, at: datetime, occurrence: tuple[str, str], incident: int | None) -> int:
        """Link a new occurrence to ``incident`` (``None``: a new one); returns the incident's id."""
        if incident is None:
            incident = self._next_id
            self._next_id += 1
            self.profiles[incident] = IncidentProfile(id=incident, opened_at=at, last_at=at)
        profile = self.profiles[incident]
        profile.add(facts, at, self.correlator.components(facts))
        self.index.touch(incident, index_keys(facts))
        self.occurrences[occurrence] = incident
        self.firing.add(occurrence)
        return incident

    def resolve(self, occurrence: tuple[str, str], at: datetime) -> int | None:
        incident = self.occurrences.get(occurrence)
        if incident is None or occurrence not in self.firing:
            return incident
        self.firing.discard(occurrence)
        profile = self.profiles.get(incident)
        if profile is not None:
            profile.resolve_one(at)
        return incident

    def forget_old(self, at: datetime) -> None:
        """Drop incidents resolved longer ago than the horizon (a long stream stays small)."""
        stale = [
            i for i, p in self.profiles.items() if p.firing == 0 and p.resolved_at and at - p.resolved_at > self.horizon
        ]
        for incident in stale:
            del self.profiles[incident]
            self.index.remove(incident)
