"""The root-cause ranking's vocabulary: what goes in (alerts, changes, past causes) and what comes out.

Candidates are named exactly as the topology names services and nodes (without a topology: the alert's
``service`` label, or the node name): never a pod, an instance or a cluster-qualified name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

TOPOLOGY = "topology"
CHANGE = "change"
HISTORY = "history"
SOURCES: tuple[str, ...] = (TOPOLOGY, CHANGE, HISTORY)

SERVICE = "service"
NODE = "node"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One reason behind a candidate: its source (``topology`` | ``change`` | ``history``), a sentence for
    people, and how much it added to the candidate's score."""

    source: str
    text: str
    weight: float


@dataclass(frozen=True, slots=True)
class CauseCandidate:
    """A probable cause: a service or node name, a confidence in 0..1, and the evidence, strongest first."""

    name: str
    kind: str  # "service" | "node"
    confidence: float
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A deploy, config change or feature-flag flip recorded for ``service`` at ``at``."""

    service: str
    kind: str  # "deploy" | "config" | "feature_flag" | ...
    at: datetime
    version: str | None = None
    who: str | None = None
    link: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class PastCause:
    """The confirmed cause of a resolved incident similar to this one (``similarity`` in 0..1)."""

    name: str
    similarity: float
    resolved_at: datetime
    reference: str  # where it was recorded, e.g. the incident's id


@dataclass(frozen=True, slots=True)
class IncidentAlert:
    """One alert of the incident as the ranker reads it: its labels (``alertname``, ``cluster``, ``service``,
    ``pod``, ``node``, ``instance``, ...), its annotations, and when the incident first saw it firing."""

    fingerprint: str
    labels: Mapping[str, str]
    first_seen: datetime
    annotations: Mapping[str, str] = field(default_factory=dict)
