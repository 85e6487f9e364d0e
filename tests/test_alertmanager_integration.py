"""End to end with a real Alertmanager: deploy/alertmanager-receiver.yml, its webhook, incibot's incidents.

The example configuration is loaded, pointed at an in-process incibot on loopback and sped up (1s group
timers), and a real ``prometheus-alertmanager`` is started on a free port. Alerts pushed into its API must
open one incident in incibot, and resolving them in Alertmanager must auto-resolve that incident. The
fingerprints Alertmanager sends must equal ours (``knowledge.fingerprint``), since incibot computes them
itself for alerts that arrive without one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from sqlalchemy import select

from bot.incidents.models import Incident, IncidentStatus, TimelineEntry
from bot.incidents.service import SYSTEM_ACTOR
from bot.ingest.models import Alert, Delivery, DeliveryStatus
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.fingerprint import labels_fingerprint
from tests.conftest import TOKEN
from tests.support import free_port, serve_in_thread, wait_for

pytestmark = [pytest.mark.db, pytest.mark.alertmanager]

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "alertmanager-receiver.yml"
PLACEHOLDER = "REPLACE_WITH_INCIBOT_INGEST_TOKEN"
# Debian's package name first, then the upstream release's.
BINARIES = ("prometheus-alertmanager", "alertmanager")
ALERTNAME = "IncibotIntegrationTest"
TIMEOUT = 20.0


@dataclass
class Incibot:
    url: str
    runtime: Runtime


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, limit: int = 6000) -> str:
        text = self.log_path.read_text(errors="replace")
        return text if len(text) <= limit else "...\n" + text[-limit:]


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    """The Alertmanager executable: a skip where it is missing, but a failure in CI."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    reason = f"Alertmanager not found ({' or '.join(BINARIES)} on PATH); install Debian's prometheus-alertmanager"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: CI must run the Alertmanager integration test")
    pytest.skip(reason)


def receiver_config(incibot_url: str) -> dict[str, Any]:
    """The example configuration, pointed at the test's incibot and with timers short enough for a test."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    route = config["route"]
    assert route["receiver"] == "incibot"
    route.update(group_wait="1s", group_interval="1s", repeat_interval="1m")
    (receiver,) = (receiver for receiver in config["receivers"] if receiver["name"] == "incibot")
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"].endswith("/alerts/alertmanager")
    assert webhook["send_resolved"] is True
    authorization = webhook["http_config"]["authorization"]
    assert authorization == {"type": "Bearer", "credentials": PLACEHOLDER}
    webhook["url"] = f"{incibot_url}/alerts/alertmanager"
    authorization["credentials"] = TOKEN
    return config


@pytest.fixture
def incibot(settings: Settings) -> Iterator[Incibot]:
    """incibot on loopback with the real clock (Alertmanager's timestamps are real ones)."""
    runtime = Runtime.build(settings)
    try:
        with serve_in_thread(runtime.asgi_app()) as url:
            yield Incibot(url, runtime)
    finally:
        runtime.database.dispose()


@pytest.fixture
def route_changes() -> dict[str, Any]:
    """Changes to the example's route (a test parametrizes this to try another ``group_by``)."""
    return {}


@pytest.fixture
def alertmanager(
    alertmanager_binary: str, incibot: Incibot, tmp_path: Path, route_changes: dict[str, Any]
) -> Iterator[Alertmanager]:
    """A real Alertmanager running the example configuration (see :func:`receiver_config`), killed afterwards."""
    config = receiver_config(incibot.url)
    config["route"].update(route_changes)
    config_path = tmp_path / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    storage = tmp_path / "alertmanager-data"
    storage.mkdir()
    log_path = tmp_path / "alertmanager.log"
    port = free_port()  # never 9093/9094: the distribution's own Alertmanager service may hold those
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                alertmanager_binary,
                f"--config.file={config_path}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # no clustering, no gossip port
                "--log.level=debug",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = Alertmanager(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_ready(running)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(alertmanager: Alertmanager, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=alertmanager.url, timeout=2, trust_env=False) as http:
        while True:
            if alertmanager.process.poll() is not None:
                pytest.fail(
                    f"Alertmanager exited with status {alertmanager.process.returncode}:\n{alertmanager.log_tail()}"
                )
            try:
                if http.get("/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Alertmanager not ready within {timeout}s:\n{alertmanager.log_tail()}")
            time.sleep(0.05)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def label_sets() -> list[dict[str, str]]:
    """Three alerts of one Alertmanager group (same alertname, cluster and service)."""
    common = {"alertname": ALERTNAME, "severity": "critical", "service": "checkout", "cluster": "test"}
    return [
        {**common, "instance": "checkout-1:9100"},
        {**common, "instance": "checkout-2:9100", "job": "node"},
        # Non-ASCII values are hashed as their UTF-8 bytes; a short name sorts before "alertname".
        {**common, "instance": "checkout-3:9100", "region": "eu-zürich", "az": "b"},
    ]


def post_alerts(
    alertmanager: Alertmanager, labels: list[dict[str, str]], starts_at: datetime, ends_at: datetime | None = None
) -> None:
    alerts = []
    for label_set in labels:
        alert: dict[str, Any] = {
            "labels": label_set,
            "annotations": {"summary": f"{ALERTNAME} on checkout", "description": "Pushed by incibot's tests."},
            "startsAt": rfc3339(starts_at),
            "generatorURL": "http://prometheus.example.com/graph?g0.expr=up",
        }
        if ends_at is not None:
            alert["endsAt"] = rfc3339(ends_at)
        alerts.append(alert)
    with httpx.Client(base_url=alertmanager.url, timeout=5, trust_env=False) as http:
        response = http.post("/api/v2/alerts", json=alerts)
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{alertmanager.log_tail()}"


def alertmanager_alerts(alertmanager: Alertmanager) -> list[dict[str, Any]]:
    with httpx.Client(base_url=alertmanager.url, timeout=5, trust_env=False) as http:
        response = http.get("/api/v2/alerts")
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return alerts


@dataclass(frozen=True)
class State:
    alerts: list[Alert]
    incidents: list[Incident]
    deliveries: list[Delivery]
    timeline: list[TimelineEntry]

    def describe(self) -> str:
        lines = [f"{len(self.deliveries)} deliveries:"]
        lines += [f"  #{d.id} {d.status} alerts={d.alert_count} error={d.last_error}" for d in self.deliveries]
        lines.append(f"{len(self.alerts)} alerts:")
        lines += [f"  #{a.id} {a.status} {a.fingerprint} {a.labels}" for a in self.alerts]
        lines.append(f"{len(self.incidents)} incidents:")
        lines += [f"  #{i.id} {i.status} alerts={i.alert_count} {i.group_key}" for i in self.incidents]
        lines += [f"  timeline: {t.kind}: {t.text}" for t in self.timeline]
        return "\n".join(lines)


def state(runtime: Runtime) -> State:
    with runtime.database.read() as session:
        result = State(
            alerts=list(session.scalars(select(Alert).order_by(Alert.id))),
            incidents=list(session.scalars(select(Incident).order_by(Incident.id))),
            deliveries=list(session.scalars(select(Delivery).order_by(Delivery.id))),
            timeline=list(session.scalars(select(TimelineEntry).order_by(TimelineEntry.id))),
        )
        session.expunge_all()
    return result


def eventually(incibot: Incibot, alertmanager: Alertmanager, what: str, condition: Callable[[State], bool]) -> State:
    """Wait until incibot's stored state meets ``condition``; on timeout, show that state and Alertmanager's log."""

    def met() -> State | None:
        now = state(incibot.runtime)
        return now if condition(now) else None

    try:
        result: State = wait_for(met, TIMEOUT, 0.1)
        return result
    except AssertionError:
        raise AssertionError(
            f"{what}: not within {TIMEOUT}s\n--- incibot ---\n{state(incibot.runtime).describe()}"
            f"\n--- Alertmanager log ---\n{alertmanager.log_tail()}"
        ) from None


def webhook_alerts(deliveries: list[Delivery]) -> list[dict[str, Any]]:
    return [alert for delivery in deliveries for alert in orjson.loads(delivery.body)["alerts"]]


def all_processed(now: State) -> bool:
    return all(delivery.status == DeliveryStatus.DONE for delivery in now.deliveries)


def test_alertmanager_opens_and_resolves_an_incident(incibot: Incibot, alertmanager: Alertmanager) -> None:
    labels = label_sets()
    starts_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    post_alerts(alertmanager, labels, starts_at)

    firing = eventually(
        incibot,
        alertmanager,
        "3 firing alerts in one open incident",
        lambda now: (
            len(now.alerts) == 3
            and len(now.incidents) == 1
            and now.incidents[0].alert_count == 3
            and all_processed(now)
        ),
    )
    context = f"\n{firing.describe()}\n--- Alertmanager log ---\n{alertmanager.log_tail()}"
    assert sorted(alert.labels["instance"] for alert in firing.alerts) == [
        label_set["instance"] for label_set in labels
    ], context
    assert all(alert.status == "firing" for alert in firing.alerts), context
    assert {alert.starts_at for alert in firing.alerts} == {starts_at}, context
    (incident,) = firing.incidents
    assert incident.status == IncidentStatus.TRIGGERED, context
    assert incident.title == f"{ALERTNAME} on checkout", context
    assert incident.severity == "critical", context
    assert incident.service == "checkout", context
    # The incident is Alertmanager's group: the deploy file's group_by, not the alerts' other labels.
    (group_key,) = {alert.group_key for alert in firing.alerts}
    assert incident.group_key == f"alertmanager:{group_key}", context
    for grouped in (f'alertname="{ALERTNAME}"', 'cluster="test"', 'service="checkout"'):
        assert grouped in group_key, context
    assert "instance" not in group_key, context

    # Alertmanager's fingerprints, as sent and as its API reports them, are ours for the same labels.
    sent = webhook_alerts(firing.deliveries)
    assert sent, context
    for sent_alert in sent:
        assert sent_alert["labels"] in labels, context  # the labels exactly as Alertmanager has them
        assert sent_alert["fingerprint"] == labels_fingerprint(sent_alert["labels"]), context
    live = alertmanager_alerts(alertmanager)
    assert sorted(live_alert["fingerprint"] for live_alert in live) == sorted(map(labels_fingerprint, labels)), context
    for live_alert in live:
        assert live_alert["fingerprint"] == labels_fingerprint(live_alert["labels"]), context
    for stored in firing.alerts:
        assert stored.fingerprint == labels_fingerprint(stored.labels), context

    # Ending the alerts in Alertmanager resolves them; its resolved notification resolves the incident.
    ends_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    post_alerts(alertmanager, labels, starts_at, ends_at)

    resolved = eventually(
        incibot,
        alertmanager,
        "the alerts and the incident resolved",
        lambda now: (
            all(alert.status == "resolved" for alert in now.alerts)
            and now.incidents[0].status == IncidentStatus.RESOLVED
            and all_processed(now)
        ),
    )
    context = f"\n{resolved.describe()}\n--- Alertmanager log ---\n{alertmanager.log_tail()}"
    assert [alert.id for alert in resolved.alerts] == [alert.id for alert in firing.alerts], context  # same rows
    (incident,) = resolved.incidents
    assert incident.resolved_by == SYSTEM_ACTOR, context
    assert [entry.kind for entry in resolved.timeline if entry.incident_id == incident.id][-1] == "auto_resolved"
    resolved_sent = [alert for alert in webhook_alerts(resolved.deliveries) if alert["status"] == "resolved"]
    assert sorted(alert["fingerprint"] for alert in resolved_sent) == sorted(map(labels_fingerprint, labels)), context
    assert all(alert["endsAt"].startswith(rfc3339(ends_at)[:19]) for alert in resolved_sent), context


def kubernetes_label_sets() -> list[dict[str, str]]:
    """Two alerts with kube-prometheus-sized label sets: many labels, some long."""
    common = {
        "alertname": ALERTNAME,
        "severity": "warning",
        "service": "checkout",
        "cluster": "test",
        "namespace": "payments-production-eu-central-1",
        "container": "checkout-service-sidecar-envoy-proxy",
        "label_app_kubernetes_io_instance": "checkout-service-production-eu-central-1-canary",
        "label_app_kubernetes_io_version": "v2026.11.29-build.18273-sha.7f3a9c1e0b4d2f6a8c9e1b3d5f7a9c1e",
        "node": "ip-10-42-17-203.eu-central-1.compute.internal",
        "label_team_escalation_policy": "x" * 300,
    }
    return [{**common, "pod": f"checkout-7c9f8d6b5-{suffix}"} for suffix in ("x2x4q", "k8m2p")]


@pytest.mark.parametrize("route_changes", [{"group_by": ["..."]}])
def test_group_by_every_label_with_long_labels_opens_incidents(incibot: Incibot, alertmanager: Alertmanager) -> None:
    """``group_by: ['...']`` makes each alert its own group, and its groupKey holds every label: far over the
    400 characters incibot once refused with a 400 (which Alertmanager never retries)."""
    labels = kubernetes_label_sets()
    starts_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    post_alerts(alertmanager, labels, starts_at)

    firing = eventually(
        incibot,
        alertmanager,
        "2 alerts, each in an incident of its own",
        lambda now: len(now.alerts) == 2 and len(now.incidents) == 2 and all_processed(now),
    )
    context = f"\n{firing.describe()}\n--- Alertmanager log ---\n{alertmanager.log_tail()}"
    assert "status code 400" not in alertmanager.log_tail(), context
    for alert in firing.alerts:
        assert len(alert.group_key) > 600, context  # Alertmanager's own key, stored in full
        assert f'pod="{alert.labels["pod"]}"' in alert.group_key, context
    assert sorted(alert.labels["pod"] for alert in firing.alerts) == sorted(label["pod"] for label in labels)
    assert all(incident.alert_count == 1 for incident in firing.incidents), context
    assert len({incident.group_key for incident in firing.incidents}) == 2, context
