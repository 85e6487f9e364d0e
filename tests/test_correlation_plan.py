"""The plan's view of candidates: incidents as the decisions before an alert will leave them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.correlation.plan import Plan, Recent, placeholder
from knowledge.alerts import AlertStatus, NormalizedAlert
from knowledge.correlation.correlator import Decision, Kind
from knowledge.correlation.facts import AlertFacts, alert_facts
from knowledge.correlation.profile import IncidentProfile
from knowledge.correlation.state import PER_KEY, index_keys

T0 = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)


def _facts(name: str, cluster: str = "c1", **labels: str) -> AlertFacts:
    alert = NormalizedAlert("alertmanager", AlertStatus.FIRING, name, {"alertname": name, "cluster": cluster, **labels})
    return alert_facts(alert)


OPENS = Decision(Kind.NEW, None, None, "new incident")


def _joined(incident: int) -> Decision:
    return Decision(Kind.LEARNED, incident, 0.9, f"joined #{incident}")


def _stored(incident: int, facts: AlertFacts, at: datetime, version: int) -> IncidentProfile:
    """A candidate as the store reads it (its sets are the store's cache: nobody may change them)."""
    profile = IncidentProfile(id=incident, opened_at=at, last_at=at)
    profile.add(facts, at)
    profile.version = version
    return profile


def _listed(incident: int, facts: AlertFacts, at: datetime) -> Recent:
    """The database's per-key lists when ``incident`` is the only one, last active at ``at`` on its alert's keys."""
    return {key: [(incident, at)] for key in index_keys(facts)}


def test_an_incident_the_plan_opens_is_a_candidate_of_later_alerts_that_share_a_key() -> None:
    plan = Plan()
    db_down = _facts("PostgresDown", node="worker-7", service="orders-db")
    plan.add(41, db_down, T0, OPENS, [], None)
    pods = _facts("KubePodNotReady", node="worker-7", pod="cart-api-5d8f9c7b6-q2w4x")
    elsewhere = _facts("KubePodNotReady", node="worker-9")
    older = _stored(3, elsewhere, T0, version=5)
    [first, second] = plan.candidates(pods, [older], _listed(3, elsewhere, T0))  # the node and the cluster are shared
    assert (first.id, first.version, first.alerts) == (placeholder(41), 1, 1)
    assert second is older  # a new incident sorts after an existing one with the same latest activity
    assert [c.id for c in plan.candidates(_facts("Other", namespace="x"), [], {})] == [placeholder(41)]  # the cluster
    assert plan.candidates(_facts("Other", cluster="c2"), [], {}) == []  # nothing shared


def test_a_planned_join_changes_the_plans_copy_never_the_stores_profile() -> None:
    plan = Plan()
    first = _facts("HighErrorRate", service="checkout")
    stored = _stored(7, first, T0, version=3)
    later = T0 + timedelta(minutes=2)
    second = _facts("HighLatency", service="checkout", pod="checkout-7d9f8c6b5-x2x4k")
    plan.add(42, second, later, _joined(7), [stored], None)
    [planned] = plan.candidates(second, [stored], _listed(7, first, T0))
    assert (planned.id, planned.version, planned.alerts, planned.last_at) == (7, 4, 2, later)
    assert "HighLatency" in planned.alertnames and second.text in planned.texts
    assert (stored.version, stored.alerts, set(stored.alertnames)) == (3, 1, {"HighErrorRate"})
    # A third alert that shares only the new alert's pod still finds the incident: the plan added that key.
    [again] = plan.candidates(_facts("PodOOMKilled", pod="checkout-7d9f8c6b5-x2x4k"), [], {})
    assert again is planned


def test_a_planned_resolve_resolves_the_plans_copy_unless_another_alert_of_it_fires() -> None:
    facts = _facts("PostgresDown", service="orders-db", node="worker-3")
    stored = _stored(7, facts, T0, version=3)
    later = T0 + timedelta(minutes=4)

    plan = Plan()
    plan.resolve(7, later, stored, fires_in_store=False)  # its last firing alert resolves
    [resolved] = plan.candidates(facts, [stored], _listed(7, facts, T0))
    assert (resolved.firing, resolved.resolved_at, resolved.version) == (0, later, 4)  # as the transaction leaves it
    assert (stored.firing, stored.resolved_at, stored.version) == (1, None, 3)  # the store's profile is untouched
    plan.resolve(7, later + timedelta(minutes=1), stored, fires_in_store=False)
    assert plan.candidates(facts, [stored], _listed(7, facts, T0))[0].version == 4  # resolved already: nothing changes

    plan = Plan()
    plan.resolve(7, later, stored, fires_in_store=True)  # another alert linked to it still fires
    assert plan.candidates(facts, [stored], _listed(7, facts, T0)) == [stored]

    plan = Plan()
    plan.add(42, _facts("PostgresTooManyConnections", service="orders-db"), T0, _joined(7), [stored], None)
    assert plan.incident_of(42) == 7
    plan.resolve(7, later, stored, fires_in_store=False)  # the alert the plan joins to it fires
    assert plan.candidates(facts, [stored], _listed(7, facts, T0))[0].firing > 0

    plan = Plan()
    plan.add(43, facts, T0, OPENS, [], None, fires=False)  # it opens an incident, and its resolve is accepted already
    plan.resolve(placeholder(43), later, None, fires_in_store=False)
    [opened] = plan.candidates(facts, [], {})
    assert (opened.id, opened.firing, opened.resolved_at) == (placeholder(43), 0, later)
    plan.resolve(99, later, None, fires_in_store=False)  # not a candidate (merged): nothing to plan
    assert 99 not in plan.incidents()


def test_an_incident_the_plan_adds_to_a_full_key_pushes_the_oldest_out_as_the_transaction_will() -> None:
    node = _facts("KubePodNotReady", node="worker-7")
    older = [_stored(i, node, T0 + timedelta(seconds=i), version=1) for i in range(1, PER_KEY + 1)]
    newest_first = [(p.id, p.last_at) for p in reversed(older)]
    full = {key: newest_first for key in index_keys(node) if not key.startswith("fp:")}  # the node's, the cluster's
    plan = Plan()
    assert {c.id for c in plan.candidates(node, older, full)} == {p.id for p in older}
    plan.add(41, _facts("KubeNodeNotReady", node="worker-7"), T0 + timedelta(minutes=5), OPENS, [], None)

    found = {c.id for c in plan.candidates(node, older, full)}

    assert placeholder(41) in found and older[0].id not in found  # in both lists: the new one in, the oldest out
    assert len(found) == PER_KEY
    # A key of the oldest one that the new incident does not share keeps it listed.
    own = _facts("KubePodNotReady", node="worker-7", pod="cart-api-5d8f9c7b6-q2w4x")
    pod_key = f"pod:{dict(own.entities)['pod']}"
    listed = {**full, pod_key: [(older[0].id, older[0].last_at)]}
    assert older[0].id in {c.id for c in plan.candidates(own, older, listed)}
