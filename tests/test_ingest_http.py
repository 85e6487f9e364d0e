"""The webhook contract over real HTTP: status codes, their order, and that refusals store nothing."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from bot.db.database import Database
from bot.incidents.models import Incident
from bot.ingest.models import Alert, Delivery
from bot.runtime import Runtime
from tests.conftest import PD_ROUTING_KEY, TOKEN, auth
from tests.support import am_alert, am_group, pd_event, serve_in_thread, wait_for

pytestmark = pytest.mark.db


@pytest.fixture
def client(runtime: Runtime) -> Iterator[httpx.Client]:
    with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


def counts(database: Database) -> tuple[int, int, int]:
    with database.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Delivery)) or 0,
            session.scalar(select(func.count()).select_from(Alert)) or 0,
            session.scalar(select(func.count()).select_from(Incident)) or 0,
        )


def test_valid_alertmanager_delivery_is_stored_before_202(client: httpx.Client, database: Database) -> None:
    response = client.post(
        "/alerts/alertmanager", json=am_group([am_alert(pod="a"), am_alert(pod="b")]), headers=auth()
    )
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    deliveries, alerts, _ = counts(database)
    assert (deliveries, alerts) == (1, 2)  # committed before the answer, not eventually
    wait_for(lambda: counts(database)[2] == 1)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"Authorization": "Bearer wrong-token"}, "wrong"),
        ({"Authorization": "Token " + TOKEN}, "unknown scheme"),
        ({"Authorization": "Basic !!!notbase64"}, "bad basic"),
    ],
)
def test_bad_credentials_get_401_and_store_nothing(
    client: httpx.Client, database: Database, headers: dict[str, str], reason: str
) -> None:
    response = client.post("/alerts/alertmanager", json=am_group([am_alert()]), headers=headers)
    assert response.status_code == 401, reason
    assert response.json()["error"] == "unauthorized"
    assert counts(database) == (0, 0, 0)


def test_basic_auth_password_is_accepted_as_token(client: httpx.Client, database: Database) -> None:
    basic = base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode()
    response = client.post(
        "/alerts/alertmanager", json=am_group([am_alert()]), headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 202


def test_source_scoped_token_is_refused_elsewhere(client: httpx.Client, database: Database) -> None:
    # The PagerDuty routing key is configured for the pagerduty source only.
    response = client.post("/alerts/alertmanager", json=am_group([am_alert()]), headers=auth(PD_ROUTING_KEY))
    assert response.status_code == 401
    assert counts(database) == (0, 0, 0)


def test_401_comes_before_413_and_415(client: httpx.Client, runtime: Runtime, database: Database) -> None:
    too_big = b"x" * (runtime.settings.max_body_bytes + 1)
    response = client.post("/alerts/alertmanager", content=too_big, headers={"Content-Type": "text/plain"})
    assert response.status_code == 401


def test_oversized_body_gets_413(client: httpx.Client, runtime: Runtime, database: Database) -> None:
    alerts = [am_alert(pod=f"pod-{i}", padding="p" * 1000) for i in range(12_000)]
    body = orjson.dumps(am_group(alerts))
    assert len(body) > runtime.settings.max_body_bytes
    response = client.post("/alerts/alertmanager", content=body, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert counts(database) == (0, 0, 0)


def test_oversized_chunked_body_gets_413(client: httpx.Client, runtime: Runtime, database: Database) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(12):
            yield b" " * (1024 * 1024)

    response = client.post(
        "/alerts/alertmanager", content=chunks(), headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert counts(database) == (0, 0, 0)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_gets_415(client: httpx.Client, database: Database, content_type: str | None) -> None:
    headers = auth()
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/alerts/alertmanager", content=orjson.dumps(am_group([am_alert()])), headers=headers)
    assert response.status_code == 415
    assert counts(database) == (0, 0, 0)


def test_json_with_charset_is_fine(client: httpx.Client) -> None:
    response = client.post(
        "/alerts/alertmanager",
        content=orjson.dumps(am_group([am_alert()])),
        headers={**auth(), "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", None),
        (b"[]", None),
        (orjson.dumps({**am_group([am_alert()]), "version": "3"}), "version"),
        (orjson.dumps({k: v for k, v in am_group([am_alert()]).items() if k != "groupKey"}), "groupKey"),
        (orjson.dumps(am_group([{**am_alert(), "status": "burning"}])), "alerts.0.status"),
        (orjson.dumps(am_group([{k: v for k, v in am_alert().items() if k != "labels"}])), "alerts.0.labels"),
        (orjson.dumps(am_group([am_alert(), {**am_alert(), "startsAt": "yesterday"}])), "alerts.1.startsAt"),
        (orjson.dumps(am_group([{**am_alert(), "startsAt": "2026-03-10T09:00:00"}])), "alerts.0.startsAt"),
        (orjson.dumps(am_group([{**am_alert(), "labels": {"alertname": 5}}])), "alerts.0.labels.alertname"),
    ],
)
def test_malformed_payload_gets_400_naming_the_field(
    client: httpx.Client, database: Database, body: bytes, field: str | None
) -> None:
    response = client.post("/alerts/alertmanager", content=body, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "invalid"
    assert answer.get("field") == field
    if field:
        assert field in answer["message"]
    assert counts(database) == (0, 0, 0)


def test_healthz_and_readyz(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["schema"] == "head"


def test_metrics_count_outcomes_and_show_stored_state(client: httpx.Client, database: Database) -> None:
    client.post("/alerts/alertmanager", json=am_group([am_alert()]), headers=auth())
    client.post("/alerts/alertmanager", json=am_group([am_alert()]), headers=auth("nope"))
    wait_for(lambda: counts(database)[2] == 1)
    text = client.get("/metrics").text
    assert 'incibot_deliveries_total{outcome="accepted",reason="ok",source="alertmanager"} 1.0' in text
    assert 'incibot_deliveries_total{outcome="rejected",reason="unauthorized",source="alertmanager"} 1.0' in text
    assert 'incibot_incidents_open{severity="critical"} 1.0' in text
    assert "incibot_processing_lag_seconds 0.0" in text
    assert 'incibot_last_delivery_timestamp_seconds{source="alertmanager"}' in text
    assert "incibot_incident_documents_pending 1.0" in text  # search is off in this test: never indexed


def test_pagerduty_accepts_routing_key_as_credential(client: httpx.Client, database: Database) -> None:
    response = client.post("/alerts/pagerduty/v2/enqueue", json=pd_event(routing_key=PD_ROUTING_KEY))
    assert response.status_code == 202
    assert response.json() == {"status": "success", "message": "Event processed", "dedup_key": "disk-full-db1"}
    with database.read() as session:
        stored = session.scalars(select(Delivery)).one()
    assert PD_ROUTING_KEY not in stored.body  # a credential is never stored


def test_pagerduty_generates_a_dedup_key(client: httpx.Client) -> None:
    response = client.post("/alerts/pagerduty", json=pd_event(routing_key=PD_ROUTING_KEY, dedup_key=None))
    assert response.status_code == 202
    assert len(response.json()["dedup_key"]) >= 16


def test_pagerduty_wrong_routing_key_is_401(client: httpx.Client, database: Database) -> None:
    response = client.post("/alerts/pagerduty/v2/enqueue", json=pd_event(routing_key="not-a-configured-key"))
    assert response.status_code == 401
    assert counts(database) == (0, 0, 0)


def test_pagerduty_invalid_event_is_400_in_pagerduty_shape(client: httpx.Client, database: Database) -> None:
    event = pd_event(routing_key=PD_ROUTING_KEY)
    event["payload"]["severity"] = "apocalyptic"
    response = client.post("/alerts/pagerduty/v2/enqueue", json=event)
    assert response.status_code == 400
    answer = response.json()
    assert answer["status"] == "invalid event"
    assert answer["field"] == "payload.severity"
    assert counts(database) == (0, 0, 0)


def test_pagerduty_ack_for_unknown_key_is_202(client: httpx.Client, database: Database) -> None:
    response = client.post(
        "/alerts/pagerduty/v2/enqueue", json=pd_event("acknowledge", routing_key=PD_ROUTING_KEY, dedup_key="never-seen")
    )
    assert response.status_code == 202
    assert counts(database)[1:] == (0, 0)
