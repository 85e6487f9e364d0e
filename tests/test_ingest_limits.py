"""Length limits: what real senders emit is never refused, and the limits that remain are exact.

Alertmanager's ``groupKey`` holds every grouping label (all of them with ``group_by: ['...']``) and so has no
upper bound; Kubernetes label sets are long. Such keys are stored in full on the alerts and by digest in the
bounded, indexed columns, and still group alerts into one incident. The limits that remain are tested at and
one past the limit: 202, then 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.incidents.models import GROUP_KEY_LENGTH, SERVICE_LENGTH, Incident
from bot.ingest.keys import bounded_key
from bot.ingest.models import ORDER_KEY_LENGTH, Alert, Delivery, DeliveryStatus
from bot.runtime import Runtime
from bot.settings import Settings
from tests.conftest import PD_ROUTING_KEY, auth
from tests.support import FakeClock, am_alert, am_group, pd_event, serve_in_thread

pytestmark = pytest.mark.db


@dataclass
class Bot:
    runtime: Runtime
    http: httpx.Client

    def post(self, source: str, payload: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/alerts/{source}", json=payload, headers={} if source == "pagerduty" else auth())

    def process(self) -> None:
        while self.runtime.worker.run_once():
            pass

    def rows(self, model: type[Any]) -> list[Any]:
        with self.runtime.database.read() as session:
            return list(session.scalars(select(model).order_by(model.id)))


@pytest.fixture
def bot(settings: Settings, clock: FakeClock) -> Iterator[Bot]:
    runtime = Runtime.build(settings.model_copy(update={"process_deliveries": False}), clock=clock)
    try:
        with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=30) as http:
            yield Bot(runtime, http)
    finally:
        runtime.database.dispose()


def kubernetes_labels(pod: str) -> dict[str, str]:
    """A label set as kube-prometheus alerts carry them: many labels, some long."""
    return {
        "namespace": "payments-production-eu-central-1",
        "pod": pod,
        "container": "checkout-service-sidecar-envoy-proxy",
        "label_app_kubernetes_io_name": "checkout-service",
        "label_app_kubernetes_io_instance": "checkout-service-production-eu-central-1-canary",
        "label_app_kubernetes_io_version": "v2026.11.29-build.18273-sha.7f3a9c1e0b4d2f6a8c9e1b3d5f7a9c1e",
        "label_pod_template_hash": "7c9f8d6b5",
        "node": "ip-10-42-17-203.eu-central-1.compute.internal",
        "uid": "0b7e6c1a-3f2d-4e5b-9a8c-7d6e5f4a3b2c",
        "label_team_escalation_policy": "x" * 300,
    }


def labelled(labels: dict[str, str], name: str = "HighErrorRate") -> dict[str, Any]:
    """An Alertmanager alert carrying ``labels`` besides its usual ones."""
    alert = am_alert(name)
    alert["labels"].update(labels)
    return alert


def everything_group_key(labels: dict[str, str]) -> str:
    """Alertmanager's groupKey for a route with ``group_by: ['...']``: the route and every label."""
    pairs = ", ".join(f'{name}="{value}"' for name, value in sorted(labels.items()))
    return "{}:{" + pairs + "}"


def test_a_group_key_of_every_label_is_stored_in_full_and_makes_one_incident(bot: Bot) -> None:
    labels = kubernetes_labels("checkout-7c9f8d6b5-x2x4q")
    key = everything_group_key({"alertname": "KubePodCrashLooping", **labels})
    assert len(key) > GROUP_KEY_LENGTH
    group = am_group([labelled(labels, "KubePodCrashLooping")], group_key=key)
    assert bot.post("alertmanager", group).status_code == 202
    # The next notification of the same group, with one more alert: it must join the same incident.
    more = am_group(
        [labelled(labels, "KubePodCrashLooping"), labelled({**labels, "pod": "other"}, "KubePodCrashLooping")],
        group_key=key,
    )
    assert bot.post("alertmanager", more).status_code == 202
    bot.process()

    alerts = bot.rows(Alert)
    assert len(alerts) == 2
    assert {alert.group_key for alert in alerts} == {key}  # in full, where a person can read it
    deliveries = bot.rows(Delivery)
    assert [delivery.status for delivery in deliveries] == [DeliveryStatus.DONE, DeliveryStatus.DONE]
    assert {delivery.order_key for delivery in deliveries} == {bounded_key(f"alertmanager:{key}", ORDER_KEY_LENGTH)}
    [incident] = bot.rows(Incident)
    assert incident.alert_count == 2
    assert len(incident.group_key) == GROUP_KEY_LENGTH
    assert incident.group_key.startswith(f"alertmanager:{key}"[:100])


def test_long_group_keys_that_differ_only_at_the_end_are_two_incidents(bot: Bot) -> None:
    common = "{}:{" + ", ".join(f'label{n}="{"v" * 40}"' for n in range(30))
    for pod in ("a", "b"):
        key = f'{common}, pod="{pod}"}}'
        assert bot.post("alertmanager", am_group([am_alert(pod=pod)], group_key=key)).status_code == 202
    bot.process()
    incidents = bot.rows(Incident)
    assert len(incidents) == 2
    assert incidents[0].group_key != incidents[1].group_key


def test_long_label_values_and_annotations_are_stored_and_clipped_only_for_display(bot: Bot) -> None:
    alert = am_alert(service="s" * 5000, description_of_everything="d" * 50_000)
    alert["annotations"]["description"] = "a" * 200_000
    assert bot.post("alertmanager", am_group([alert])).status_code == 202
    bot.process()
    [stored] = bot.rows(Alert)
    assert stored.labels["service"] == "s" * 5000
    assert stored.annotations["description"] == "a" * 200_000
    [incident] = bot.rows(Incident)
    assert incident.service == "s" * SERVICE_LENGTH  # a PostgreSQL column of 200: no failed delivery


def test_grafana_long_group_key_and_title_are_accepted(bot: Bot) -> None:
    labels = kubernetes_labels("grafana-pod")
    payload = {
        **am_group([labelled(labels)], group_key=everything_group_key(labels)),
        "orgId": 1,
        "title": "[FIRING:1] " + " ".join(labels.values()) * 40,
        "message": "m" * 50_000,
    }
    assert len(payload["title"]) > 10_000
    assert bot.post("grafana", payload).status_code == 202
    bot.process()
    assert len(bot.rows(Incident)) == 1


def test_pagerduty_strings_without_a_documented_limit_are_accepted(bot: Bot) -> None:
    event = pd_event(routing_key=PD_ROUTING_KEY, dedup_key="k" * 255, summary="s" * 1024)
    event["payload"].update(source="h" * 2000, component="c" * 2000, group="g" * 2000)
    event["payload"]["class"] = "x" * 2000
    response = bot.post("pagerduty", event)
    assert response.status_code == 202, response.text
    bot.process()
    [incident] = bot.rows(Incident)
    assert incident.alert_count == 1


def _pd(**changes: Any) -> dict[str, Any]:
    event = pd_event(routing_key=PD_ROUTING_KEY)
    event.update({key: value for key, value in changes.items() if key != "summary"})
    if "summary" in changes:
        event["payload"]["summary"] = changes["summary"]
    return event


def _am(**changes: Any) -> dict[str, Any]:
    return am_group([am_alert(**changes)])


def _generic(**changes: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {"name": "BackupFailed"}
    alert.update({key: value for key, value in changes.items() if key != "group_key_of_batch"})
    body: dict[str, Any] = {"alerts": [alert]}
    if "group_key_of_batch" in changes:
        body["group_key"] = changes["group_key_of_batch"]
    return body


# (source, the body with a value of length n, the limit, the field named in the 400)
LIMITS: list[tuple[str, Any, int, str]] = [
    ("pagerduty", lambda n: _pd(summary="s" * n), 1024, "payload.summary"),
    ("pagerduty", lambda n: _pd(dedup_key="k" * n), 255, "dedup_key"),
    ("alertmanager", lambda n: am_group([{**am_alert(), "fingerprint": "f" * n}]), 128, "alerts.0.fingerprint"),
    ("grafana", lambda n: am_group([{**am_alert(), "fingerprint": "f" * n}]), 128, "alerts.0.fingerprint"),
    ("generic", lambda n: _generic(name="n" * n), 200, "alerts.0.name"),
    ("generic", lambda n: _generic(severity="s" * n), 32, "alerts.0.severity"),
    ("generic", lambda n: _generic(summary="s" * n), 2000, "alerts.0.summary"),
    ("generic", lambda n: _generic(description="d" * n), 20_000, "alerts.0.description"),
    ("generic", lambda n: _generic(fingerprint="f" * n), 128, "alerts.0.fingerprint"),
    ("generic", lambda n: _generic(group_key="g" * n), 400, "alerts.0.group_key"),
    ("generic", lambda n: _generic(group_key_of_batch="g" * n), 400, "group_key"),
    ("generic", lambda n: _generic(url="https://e.example/" + "u" * (n - 18)), 2000, "alerts.0.url"),
    ("generic", lambda n: {"alerts": [{"name": f"A{i}"} for i in range(n)]}, 1000, "alerts"),
]


@pytest.mark.parametrize(("source", "build", "limit", "field"), LIMITS, ids=[row[3] + "@" + row[0] for row in LIMITS])
def test_each_remaining_limit_accepts_its_maximum_and_names_the_field_past_it(
    bot: Bot, source: str, build: Any, limit: int, field: str
) -> None:
    at = bot.post(source, build(limit))
    assert at.status_code == 202, at.text
    over = bot.post(source, build(limit + 1))
    assert over.status_code == 400, over.text
    answer = over.json()
    assert answer["field"] == field
    assert field in answer["message"]
    bot.process()
    assert [delivery.status for delivery in bot.rows(Delivery)] == [DeliveryStatus.DONE]  # the refused one: nothing
