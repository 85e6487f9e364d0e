"""Pair features of (alert, candidate incident): relations only, never a name or a label value.

Each feature says how the alert relates to the incident: time gaps, which kinds of entities they share and
how specific the shared ones are among the candidates, topology distance, text similarity, source grouping.
A model trained on one world's names therefore transfers to another's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from knowledge.correlation.facts import HOST, NAMESPACE, NODE, POD, REPORTER, SERVICE, WORKLOAD, AlertFacts
from knowledge.correlation.profile import IncidentProfile
from knowledge.correlation.topology import FAR, Components, Topology

FEATURES: tuple[str, ...] = (
    "minutes_since_opened",  # log1p
    "minutes_since_latest",  # log1p
    "incident_firing",
    "minutes_since_resolved",  # log1p, 0 while it fires
    "same_fingerprint",  # this very alert fired in it before (an earlier occurrence)
    "incident_alerts",  # log1p
    "same_cluster",
    "shares_node",
    "shares_pod",
    "shares_workload",
    "shares_host",
    "shares_service",
    "shares_namespace",
    "shares_reporter",  # the same exporter reported both (kube-state-metrics on two deployments, say)
    "shared_specificity",  # 1 / candidates holding the most specific shared entity (0: none shared)
    "shared_fraction",  # the alert's entities the incident holds
    "same_group_key",
    "same_alertname",
    "text_similarity",
    "topology_distance",  # dependency hops either way (FAR: unrelated or unknown)
    "alert_depends_on_incident",  # hops along "depends on" from the alert's services to the incident's
    "incident_depends_on_alert",  # ... and back: siblings with a common caller have neither
    "runs_on",
    "topology_known",
    "candidates",  # log1p, how crowded the moment is
)
_SPECIFIC = (NODE, POD, WORKLOAD, HOST, SERVICE)


@dataclass(frozen=True, slots=True)
class PairEvidence:
    """The raw relations behind one row of features, kept to explain a decision to people."""

    minutes_since_latest: float
    shared: tuple[tuple[str, str], ...]  # the shared entities, most specific first
    text_similarity: float
    topology_distance: int
    depends_on_it: int  # hops along "depends on" from the alert's services to the incident's (FAR: no path)
    it_depends_on: int  # ... from the incident's services to the alert's
    runs_on: bool
    same_group_key: bool


def pair_features(
    facts: AlertFacts,
    at: datetime,
    candidates: Sequence[IncidentProfile],
    similarities: Sequence[float],
    topology: Topology | None,
    components: Components | None,
) -> tuple[npt.NDArray[np.float64], list[PairEvidence]]:
    """One row of :data:`FEATURES` per candidate, and the evidence behind it."""
    holders: Counter[tuple[str, str]] = Counter()
    for candidate in candidates:
        holders.update(entity for entity in facts.entities if entity in candidate.entities)
    rows = np.zeros((len(candidates), len(FEATURES)), dtype=np.float64)
    evidence: list[PairEvidence] = []
    crowd = math.log1p(len(candidates))
    for i, (candidate, similarity) in enumerate(zip(candidates, similarities, strict=True)):
        shared = sorted(
            (entity for entity in facts.entities if entity in candidate.entities),
            key=lambda entity: (_rank(entity[0]), holders[entity]),
        )
        kinds = {kind for kind, _ in shared}
        specific = [holders[entity] for entity in shared if entity[0] in _SPECIFIC]
        distance, downstream, upstream, runs_on, known = FAR, FAR, FAR, False, False
        if topology is not None and components is not None:
            theirs = candidate.components
            known = bool((components.services or components.nodes) and (theirs.services or theirs.nodes))
            if known:
                distance = topology.distance(components.services, theirs.services)
                downstream = topology.dependency_hops(components.services, theirs.services)
                upstream = topology.dependency_hops(theirs.services, components.services)
                runs_on = topology.runs_on(components, theirs)
        latest = _minutes(at, candidate.last_at)
        same_group = bool(facts.group_key) and facts.group_key in candidate.group_keys
        rows[i] = (
            math.log1p(_minutes(at, candidate.opened_at)),
            math.log1p(latest),
            float(candidate.firing > 0),
            math.log1p(_minutes(at, candidate.resolved_at)) if candidate.firing == 0 and candidate.resolved_at else 0.0,
            float(facts.fingerprint in candidate.fingerprints),
            math.log1p(candidate.alerts),
            float(facts.cluster in candidate.clusters),
            float(NODE in kinds),
            float(POD in kinds),
            float(WORKLOAD in kinds),
            float(HOST in kinds),
            float(SERVICE in kinds),
            float(NAMESPACE in kinds),
            float(REPORTER in kinds),
            1.0 / min(specific) if specific else 0.0,
            len(shared) / max(1, len(facts.entities)),
            float(same_group),
            float(facts.alertname in candidate.alertnames),
            similarity,
            float(distance),
            float(downstream),
            float(upstream),
            float(runs_on),
            float(known),
            crowd,
        )
        evidence.append(
            PairEvidence(latest, tuple(shared), similarity, distance, downstream, upstream, runs_on, same_group)
        )
    return rows, evidence


def _minutes(at: datetime, since: datetime) -> float:
    return max(0.0, (at - since).total_seconds() / 60)


def _rank(kind: str) -> int:
    order = (NODE, POD, WORKLOAD, HOST, SERVICE, NAMESPACE)
    return order.index(kind) if kind in order else len(order)
