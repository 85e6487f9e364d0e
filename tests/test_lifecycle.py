"""Alerts to incidents: idempotency, ordering, resolve/reopen rules, PagerDuty semantics, heartbeats.

Deliveries go through the real HTTP front door; processing is switched off in the server and driven by
hand (``process()``) so every step is deterministic, with a fake clock for the reopen window.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.incidents.models import Incident, IncidentStatus, TimelineEntry
from bot.ingest.models import Alert, Delivery, DeliveryStatus
from bot.runtime import Runtime
from bot.settings import Settings
from tests.conftest import PD_ROUTING_KEY, auth
from tests.support import FakeClock, am_alert, am_group, pd_event, serve_in_thread

pytestmark = pytest.mark.db


@dataclass
class Bot:
    runtime: Runtime
    http: httpx.Client
    clock: FakeClock

    def send(self, source: str, payload: dict[str, Any]) -> httpx.Response:
        headers = {} if source == "pagerduty" else auth()
        response = self.http.post(f"/alerts/{source}", json=payload, headers=headers)
        assert response.status_code == 202, response.text
        return response

    def process(self) -> None:
        while self.runtime.worker.run_once():
            pass

    def incidents(self) -> list[Incident]:
        with self.runtime.database.read() as session:
            return list(session.scalars(select(Incident).order_by(Incident.id)))

    def alerts(self) -> list[Alert]:
        with self.runtime.database.read() as session:
            return list(session.scalars(select(Alert).order_by(Alert.id)))

    def timeline(self, incident_id: int) -> list[str]:
        with self.runtime.database.read() as session:
            return list(
                session.scalars(
                    select(TimelineEntry.kind)
                    .where(TimelineEntry.incident_id == incident_id)
                    .order_by(TimelineEntry.id)
                )
            )


@pytest.fixture
def bot(settings: Settings, clock: FakeClock) -> Iterator[Bot]:
    runtime = Runtime.build(settings.model_copy(update={"process_deliveries": False}), clock=clock)
    with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield Bot(runtime, http, clock)


def test_same_group_three_times_is_one_incident(bot: Bot) -> None:
    group = am_group([am_alert(pod="a"), am_alert(pod="b")])
    for _ in range(3):
        bot.send("alertmanager", group)
    bot.process()
    [incident] = bot.incidents()
    assert incident.alert_count == 2
    assert len(bot.alerts()) == 2
    assert incident.status == IncidentStatus.TRIGGERED
    assert incident.title == "HighErrorRate on checkout"
    assert (incident.severity, incident.service) == ("critical", "checkout")


def test_ten_concurrent_copies_are_one_incident(bot: Bot) -> None:
    group = am_group([am_alert(pod="a"), am_alert(pod="b"), am_alert(pod="c")])
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: bot.send("alertmanager", group).status_code, range(10)))
    assert statuses == [202] * 10
    bot.process()
    [incident] = bot.incidents()
    assert incident.alert_count == 3
    assert len(bot.alerts()) == 3
    with bot.runtime.database.read() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 10


def test_resolve_auto_resolves_and_stale_firing_is_ignored(bot: Bot) -> None:
    bot.send("alertmanager", am_group([am_alert(pod="a"), am_alert(pod="b")]))
    bot.clock.advance(minutes=5)
    bot.send("alertmanager", am_group([am_alert(pod="a", status="resolved"), am_alert(pod="b", status="resolved")]))
    bot.send("alertmanager", am_group([am_alert(pod="a"), am_alert(pod="b")]))  # a late replica's stale copy
    bot.process()
    [incident] = bot.incidents()
    assert incident.status == IncidentStatus.RESOLVED
    assert incident.resolved_by == "incibot"
    assert [alert.status for alert in bot.alerts()] == ["resolved", "resolved"]
    assert bot.timeline(incident.id) == ["opened", "alerts_added", "auto_resolved"]


def test_partial_resolve_keeps_incident_open(bot: Bot) -> None:
    bot.send("alertmanager", am_group([am_alert(pod="a"), am_alert(pod="b")], truncated=3))
    # A later notification lists only one alert (groups can be truncated): absence is not a resolve.
    bot.send("alertmanager", am_group([am_alert(pod="a", status="resolved")]))
    bot.process()
    [incident] = bot.incidents()
    assert incident.status == IncidentStatus.TRIGGERED
    assert sorted(alert.status for alert in bot.alerts()) == ["firing", "resolved"]


def test_resolved_before_firing_opens_nothing(bot: Bot) -> None:
    bot.send("alertmanager", am_group([am_alert(status="resolved")]))
    bot.send("alertmanager", am_group([am_alert()]))
    bot.process()
    assert bot.incidents() == []
    [alert] = bot.alerts()
    assert alert.status == "resolved"


def test_refire_within_reopen_window_reopens(bot: Bot) -> None:
    first_start = bot.clock.now
    bot.send("alertmanager", am_group([am_alert(starts_at=first_start)]))
    bot.send("alertmanager", am_group([am_alert(starts_at=first_start, status="resolved")]))
    bot.process()
    assert bot.incidents()[0].status == IncidentStatus.RESOLVED
    refire = bot.clock.advance(seconds=bot.runtime.settings.reopen_window.total_seconds() - 60)
    bot.send("alertmanager", am_group([am_alert(starts_at=refire)]))
    bot.process()
    [incident] = bot.incidents()
    assert incident.status == IncidentStatus.TRIGGERED
    assert incident.alert_count == 2
    assert bot.timeline(incident.id)[-3:] == ["auto_resolved", "reopened", "alerts_added"]


def test_refire_outside_reopen_window_opens_a_new_incident(bot: Bot) -> None:
    first_start = bot.clock.now
    bot.send("alertmanager", am_group([am_alert(starts_at=first_start)]))
    bot.send("alertmanager", am_group([am_alert(starts_at=first_start, status="resolved")]))
    bot.process()
    refire = bot.clock.advance(seconds=bot.runtime.settings.reopen_window.total_seconds() + 60)
    bot.send("alertmanager", am_group([am_alert(starts_at=refire)]))
    bot.process()
    first, second = bot.incidents()
    assert first.status == IncidentStatus.RESOLVED
    assert second.status == IncidentStatus.TRIGGERED


def test_new_alert_in_group_after_resolve_opens_a_new_incident(bot: Bot) -> None:
    bot.send("alertmanager", am_group([am_alert(pod="a")]))
    bot.send("alertmanager", am_group([am_alert(pod="a", status="resolved")]))
    bot.process()
    bot.clock.advance(minutes=1)
    bot.send("alertmanager", am_group([am_alert(pod="b", starts_at=bot.clock.now)]))
    bot.process()
    first, second = bot.incidents()
    assert (first.status, second.status) == (IncidentStatus.RESOLVED, IncidentStatus.TRIGGERED)


def test_severity_escalates_to_the_worst_alert(bot: Bot) -> None:
    bot.send("alertmanager", am_group([am_alert(pod="a", severity="warning")]))
    bot.send("alertmanager", am_group([am_alert(pod="a", severity="warning"), am_alert(pod="b", severity="page")]))
    bot.process()
    [incident] = bot.incidents()
    assert incident.severity == "critical"


def test_heartbeat_alerts_are_deliveries_never_incidents(bot: Bot) -> None:
    bot.send("alertmanager", am_group([am_alert("Watchdog", severity="none")], group_key='{}:{alertname="Watchdog"}'))
    bot.send("alertmanager", am_group([am_alert("InfoInhibitor"), am_alert(pod="real")]))
    bot.process()
    [incident] = bot.incidents()
    assert incident.alert_count == 1
    assert [alert.alertname for alert in bot.alerts()] == ["HighErrorRate"]
    with bot.runtime.database.read() as session:
        ignored = list(session.scalars(select(Delivery.ignored_count).order_by(Delivery.id)))
    assert ignored == [1, 1]


def test_pagerduty_trigger_ack_resolve_and_retrigger(bot: Bot) -> None:
    bot.send("pagerduty", pd_event(routing_key=PD_ROUTING_KEY))
    bot.send("pagerduty", pd_event(routing_key=PD_ROUTING_KEY))  # duplicate trigger: same incident
    bot.process()
    [incident] = bot.incidents()
    assert (incident.status, incident.severity, incident.title) == ("triggered", "critical", "Disk 95% full on db1")
    bot.send("pagerduty", pd_event("acknowledge", routing_key=PD_ROUTING_KEY))
    bot.process()
    assert bot.incidents()[0].status == IncidentStatus.ACKNOWLEDGED
    assert bot.incidents()[0].acknowledged_by == "pagerduty"
    bot.send("pagerduty", pd_event("resolve", routing_key=PD_ROUTING_KEY))
    bot.process()
    assert bot.incidents()[0].status == IncidentStatus.RESOLVED
    bot.send("pagerduty", pd_event(routing_key=PD_ROUTING_KEY))  # same dedup key after resolve: new incident
    bot.process()
    first, second = bot.incidents()
    assert (first.status, second.status) == (IncidentStatus.RESOLVED, IncidentStatus.TRIGGERED)
    assert len(bot.alerts()) == 2


def test_pagerduty_resolve_for_unknown_key_changes_nothing(bot: Bot) -> None:
    bot.send("pagerduty", pd_event("resolve", routing_key=PD_ROUTING_KEY, dedup_key="who-knows"))
    bot.process()
    assert bot.incidents() == []
    assert bot.alerts() == []


def test_grafana_payload(bot: Bot) -> None:
    payload = {
        "receiver": "incibot",
        "status": "firing",
        "orgId": 1,
        "groupKey": '{}/{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:1] DiskFull",
        "state": "alerting",
        "message": "...",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://grafana.example.com/",
        "version": "1",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "DiskFull",
                    "grafana_folder": "infra",
                    "instance": "db1",
                    "severity": "warning",
                },
                "annotations": {"summary": "Disk almost full on db1"},
                "startsAt": "2026-03-10T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://grafana.example.com/alerting/grafana/abc/view",
                "fingerprint": "c6eadffa33fcdf37",
                "silenceURL": "http://grafana.example.com/alerting/silence/new",
                "values": {"B": 95.2},
                "valueString": "[ var='B' value=95.2 ]",
            }
        ],
    }
    bot.send("grafana", payload)
    bot.process()
    [incident] = bot.incidents()
    assert (incident.source, incident.title, incident.severity) == ("grafana", "Disk almost full on db1", "warning")
    assert bot.alerts()[0].fingerprint == "c6eadffa33fcdf37"


def test_generic_alerts_group_by_group_key(bot: Bot) -> None:
    bot.send(
        "generic",
        {
            "group_key": "backup",
            "alerts": [
                {
                    "name": "BackupFailed",
                    "severity": "error",
                    "summary": "Nightly backup failed",
                    "labels": {"host": "db1"},
                },
                {"name": "BackupFailed", "severity": "error", "labels": {"host": "db2", "attempt": 3}},
            ],
        },
    )
    bot.send("generic", {"alerts": [{"name": "CertExpiring", "labels": {"domain": "example.com"}}]})
    bot.process()
    backup, cert = bot.incidents()
    assert (backup.alert_count, backup.severity, backup.title) == (2, "error", "Nightly backup failed")
    assert (cert.alert_count, cert.severity) == (1, "warning")
    assert bot.alerts()[1].labels["attempt"] == "3"


def test_generic_alert_without_start_time_lives_until_resolved(bot: Bot) -> None:
    alert = {"name": "QueueBacklog", "labels": {"queue": "emails"}}
    bot.send("generic", {"alerts": [alert]})
    bot.send("generic", {"alerts": [alert]})  # still firing: same occurrence
    bot.send("generic", {"alerts": [{**alert, "status": "resolved"}]})
    bot.process()
    [incident] = bot.incidents()
    assert incident.status == IncidentStatus.RESOLVED
    assert len(bot.alerts()) == 1


def test_deliveries_of_one_group_apply_in_arrival_order(bot: Bot) -> None:
    # Firing and resolved land in one batch; processing must not see the resolve first.
    for _ in range(3):
        bot.send("alertmanager", am_group([am_alert(pod="a")]))
    bot.send("alertmanager", am_group([am_alert(pod="a", status="resolved")]))
    bot.process()
    [incident] = bot.incidents()
    assert incident.status == IncidentStatus.RESOLVED


def test_poison_delivery_fails_after_max_attempts_then_retry_works(bot: Bot) -> None:
    bot.send("alertmanager", am_group([am_alert(pod="a")]))
    with bot.runtime.database.write() as session:
        delivery = session.scalars(select(Delivery)).one()
        good_events = delivery.events
        delivery.events = [[good_events[0][0], "explode"]]  # a delivery the worker cannot apply
        poison_id = delivery.id
    bot.send("alertmanager", am_group([am_alert(pod="b")]))  # same group: must wait behind the poison
    for _ in range(bot.runtime.settings.max_attempts - 1):
        bot.process()
        assert bot.incidents() == []
        bot.clock.advance(minutes=10)  # past the retry backoff
    bot.process()  # the last attempt fails for good; the group's next delivery then goes ahead
    with bot.runtime.database.read() as session:
        poison = session.get(Delivery, poison_id)
        assert poison is not None
        assert poison.status == DeliveryStatus.FAILED
        assert "unknown action 'explode'" in (poison.last_error or "")
    [incident] = bot.incidents()
    assert incident.alert_count == 1
    metrics = bot.http.get("/metrics").text
    assert 'incibot_deliveries_total{outcome="failed",reason="max_attempts",source="alertmanager"} 1.0' in metrics
    with bot.runtime.database.write() as session:  # an operator repairs the cause, then retries
        poison = session.get(Delivery, poison_id)
        assert poison is not None
        poison.events = good_events
        poison.status = DeliveryStatus.PENDING
        poison.attempts = 0
    bot.process()
    [incident] = bot.incidents()
    assert incident.alert_count == 2
