"""What correlation reads from an alert's labels: the component in trouble apart from the exporter that reported it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from knowledge.alerts import AlertStatus, NormalizedAlert
from knowledge.correlation.correlator import Correlator
from knowledge.correlation.facts import HOST, POD, REPORTER, SERVICE, WORKLOAD, AlertFacts, alert_facts
from knowledge.correlation.features import FEATURES, pair_features
from knowledge.correlation.profile import IncidentProfile
from knowledge.correlation.topology import FAR, Topology

T0 = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)
KSM = {"job": "kube-state-metrics", "service": "kube-state-metrics", "instance": "10.9.9.9:8443"}


def facts(name: str, **labels: str) -> AlertFacts:
    alert = NormalizedAlert("alertmanager", AlertStatus.FIRING, name, {"alertname": name, "cluster": "c1", **labels})
    return alert_facts(alert)


def test_kube_state_metrics_reporting_on_a_deployment_names_the_deployment_not_itself() -> None:
    found = facts(
        "KubernetesDeploymentRolloutStuck", **KSM, pod="kube-state-metrics-6d8f9c7b5-q2w4x", deployment="cart"
    )
    assert (WORKLOAD, "cart") in found.entities
    assert {(REPORTER, "kube-state-metrics-6d8f9c7b5-q2w4x"), (REPORTER, "10.9.9.9")} <= found.entities
    assert not {kind for kind, _ in found.entities} & {POD, HOST, SERVICE}


def test_an_exporter_reporting_on_another_workloads_pod_keeps_the_pod_and_sets_its_own_address_apart() -> None:
    found = facts("KubernetesPodCrashLooping", **KSM, pod="reviews-api-5j54mdfkq-7j4ct", namespace="catalog")
    assert {(POD, "reviews-api-5j54mdfkq-7j4ct"), (WORKLOAD, "reviews-api")} <= found.entities
    assert {(REPORTER, "kube-state-metrics"), (REPORTER, "10.9.9.9")} <= found.entities
    assert (HOST, "10.9.9.9") not in found.entities


def test_an_applications_own_metrics_job_and_a_node_agents_address_stay_what_they_are() -> None:
    own = facts("JvmHeapHigh", job="checkout-api-metrics", pod="checkout-api-7d9f8c6b5-x2x4k", instance="10.1.0.2:9404")
    assert {
        (POD, "checkout-api-7d9f8c6b5-x2x4k"),
        (HOST, "10.1.0.2"),
        (SERVICE, "checkout-api-metrics"),
    } <= own.entities
    node = facts("HostOutOfMemory", job="node-exporter", pod="node-exporter-abcde", instance="10.0.0.3:9100")
    assert (HOST, "10.0.0.3") in node.entities and not any(kind == REPORTER for kind, _ in node.entities)


def test_two_alerts_one_exporter_reported_share_only_the_reporter() -> None:
    first = facts("KubernetesDeploymentRolloutStuck", **KSM, pod="kube-state-metrics-6d8f9c7b5-q2w4x", deployment="a")
    second = facts("KubernetesStatefulSetDown", **KSM, pod="kube-state-metrics-6d8f9c7b5-q2w4x", statefulset="b")
    incident = IncidentProfile(1, T0, T0)
    incident.add(first, T0)
    rows, evidence = pair_features(second, T0 + timedelta(minutes=1), [incident], [0.5], None, None)
    row = dict(zip(FEATURES, rows[0], strict=True))
    assert row["shares_reporter"] == 1.0
    assert row["shares_pod"] == row["shares_workload"] == row["shares_host"] == row["shared_specificity"] == 0.0
    assert {kind for kind, _ in evidence[0].shared} == {REPORTER}


class Confident:
    """A pair model that joins everything: the test reads the reason, not the decision."""

    def probabilities(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.full(len(rows), 0.9)


def test_a_join_through_the_reporter_alone_says_so() -> None:
    first = facts("KubernetesDeploymentRolloutStuck", **KSM, pod="kube-state-metrics-6d8f9c7b5-q2w4x", deployment="a")
    second = facts("KubernetesStatefulSetDown", **KSM, pod="kube-state-metrics-6d8f9c7b5-q2w4x", statefulset="b")
    incident = IncidentProfile(7, T0, T0)
    incident.add(first, T0)
    decision = Correlator(Confident(), None).decide(second, T0 + timedelta(minutes=2), [incident])
    assert decision.incident == 7
    assert "reported by the same exporter (kube-state-metrics) as #7" in decision.reason


# web → api → {db, cache}: the database and the cache are siblings (a common caller), not a dependency chain.
SHOP = Topology.from_document(
    {
        "clusters": [
            {
                "name": "c1",
                "services": [
                    {"name": "web", "depends_on": ["api"]},
                    {"name": "api", "depends_on": ["db", "cache"]},
                    {"name": "db"},
                    {"name": "cache"},
                ],
            }
        ]
    }
)


def incident_of(number: int, first: AlertFacts) -> IncidentProfile:
    incident = IncidentProfile(number, T0, T0)
    incident.add(first, T0, SHOP.components(first))
    return incident


def topology_row(alert: AlertFacts, incident: IncidentProfile) -> dict[str, float]:
    rows, _ = pair_features(alert, T0 + timedelta(minutes=1), [incident], [0.5], SHOP, SHOP.components(alert))
    return dict(zip(FEATURES, rows[0], strict=True))


def test_dependency_direction_tells_a_caller_and_a_dependency_from_a_sibling() -> None:
    database_down = incident_of(1, facts("PostgresDown", service="db"))
    caller = topology_row(facts("HttpErrors", service="web"), database_down)
    assert (caller["topology_distance"], caller["alert_depends_on_incident"]) == (2.0, 2.0)
    assert caller["incident_depends_on_alert"] == FAR
    sibling = topology_row(facts("RedisDown", service="cache"), database_down)
    assert sibling["topology_distance"] == 2.0  # undirected, the sibling is as near as the caller...
    assert sibling["alert_depends_on_incident"] == sibling["incident_depends_on_alert"] == FAR  # ...but on no path
    web_errors = incident_of(2, facts("HttpErrors", service="web"))
    dependency = topology_row(facts("PostgresDown", service="db"), web_errors)
    assert (dependency["alert_depends_on_incident"], dependency["incident_depends_on_alert"]) == (FAR, 2.0)


def test_a_join_says_which_way_the_dependency_goes() -> None:
    correlator = Correlator(Confident(), None, SHOP)
    at = T0 + timedelta(minutes=2)
    caller = correlator.decide(facts("HttpErrors", service="web"), at, [incident_of(7, facts("Down", service="db"))])
    assert "depends on #7's services (2 dependency hops)" in caller.reason
    cause = correlator.decide(facts("PostgresDown", service="db"), at, [incident_of(8, facts("Err", service="api"))])
    assert "#8's services depend on it (1 dependency hop)" in cause.reason
    sibling = correlator.decide(facts("RedisDown", service="cache"), at, [incident_of(9, facts("Down", service="db"))])
    assert "2 dependency hops away" in sibling.reason
