"""The hard cases of correlation, each on a stream from the project's own generator, replayed through the same
correlator class and shipped model the worker uses (in simulated time, with the real embedding model)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from knowledge.correlation.correlator import CorrelationPolicy, Correlator
from knowledge.correlation.generator import FAULT_KINDS, GeneratedStream, Scenario, World, build_world
from knowledge.correlation.model import load_pair_model
from knowledge.correlation.stream import StreamLine, correlate, read_stream
from knowledge.correlation.topology import Topology
from knowledge.embeddings import Embedder


@pytest.fixture(scope="module")
def correlator(shared_embedder: Embedder) -> Correlator:
    model = load_pair_model(None)  # the shipped default: what a fresh install runs
    return Correlator(model, shared_embedder, None, CorrelationPolicy(threshold=model.threshold))


def _lines(stream: GeneratedStream, tmp_path: Any) -> list[StreamLine]:
    """The stream as the eval reads it: written, then read back from the file."""
    path, _topology = stream.write(tmp_path, compress=False)
    return list(read_stream(path))


def _pieces(lines: Sequence[StreamLine], correlator: Correlator) -> dict[str, set[int]]:
    """Each true incident → the predicted incidents its firing lines went to."""
    predicted = {a.index: a.incident for a in correlate(lines, correlator)}
    pieces: dict[str, set[int]] = defaultdict(set)
    for line in lines:
        if line.alert.status == "firing":
            assert line.truth is not None
            pieces[str(line.truth["incident"])].add(predicted[line.index])
    return pieces


def test_the_same_symptom_on_different_days_belongs_to_different_incidents(
    correlator: Correlator, tmp_path: Any
) -> None:
    world = build_world(5, clusters=1)
    cluster = world.cluster_names[0]
    db = world.service_names(cluster, "database")[0]
    stream = world.stream(
        [
            Scenario("db_down", start_min=60, duration_min=30, cluster=cluster, root=db, spread=1.0),
            Scenario("db_saturation", start_min=60 + 26 * 60, duration_min=30, cluster=cluster, root=db, spread=1.0),
        ]
    )
    pieces = _pieces(_lines(stream, tmp_path), correlator)
    first, second = pieces.values()
    assert not first & second


def test_a_recurrence_hours_after_the_resolve_is_a_new_incident(correlator: Correlator, tmp_path: Any) -> None:
    world = build_world(8, clusters=2)
    stream = world.stream(
        [
            Scenario("cache_down", start_min=5, duration_min=20),
            Scenario("cache_down", start_min=5 + 20 + 180, duration_min=15, repeat_of=0),
        ]
    )
    pieces = _pieces(_lines(stream, tmp_path), correlator)
    first, second = pieces.values()
    assert not first & second


def test_a_chatty_alert_stays_one_incident_and_swallows_no_lone_alert(correlator: Correlator, tmp_path: Any) -> None:
    world = build_world(1, clusters=1)
    cluster = world.cluster_names[0]
    lone = [Scenario("noise", start_min=30 + 60 * i, duration_min=20, cluster=cluster) for i in range(8)]
    stream = world.stream([Scenario("flap", start_min=0, duration_min=600, cluster=cluster), *lone])
    lines = _lines(stream, tmp_path)
    pieces = _pieces(lines, correlator)
    chatty = next(line.truth for line in lines if line.truth and line.truth["kind"] == "flap")
    assert chatty is not None
    episodes = {line.alert.starts_at for line in lines if line.truth == chatty}
    assert len(episodes) >= 5  # it fired again and again, with quiet spells between
    (its_incident,) = pieces.pop(str(chatty["incident"]))  # one incident all day long
    assert all(its_incident not in others for others in pieces.values())  # and no lone alert joined it


def test_a_thousand_alert_storm_from_one_fault_is_one_incident(correlator: Correlator, tmp_path: Any) -> None:
    world = build_world(4, clusters=1)
    cluster = world.cluster_names[0]
    node = world.busiest_node(cluster)
    stream = world.stream(
        [Scenario("node_failure", start_min=5, duration_min=40, cluster=cluster, root=node, spread=1.0)]
    )
    lines = _lines(stream, tmp_path)
    firing = [line for line in lines if line.alert.status == "firing"]
    assert len(firing) >= 1000
    assert len({line.alert.fingerprint for line in firing}) >= 30  # many different alerts, not one re-sent
    (pieces,) = _pieces(lines, correlator).values()
    assert len(pieces) == 1


# Faults of a service of its own: not of what everything shares (a node, DNS, the control plane, the ingress), nor
# a rollout across clusters.
SHARED_ROOTS = frozenset({"node_failure", "node_pressure", "dns_failure", "control_plane", "ingress_failure"})
SERVICE_FAULTS = tuple(kind for kind in FAULT_KINDS if kind not in SHARED_ROOTS | {"global_rollout"})
OVERLAP_WORLDS = range(400, 440)
# Measured with the shipped model on these 40 worlds (2026-12-07): 9 merged with the topology, 10 without. Not yet
# right (see the README): the bound keeps a retrained model from doing worse.
MOST_MERGED = 12


def _affected(world: World, cluster: str, service: str) -> set[str]:
    """``service`` and every service of ``cluster`` that depends on it, directly or not."""
    found, todo = {service}, [service]
    while todo:
        for caller_cluster, caller in world.callers_of(cluster, todo.pop()):
            if caller_cluster == cluster and caller not in found:
                found.add(caller)
                todo.append(caller)
    return found


def _unrelated_faults(seed: int) -> GeneratedStream:
    """Two faults of kinds drawn at random in one cluster, on services that no service depends on both of (directly
    or not), the second starting 2 to 10 minutes after the first."""
    rng = random.Random(seed)
    world = build_world(seed, clusters=1)
    cluster = world.cluster_names[0]
    while True:
        first_kind, second_kind = rng.choice(SERVICE_FAULTS), rng.choice(SERVICE_FAULTS)
        if not (roots := world.root_options(first_kind, cluster)):
            continue
        first = rng.choice(roots)
        reach = _affected(world, cluster, first)
        if others := [
            r for r in world.unrelated_roots(second_kind, cluster, first) if not _affected(world, cluster, r) & reach
        ]:
            break
    second, gap = rng.choice(others), rng.uniform(2, 10)
    return world.stream(
        [
            Scenario(first_kind, start_min=10, duration_min=25, cluster=cluster, root=first),
            Scenario(second_kind, start_min=10 + gap, duration_min=25, cluster=cluster, root=second),
        ]
    )


def _merged(lines: Sequence[StreamLine], correlator: Correlator) -> bool:
    """Whether the incident that got most of one fault's firing alerts also got most of the other's."""
    predicted = {a.index: a.incident for a in correlate(lines, correlator)}
    landed: dict[str, Counter[int]] = defaultdict(Counter)
    for line in lines:
        if line.alert.status == "firing":
            assert line.truth is not None and line.truth["kind"] == "cascade"
            landed[str(line.truth["incident"])][predicted[line.index]] += 1
    first, second = (counts.most_common(1)[0][0] for counts in landed.values())
    return first == second


@pytest.mark.parametrize("topology", [True, False], ids=["with topology", "without topology"])
def test_two_unrelated_faults_overlapping_in_one_cluster_mostly_stay_two_incidents(
    correlator: Correlator, topology: bool, tmp_path: Path
) -> None:
    merged = []
    for seed in OVERLAP_WORLDS:
        path, topology_path = _unrelated_faults(seed).write(tmp_path / str(seed), compress=False)
        known = Topology.load(topology_path) if topology else None
        used = Correlator(correlator.scorer, correlator.embedder, known, correlator.policy)
        if _merged(list(read_stream(path)), used):
            merged.append(seed)
    assert len(merged) <= MOST_MERGED, merged
