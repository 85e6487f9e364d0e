"""knowledge/correlation/generator.py: synthetic labelled alert streams (format, topology, hard cases)."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from knowledge.correlation.generator import (
    FAULT_KINDS,
    GeneratedStream,
    Scenario,
    World,
    build_world,
    generate,
    rule_keys,
)
from knowledge.fingerprint import labels_fingerprint
from knowledge.text import alert_from_mapping

Line = dict[str, Any]


@pytest.fixture(scope="module")
def day() -> GeneratedStream:
    return generate(11, hours=8, clusters=2)


def incidents(lines: list[Line]) -> dict[str, list[Line]]:
    grouped: dict[str, list[Line]] = defaultdict(list)
    for line in lines:
        grouped[line["truth"]["incident"]].append(line)
    return grouped


def episodes(lines: list[Line]) -> dict[tuple[str, str], list[Line]]:
    grouped: dict[tuple[str, str], list[Line]] = defaultdict(list)
    for line in lines:
        grouped[(line["alert"]["fingerprint"], line["alert"]["startsAt"])].append(line)
    return grouped


def test_same_seed_same_stream_other_seed_other_world() -> None:
    first, again = generate(3, hours=2), generate(3, hours=2)
    assert first.lines == again.lines and first.topology == again.topology
    other = generate(4, hours=2)
    services = {s["name"] for c in first.topology["clusters"] for s in c["services"]}
    assert services != {s["name"] for c in other.topology["clusters"] for s in c["services"]}


def test_lines_are_alertmanager_deliveries_with_truth(day: GeneratedStream) -> None:
    lines = day.lines
    assert len(lines) > 1000
    assert [line["at"] for line in lines] == sorted(line["at"] for line in lines)
    for line in lines:
        alert = line["alert"]
        parsed = alert_from_mapping(alert)
        assert parsed.alertname == alert["labels"]["alertname"]
        assert {"alertname", "severity", "cluster"} <= alert["labels"].keys()
        assert alert["fingerprint"] == labels_fingerprint(alert["labels"])
        assert alert["annotations"].keys() == {"summary", "description"}
        assert (alert["endsAt"] == "0001-01-01T00:00:00Z") == (alert["status"] == "firing")
        assert alert["startsAt"] < line["at"]
        truth = line["truth"]
        assert truth.keys() == {"incident", "root_cause", "root_service", "kind", "root_cluster", "scenario"}
        assert truth["kind"] in ("cascade", "noise", "flap")
        assert truth["scenario"] in (*FAULT_KINDS, "noise", "flap")
    for deliveries in episodes(lines).values():
        statuses = [d["alert"]["status"] for d in deliveries]
        assert statuses[-1] == "resolved" and statuses.count("resolved") == 1 and len(statuses) >= 2
        assert len({d["truth"]["incident"] for d in deliveries}) == 1
    ids = list(dict.fromkeys(line["truth"]["incident"] for line in lines))
    assert ids == [f"F{i + 1:04d}" for i in range(len(ids))]  # numbered in order of first delivery
    kinds = {group[0]["truth"]["kind"] for group in incidents(lines).values()}
    assert kinds == {"cascade", "noise", "flap"}


def test_annotation_values_drift_between_resends(day: GeneratedStream) -> None:
    texts: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key, deliveries in episodes(day.lines).items():
        texts[key] = {d["alert"]["annotations"]["description"] for d in deliveries}
    assert sum(len(t) > 1 for t in texts.values()) > len(texts) // 4


def test_alerts_name_only_pods_and_nodes_of_the_topology(day: GeneratedStream) -> None:
    pods: set[tuple[str, str]] = set()
    nodes: set[tuple[str, str]] = set()
    for cluster in day.topology["clusters"]:
        assert cluster.keys() == {"name", "region", "service_mesh", "nodes", "services"}
        node_pods = {n["name"]: set(n["pods"]) for n in cluster["nodes"]}
        nodes |= {(cluster["name"], name) for name in node_pods}
        names = {s["name"] for s in cluster["services"]}
        for service in cluster["services"]:
            assert service.keys() == {
                "name",
                "namespace",
                "type",
                "tech",
                "kind",
                "public_host",
                "depends_on",
                "pods",
            }
            for dep in service["depends_on"]:
                other, _, name = dep.rpartition("/")
                assert name in names or other in {c["name"] for c in day.topology["clusters"]}
            for pod in service["pods"]:
                assert pod["name"] in node_pods[pod["node"]]
                pods.add((cluster["name"], pod["name"]))
    for line in day.lines:
        labels = line["alert"]["labels"]
        if "pod" in labels:
            assert (labels["cluster"], labels["pod"]) in pods, labels
        if "node" in labels:
            assert (labels["cluster"], labels["node"]) in nodes, labels


def test_every_rule_renders_somewhere() -> None:
    missing = set(rule_keys())
    assert len(missing) >= 80
    for seed in range(40):
        world = build_world(seed, clusters=3)
        for key in sorted(missing):
            try:
                stream = world.stream([Scenario("noise", 0, 20, rule=key)])
            except ValueError:  # no component of this world fits the rule
                continue
            assert stream.lines and all("{" not in line["alert"]["annotations"]["summary"] for line in stream.lines)
            missing.discard(key)
        if not missing:
            break
    assert not missing


def test_write_gzip_and_topology(tmp_path: Path) -> None:
    stream = generate(2, hours=1)
    lines_path, topology_path = stream.write(tmp_path)
    with gzip.open(lines_path, "rt") as handle:
        assert [json.loads(row) for row in handle] == stream.lines
    assert json.loads(topology_path.read_text()) == stream.topology


# ---------------------------------------------------------------------------------------------- hard cases


def first_cluster(world: World) -> str:
    return world.cluster_names[0]


def active_span(lines: list[Line]) -> tuple[str, str]:
    return lines[0]["at"], lines[-1]["at"]


def test_two_unrelated_faults_overlap_in_one_cluster() -> None:
    world = build_world(21, clusters=1)
    cluster = first_cluster(world)
    db = world.service_names(cluster, "database")[0]
    node = world.node_names(cluster)[-1]
    stream = world.stream(
        [
            Scenario("db_down", start_min=10, duration_min=25, cluster=cluster, root=db, spread=0.8),
            Scenario("node_pressure", start_min=14, duration_min=25, cluster=cluster, root=node, spread=1.0),
        ]
    )
    groups = [g for g in incidents(stream.lines).values() if g[0]["truth"]["kind"] == "cascade"]
    assert {g[0]["truth"]["root_service"] for g in groups} == {db, node}
    (a_start, a_end), (b_start, b_end) = (active_span(g) for g in groups)
    assert a_start < b_end and b_start < a_end
    assert {g[0]["truth"]["root_cluster"] for g in groups} == {cluster}


def test_same_symptom_in_two_faults_on_different_days() -> None:
    world = build_world(5, clusters=1)
    cluster = first_cluster(world)
    db = world.service_names(cluster, "database")[0]
    stream = world.stream(
        [
            Scenario("db_down", start_min=60, duration_min=30, cluster=cluster, root=db, spread=1.0),
            Scenario("db_saturation", start_min=60 + 26 * 60, duration_min=30, cluster=cluster, root=db, spread=1.0),
        ]
    )
    groups = list(incidents(stream.lines).values())
    assert len(groups) == 2
    callers = {name for _, name in world.callers_of(cluster, db)}
    symptom_sets = [{line["alert"]["fingerprint"] for line in g if not line["truth"]["root_cause"]} for g in groups]
    on_callers = [
        {
            line["alert"]["fingerprint"]
            for line in g
            if line["alert"]["labels"].get("service") in callers or line["alert"]["labels"].get("deployment") in callers
        }
        for g in groups
    ]
    assert symptom_sets[0] & symptom_sets[1]
    assert on_callers[0] and on_callers[1]


def test_recurrence_is_a_new_incident_with_the_same_root_fingerprint() -> None:
    world = build_world(8, clusters=2)
    faults = [
        Scenario("cache_down", start_min=5, duration_min=20),
        Scenario("cache_down", start_min=5 + 20 + 180, duration_min=15, repeat_of=0),
    ]
    stream = world.stream(faults)
    assert stream.scenarios[1].root == stream.scenarios[0].root
    groups = list(incidents(stream.lines).values())
    assert len(groups) == 2
    roots = [{line["alert"]["fingerprint"] for line in g if line["truth"]["root_cause"]} for g in groups]
    assert roots[0] and roots[0] == roots[1]
    assert groups[0][-1]["at"] < groups[1][0]["at"]


def test_chatty_alert_flaps_as_one_incident() -> None:
    world = build_world(9)
    stream = world.stream([Scenario("flap", start_min=0, duration_min=10 * 60)])
    assert {line["truth"]["kind"] for line in stream.lines} == {"flap"}
    assert len({line["truth"]["incident"] for line in stream.lines}) == 1
    assert len({line["alert"]["fingerprint"] for line in stream.lines}) == 1
    assert len(episodes(stream.lines)) >= 3


def test_node_failure_storm_reaches_a_thousand_alerts() -> None:
    world = build_world(3, clusters=1, pods_per_node=350)
    cluster = first_cluster(world)
    node = world.busiest_node(cluster)
    stream = world.stream(
        [Scenario("node_failure", start_min=10, duration_min=15, cluster=cluster, root=node, spread=1.0)]
    )
    assert len({line["alert"]["fingerprint"] for line in stream.lines}) >= 1000
    assert {line["truth"]["incident"] for line in stream.lines} == {"F0001"}
    roots = [line for line in stream.lines if line["truth"]["root_cause"]]
    assert roots and all(line["truth"]["root_service"] == node for line in roots)
    assert not stream.lines[0]["truth"]["root_cause"]  # pods alert before the node's slow NotReady rule


def test_global_rollout_has_a_root_in_every_cluster() -> None:
    world = build_world(4, clusters=3)
    stream = world.stream([Scenario("global_rollout", start_min=5, duration_min=40, spread=0.5)])
    roots = {line["alert"]["labels"]["cluster"] for line in stream.lines if line["truth"]["root_cause"]}
    assert len(roots) >= 2


def test_unknown_kind_and_root_are_refused() -> None:
    world = build_world(1)
    with pytest.raises(ValueError, match="unknown scenario kind"):
        world.stream([Scenario("meteor", 0)])
    with pytest.raises(ValueError, match="no root"):
        world.stream([Scenario("db_down", 0, root="no-such-service")])
