"""The learned correlator in the worker: one incident per fault, reasons stored, decisions made ahead of the
write lock, shadow mode, and the runaway guard. Real SQLite, real HTTP, the real embedding model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.correlation.live import LearnedCorrelation, ShadowCorrelation
from bot.incidents.models import Incident, IncidentAlert, IncidentStatus
from bot.ingest.models import Alert, Delivery
from bot.runtime import Runtime
from bot.settings import Route, Settings
from bot.standin.workspace import DEFAULT_BOT_TOKEN
from knowledge.correlation.state import PER_KEY
from knowledge.embeddings import Embedder
from tests.conftest import auth
from tests.slack_support import running_bot
from tests.support import FakeClock, am_alert, am_group, serve_in_thread


class Stack:
    def __init__(self, runtime: Runtime, http: httpx.Client, clock: FakeClock) -> None:
        self.runtime, self.http, self.clock = runtime, http, clock

    def fire(
        self,
        name: str,
        *,
        group: str,
        summary: str,
        status: str = "firing",
        since: datetime | None = None,
        **labels: str,
    ) -> None:
        """Send one alert in its own webhook (``since``: the start of the episode a resolve ends)."""
        alert = am_alert(name, status=status, starts_at=since or self.clock.now, **labels)
        alert["annotations"] = {"summary": summary, "description": summary}
        response = self.http.post(
            "/alerts/alertmanager", json=am_group([alert], group_key=f"{{}}:{{{group}}}"), headers=auth()
        )
        assert response.status_code == 202, response.text

    def process(self) -> None:
        while self.runtime.worker.run_once():
            pass

    def step(self) -> None:
        """What the worker loop does: decide ahead (outside the write lock), then apply."""
        self.runtime.incidents.prepare(self.runtime.database)
        self.process()

    def incident_of(self) -> dict[str, int]:
        with self.runtime.database.read() as session:
            rows = session.execute(
                select(Alert.alertname, Alert.labels, IncidentAlert.incident_id).join(
                    IncidentAlert, IncidentAlert.alert_id == Alert.id
                )
            )
            return {
                f"{name}/{labels.get('pod') or labels.get('node') or ''}": incident for name, labels, incident in rows
            }

    def links(self) -> list[IncidentAlert]:
        with self.runtime.database.read() as session:
            return list(session.scalars(select(IncidentAlert).order_by(IncidentAlert.alert_id)))

    def incidents(self) -> list[Incident]:
        with self.runtime.database.read() as session:
            return list(session.scalars(select(Incident).order_by(Incident.id)))


@pytest.fixture
def stack_for(settings: Settings, clock: FakeClock, shared_embedder: Embedder) -> Iterator[Any]:
    started: list[Runtime] = []

    def build(**overrides: Any) -> Iterator[Stack]:
        update = {"process_deliveries": False, "correlation": "learned", **overrides}
        runtime = Runtime.build(settings.model_copy(update=update), clock=clock, embedder=shared_embedder)
        started.append(runtime)
        with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
            yield Stack(runtime, http, clock)

    yield build
    for runtime in started:
        runtime.database.dispose()


def _node_failure(stack: Stack, node: str = "worker-7") -> None:
    """A node dies: its pods stop being ready and a database on it goes down (three alerts, two source groups)."""
    base = {"cluster": "prod-eu", "namespace": "shop"}
    stack.fire(
        "KubePodNotReady",
        group='alertname="KubePodNotReady"',
        summary="Pod shop/cart-api-5d8f9c7b6-q2w4x has been unready for 5 minutes",
        pod="cart-api-5d8f9c7b6-q2w4x",
        node=node,
        service="kube-state-metrics",
        **base,
    )
    stack.clock.advance(seconds=40)
    stack.fire(
        "PostgresDown",
        group='alertname="PostgresDown"',
        summary="PostgreSQL orders-db is down",
        pod="orders-db-0",
        node=node,
        service="orders-db",
        team="db",
        **base,
    )
    stack.clock.advance(seconds=50)
    stack.fire(
        "KubePodNotReady",
        group='alertname="KubePodNotReady"',
        summary="Pod shop/search-api-7c6d5b4f9-z8k2m has been unready for 5 minutes",
        pod="search-api-7c6d5b4f9-z8k2m",
        node=node,
        service="kube-state-metrics",
        **base,
    )


def test_one_fault_across_groups_is_one_incident_and_every_join_says_why(stack_for: Any) -> None:
    for stack in stack_for():
        _node_failure(stack)
        stack.step()
        [incident] = stack.incidents()
        assert incident.alert_count == 3
        first, *joined = stack.links()
        assert first.decision == "new"
        for link in joined:
            assert link.decision == "learned" and link.probability is not None
            assert link.probability >= stack.runtime.incidents.correlation.correlator.policy.threshold  # type: ignore[attr-defined]
            assert link.reason is not None and link.reason.startswith(f"joined #{incident.id}: ")
            assert "worker-7" in link.reason or "p = " in link.reason  # the evidence a person can check
        assert any("same node worker-7" in (link.reason or "") for link in joined)


def test_decisions_are_made_ahead_and_made_again_when_a_candidate_changed(stack_for: Any) -> None:
    for stack in stack_for():
        correlation = stack.runtime.incidents.correlation
        assert isinstance(correlation, LearnedCorrelation)
        _node_failure(stack)
        assert correlation.prepare(stack.runtime.database) == 3  # read-only, before any write transaction
        stack.process()
        # The first alert opened an incident the others' prepared decisions had not seen: they were decided again.
        [incident] = stack.incidents()
        assert incident.alert_count == 3
        assert correlation.prepare(stack.runtime.database) == 0  # nothing left to decide


def test_decisions_are_planned_in_order_and_one_that_no_longer_holds_waits_for_the_next_transaction(
    stack_for: Any,
) -> None:
    for stack in stack_for():
        correlation = stack.runtime.incidents.correlation
        assert isinstance(correlation, LearnedCorrelation)
        _node_failure(stack)
        assert correlation.prepare(stack.runtime.database) == 3
        first, second, third = _pending_deliveries(stack)
        assert _apply(stack, first, decide_later=True) == 1  # it opens the incident
        # The second was decided on the incident the first was to open (its placeholder, now the real one): it holds
        # in a transaction that did work already.
        assert _apply(stack, second, decide_later=True) == 1
        [incident] = stack.incidents()
        assert [link.incident_id for link in stack.links()] == [incident.id, incident.id]
        assert stack.links()[1].decision == "learned" and f"joined #{incident.id}:" in (stack.links()[1].reason or "")
        # Something the plan did not foresee: a person resolves the incident. The third alert's decision read it
        # firing, so it waits and is decided again before the next transaction.
        with stack.runtime.database.write() as session:
            assert stack.runtime.incidents.resolve(session, incident.id, "U1").changed
        assert _apply(stack, third, decide_later=True) == 0
        assert len(stack.links()) == 2
        assert correlation.prepare(stack.runtime.database) == 1
        assert _apply(stack, third, decide_later=True) == 1
        assert len(stack.links()) == 3


def test_a_resolve_between_two_new_alerts_is_planned_so_the_later_decision_holds(stack_for: Any) -> None:
    for stack in stack_for():
        correlation = stack.runtime.incidents.correlation
        assert isinstance(correlation, LearnedCorrelation)
        where = {"cluster": "prod-eu", "namespace": "shop", "node": "worker-3", "pod": "orders-db-0"}
        down = {"group": 'alertname="PostgresDown"', "summary": "PostgreSQL orders-db is down", **where}
        started = stack.clock.now
        stack.fire("PostgresDown", service="orders-db", **down)
        stack.step()
        [incident] = stack.incidents()
        stack.clock.advance(minutes=3)
        stack.fire("PostgresDown", service="orders-db", status="resolved", since=started, **down)
        stack.clock.advance(seconds=20)
        stack.fire(
            "PostgresTooManyConnections",
            group='alertname="PostgresTooManyConnections"',
            summary="PostgreSQL orders-db has too many connections",
            service="orders-db",
            **where,
        )
        # Planned before either delivery is applied: the later alert is decided on the incident as the resolve
        # will leave it (resolved when its only alert resolves), not as it is now.
        assert correlation.prepare(stack.runtime.database) == 1
        resolve, later = _pending_deliveries(stack)
        assert _apply(stack, resolve, decide_later=True) == 1
        [resolved] = stack.incidents()
        assert resolved.status == IncidentStatus.RESOLVED
        assert resolved.correlation_version > incident.correlation_version
        assert _apply(stack, later, decide_later=True) == 1  # it holds: no second decision in or before a transaction
        assert len(stack.links()) == 2


def test_a_planned_incident_that_fills_a_keys_list_leaves_the_later_decision_standing(stack_for: Any) -> None:
    for stack in stack_for():
        correlation = stack.runtime.incidents.correlation
        assert isinstance(correlation, LearnedCorrelation)
        # A busy cluster: PER_KEY incidents resolved in the last hour, listed under its key.
        now = stack.clock.now
        with stack.runtime.database.write() as session:
            for i in range(PER_KEY):
                at = now - timedelta(minutes=60) + timedelta(minutes=i)
                incident = Incident(
                    status=IncidentStatus.RESOLVED,
                    title=f"Earlier fault {i}",
                    severity="warning",
                    source="alertmanager",
                    group_key=f"earlier:{i}",
                    alert_count=1,
                    opened_at=at,
                    last_alert_at=at,
                    resolved_at=at + timedelta(seconds=30),
                    correlation_version=1,
                )
                session.add(incident)
                session.flush()
                correlation.store.index(session, incident.id, ["cluster:prod-eu"], at)
        place = {"cluster": "prod-eu", "namespace": "shop"}
        stack.fire(
            "DiskFull", group='alertname="DiskFull"', summary="Disk of ledger-db is full", service="ledger-db", **place
        )
        stack.clock.advance(seconds=30)
        stack.fire(
            "HighLatency", group='alertname="HighLatency"', summary="Search is slow", service="search-api", **place
        )
        # Both decided ahead; the first opens an incident, which takes the oldest one's place in the cluster's list.
        assert correlation.prepare(stack.runtime.database) == 2
        first, second = _pending_deliveries(stack)
        assert _apply(stack, first, decide_later=True) == 1
        assert _apply(stack, second, decide_later=True) == 1  # it holds: the plan left out the oldest one too
        assert len(stack.links()) == 2


def _pending_deliveries(stack: Stack) -> list[Delivery]:
    with stack.runtime.database.read() as session:
        return list(session.scalars(select(Delivery).where(Delivery.status == "pending").order_by(Delivery.id)))


def _apply(stack: Stack, delivery: Delivery, *, decide_later: bool) -> int:
    with stack.runtime.database.write() as session:
        return stack.runtime.incidents.apply_events(
            session, delivery.events, delivery.received_at, decide_later=decide_later
        )


def test_shadow_mode_follows_source_groups_and_records_what_it_would_have_done(stack_for: Any) -> None:
    for stack in stack_for(correlation="shadow"):
        assert isinstance(stack.runtime.incidents.correlation, ShadowCorrelation)
        _node_failure(stack)
        stack.step()
        incidents = stack.incidents()
        assert len(incidents) == 2  # two source groups (the two pod alerts share one)
        links = stack.links()
        assert all(link.decision in ("new", "source_group") for link in links)
        shadows = [link.shadow_reason or "" for link in links]
        assert all(shadow.startswith(("agrees: ", "differs: ")) for shadow in shadows)
        assert any(shadow.startswith("differs: would join #") for shadow in shadows)


def test_the_runaway_guard_opens_a_new_incident_and_suggests_a_merge(stack_for: Any) -> None:
    for stack in stack_for(correlation_max_services=2):
        _node_failure(stack)
        stack.step()
        incidents = stack.incidents()
        assert len(incidents) >= 2
        links = stack.links()
        guarded = [link for link in links if "merge them if they are one fault" in (link.reason or "")]
        assert guarded and guarded[0].decision == "guarded"
        assert f"#{incidents[0].id} matched" in (guarded[0].reason or "")


def test_an_alert_joining_an_incident_of_another_route_leaves_a_pointer_in_its_own_channel(
    settings: Settings, clock: FakeClock, shared_embedder: Embedder
) -> None:
    routed = settings.model_copy(update={"correlation": "learned", "routes": (Route("team", "db", "db-incidents"),)})
    with running_bot(routed, shared_embedder, clock=clock) as bot:
        admin = WebClient(base_url=bot.standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)
        admin.conversations_create(name="db-incidents")
        stack = Stack(bot.runtime, bot.http, clock)
        _node_failure(stack)  # the pods (no team) open the incident in #incidents; orders-db's alert is team=db
        bot.drain()
        [incident] = stack.incidents()
        [post] = bot.posts("incidents")
        assert incident.slack_ts == post["ts"]
        pointers = bot.posts("db-incidents")
        assert len(pointers) == 1
        text = pointers[0]["text"]
        assert text.startswith(f"PostgresDown on orders-db joined #{incident.id} in <#")
        assert "same node worker-7" in text
