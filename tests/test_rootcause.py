"""Root-cause ranking on small hand-made topologies with known roots, each source alone changing the top cause,
naming rules, and the learned graph standing in for a topology file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from knowledge.correlation.graph import DependencyGraph
from knowledge.correlation.topology import Topology
from knowledge.rootcause.model import CHANGE, HISTORY, ChangeEvent, IncidentAlert, PastCause
from knowledge.rootcause.ranker import RootCauseRanker

T0 = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)
KSM = {"job": "kube-state-metrics", "service": "kube-state-metrics", "pod": "kube-state-metrics-6d8f9c7b5-q2w4x"}

TOPOLOGY = {
    "clusters": [
        {
            "name": "c1",
            "nodes": [
                {"name": "node-a", "ip": "10.0.0.1"},
                {"name": "node-b", "ip": "10.0.0.2"},
                {"name": "node-c", "ip": "10.0.0.3"},
            ],
            "services": [
                {
                    "name": "web",
                    "depends_on": ["api"],
                    "public_host": "shop.example.com",
                    "pods": [{"name": "web-7d9f8c6b5-x2x4k", "ip": "10.1.0.1", "node": "node-a"}],
                },
                {
                    "name": "api",
                    "depends_on": ["db", "cache"],
                    "pods": [
                        {"name": "api-5f6d7c8b9-bcdfg", "ip": "10.1.0.2", "node": "node-b"},
                        {"name": "api-5f6d7c8b9-hjklm", "ip": "10.1.0.3", "node": "node-c"},
                    ],
                },
                {
                    "name": "db",
                    "pods": [
                        {"name": "db-0", "ip": "10.1.0.4", "node": "node-c"},
                        {"name": "db-1", "ip": "10.1.0.5", "node": "node-b"},
                    ],
                },
                {"name": "cache", "pods": [{"name": "cache-0", "ip": "10.1.0.6", "node": "node-a"}]},
                {"name": "mailer", "pods": [{"name": "mailer-6b7c8d9f4-mmmmm", "ip": "10.1.0.7", "node": "node-c"}]},
                {"name": "search", "pods": [{"name": "search-0", "ip": "10.1.0.8", "node": "node-c"}]},
                {"name": "reports", "depends_on": ["db"]},
                {"name": "billing", "depends_on": ["db"]},
                {"name": "events", "pods": [{"name": "events-0", "ip": "10.1.0.10", "node": "node-b"}]},
                {"name": "indexer", "depends_on": ["events"]},
                {"name": "resizer", "depends_on": ["events"]},
                {"name": "coredns", "pods": [{"name": "coredns-5d78c9869d-ddddd", "ip": "10.1.0.9", "node": "node-a"}]},
                {
                    "name": "node-exporter",
                    "pods": [
                        {"name": f"node-exporter-{s}", "ip": f"10.0.0.{i}", "node": f"node-{n}"}
                        for i, (s, n) in enumerate([("aaaaa", "a"), ("bbbbb", "b"), ("ccccc", "c")], 1)
                    ],
                },
            ],
        }
    ]
}


def topology() -> Topology:
    return Topology.from_document(TOPOLOGY)


def alert(alertname: str, minutes: float, **labels: str) -> IncidentAlert:
    full = {"alertname": alertname, "cluster": "c1", **labels}
    return IncidentAlert(f"{alertname}/{sorted(labels.items())}", full, T0 + timedelta(minutes=minutes))


def names(ranking: list) -> list[str]:  # type: ignore[type-arg]
    return [c.name for c in ranking]


def test_node_failure_ranks_the_node_once_its_late_not_ready_alert_joins() -> None:
    symptoms = [
        alert("PostgresqlDown", 0, job="db", service="db", pod="db-0", instance="10.1.0.4:9187"),
        alert("KubernetesPodCrashLooping", 1, **{**KSM, "pod": "api-5f6d7c8b9-hjklm"}),
        alert("HighHttp5xxErrorRate", 2, job="web", service="web", instance="10.1.0.1:8080"),
    ]
    ranker = RootCauseRanker(topology())
    assert names(ranker.rank(symptoms))[0] == "db"  # before the node says anything, the database explains most
    not_ready = alert("KubernetesNodeNotReady", 10, **KSM, node="node-c")
    ranking = ranker.rank([*symptoms, not_ready])
    assert ranking[0].name == "node-c" and ranking[0].kind == "node"
    assert ranking[0].confidence > ranking[1].confidence
    assert any("NotReady" in e.text for e in ranking[0].evidence)


def test_database_down_with_failing_callers_that_alerted_first() -> None:
    alerts = [
        alert("HighHttp5xxErrorRate", 0, job="api", service="api", instance="10.1.0.2:8080"),
        alert("HighRequestLatency", 0.5, job="web", service="web", instance="10.1.0.1:8080"),
        alert("PostgresqlDown", 1, job="db", service="db", pod="db-0", instance="10.1.0.4:9187"),
        alert("BlackboxProbeFailed", 1.5, job="blackbox", instance="https://shop.example.com/health"),
    ]
    ranking = RootCauseRanker(topology()).rank(alerts)
    assert names(ranking)[0] == "db" and set(names(ranking)[1:3]) == {"api", "web"}  # its callers: symptoms
    assert ranking[0].kind == "service" and 0 < ranking[0].confidence <= 1


def test_bad_deploy_with_a_change_event_names_the_change_in_evidence() -> None:
    alerts = [
        alert("KubernetesPodCrashLooping", 0, **{**KSM, "pod": "api-6c7d8f9b2-zzzzz"}),  # a new ReplicaSet's pod
        alert("HighHttp5xxErrorRate", 1, job="web", service="web", instance="10.1.0.1:8080"),
    ]
    deploy = ChangeEvent("api", "deploy", T0 - timedelta(minutes=6), version="v2.31", who="@ana")
    ranking = RootCauseRanker(topology()).rank(alerts, changes=[deploy])
    assert ranking[0].name == "api"
    texts = [e.text for e in ranking[0].evidence if e.source == CHANGE]
    assert texts == ["api v2.31 deployed by @ana 6 min before the first alert"]


def test_topology_alone_changes_the_top_cause() -> None:
    alerts = [
        alert("HighRequestLatency", 0, job="api", service="api", instance="10.1.0.2:8080"),
        alert("PostgresqlSlowQueries", 2, job="db", service="db", pod="db-0", instance="10.1.0.4:9187"),
    ]
    assert names(RootCauseRanker().rank(alerts))[0] == "api"  # earliest, nothing says what depends on what
    assert names(RootCauseRanker(topology()).rank(alerts))[0] == "db"  # api depends on db


def _two_peers() -> list[IncidentAlert]:
    return [
        alert("HighErrorRate", 0, job="api", service="api"),
        alert("HighErrorRate", 0.2, job="web", service="web"),
    ]


def test_a_change_alone_changes_the_top_cause() -> None:
    ranker = RootCauseRanker()
    assert names(ranker.rank(_two_peers()))[0] == "api"
    flag = ChangeEvent("web", "feature_flag", T0 - timedelta(minutes=3), who="@bo")
    assert names(ranker.rank(_two_peers(), changes=[flag]))[0] == "web"
    stale = ChangeEvent("web", "deploy", T0 - timedelta(hours=5))
    assert names(ranker.rank(_two_peers(), changes=[stale]))[0] == "api"  # too long before the incident


def test_history_alone_changes_the_top_cause_weighted_by_recency() -> None:
    ranker = RootCauseRanker()
    recent = PastCause("web", 0.9, T0 - timedelta(days=2), "#12")
    ranking = ranker.rank(_two_peers(), history=[recent], now=T0)
    assert ranking[0].name == "web"
    assert [e.text for e in ranking[0].evidence if e.source == HISTORY] == [
        "confirmed cause of similar incident #12 (similarity 0.90, 2 days ago)"
    ]
    ancient = PastCause("web", 0.9, T0 - timedelta(days=400), "#3")
    assert names(ranker.rank(_two_peers(), history=[ancient], now=T0))[0] == "api"


def test_candidates_are_named_as_the_topology_names_them() -> None:
    alerts = [
        alert(
            "HostOutOfMemory",
            0,
            job="node-exporter",
            service="node-exporter",
            pod="node-exporter-bbbbb",
            instance="10.0.0.2:9100",
        ),
        alert("KubernetesPodCrashLooping", 1, **{**KSM, "pod": "api-5f6d7c8b9-bcdfg"}),
        alert("KubernetesStatefulSetDown", 1, **KSM, statefulset="db"),
    ]
    ranking = RootCauseRanker(topology()).rank(alerts)
    assert {c.name for c in ranking} == {"node-b", "api", "db"}  # never a pod, an address or c1/...
    assert {c.name: c.kind for c in ranking}["node-b"] == "node"
    plain = RootCauseRanker().rank([alert("RedisDown", 0, job="redis-exporter", service="session-redis")])
    assert names(plain) == ["session-redis"]  # without a topology: the service label


def test_a_node_with_no_alert_of_its_own_is_inferred_from_the_failing_pods_it_runs() -> None:
    alerts = [
        alert("KubernetesPodNotReady", 0, **{**KSM, "pod": "mailer-6b7c8d9f4-mmmmm"}),
        alert("KubernetesPodCrashLooping", 0.5, **{**KSM, "pod": "search-0"}),
    ]
    ranking = RootCauseRanker(topology()).rank(alerts)
    assert ranking[0].name == "node-c" and ranking[0].kind == "node"
    assert any("no alert of its own" in e.text for e in ranking[0].evidence)
    one = RootCauseRanker(topology()).rank(alerts[1:])  # one failing service on it: no reason to suspect the node
    assert "node-c" not in names(one)


def test_a_dependency_several_failing_callers_share_is_inferred_without_its_own_alert() -> None:
    callers = [
        alert("HighHttp5xxErrorRate", 0, job="api", service="api"),
        alert("HighHttp5xxErrorRate", 0.3, job="reports", service="reports"),
        alert("HighHttp5xxErrorRate", 0.6, job="billing", service="billing"),
    ]
    ranking = RootCauseRanker(topology()).rank(callers)
    assert ranking[0].name == "db" and ranking[0].kind == "service"
    assert any("3 alerting services depend on it" in e.text for e in ranking[0].evidence)
    alone = RootCauseRanker(topology()).rank(callers[:1])  # one caller is its own first suspect ...
    assert names(alone)[0] == "api"
    assert set(names(alone)[1:]) == {"db", "cache"}  # ... then what it depends on, as it shows only symptoms
    assert all("api depends on it and shows only symptoms" in c.evidence[0].text for c in alone[1:])


def test_a_queues_backlog_points_at_its_consumers_unless_the_queue_itself_failed() -> None:
    backlog = [
        alert("RabbitmqTooManyReadyMessages", 0, job="events", service="events", pod="events-0"),
        alert("RabbitmqSlowQueueConsuming", 2, job="events", service="events", pod="events-0"),
    ]
    stuck = RootCauseRanker(topology()).rank(backlog)
    assert set(names(stuck)[:2]) == {"indexer", "resizer"}
    assert all("it consumes events, whose backlog grows" in c.evidence[0].text for c in stuck[:2])
    assert "events" in names(stuck)
    down = RootCauseRanker(topology()).rank(
        [alert("RabbitmqDown", 0, job="events", service="events", pod="events-0"), *backlog]
    )
    assert names(down)[0] == "events"


def test_the_clusters_dns_is_suspected_when_many_independent_services_fail_at_once() -> None:
    services = ["mailer", "search", "reports", "billing"]
    failing = [alert("HighHttp5xxErrorRate", 0.4 * i, job=s, service=s) for i, s in enumerate(services)]
    ranking = RootCauseRanker(topology()).rank(failing)
    assert ranking[0].name == "coredns"
    assert any("4 services that do not depend on each other failed" in e.text for e in ranking[0].evidence)
    assert names(RootCauseRanker(topology()).rank(failing[:3]))[0] != "coredns"  # three may be a coincidence
    spread = [alert("HighHttp5xxErrorRate", 3 * i, job=s, service=s) for i, s in enumerate(services)]
    assert names(RootCauseRanker(topology()).rank(spread))[0] != "coredns"  # not at once


def test_a_static_pod_is_named_by_its_service_without_a_topology() -> None:
    fsync = alert("EtcdHighFsyncDurations", 0, job="etcd", service="etcd", pod="etcd-master-1")
    assert names(RootCauseRanker().rank([fsync])) == ["etcd"]


def test_learned_graph_stands_in_for_the_topology_and_survives_a_round_trip(tmp_path: Path) -> None:
    graph = DependencyGraph()
    kubelet = {"job": "kubelet", "service": "kubelet", "instance": "10.0.0.3:10250", "node": "node-c"}
    for burst in range(3):  # db's alerts habitually precede api's: api depends on db
        start = T0 + timedelta(hours=burst)
        graph.observe({"alertname": "DbDown", "cluster": "c1", "service": "db", "pod": "db-0"}, start)
        graph.observe({"alertname": "Api5xx", "cluster": "c1", "service": "api"}, start + timedelta(minutes=2))
    graph.observe({"alertname": "ContainerUnhealthy", "cluster": "c1", **kubelet, "pod": "db-0"}, T0)
    path = tmp_path / "graph.json"
    graph.save(path)
    learned = DependencyGraph.load(path).topology()
    assert learned.services["c1/api"] == {"c1/db"} and learned.pods["c1/db-0"] == ("c1/db", "c1/node-c")
    alerts = [
        alert("Api5xx", 0, service="api"),
        alert("DbSlowQueries", 1, service="db", pod="db-0"),
    ]
    assert names(RootCauseRanker(graph=DependencyGraph.load(path)).rank(alerts))[0] == "db"
