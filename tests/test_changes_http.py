"""``POST /changes`` over real HTTP: the three shapes stored, the alert webhooks' status codes, refusals that
store nothing, and a retried delivery stored once. Only the tests that store run again on PostgreSQL (``db``)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.changes.models import ChangeRecord
from bot.db.database import Database
from bot.runtime import Runtime
from bot.settings import Settings
from tests.conftest import PD_ROUTING_KEY, TOKEN, auth
from tests.support import T0, FakeClock, serve_in_thread

CHANGES_ONLY = "changes-only-token-5d1e"


@pytest.fixture
def client(settings: Settings, clock: FakeClock) -> Iterator[httpx.Client]:
    tokens = (*settings.ingest_tokens, ("changes", SecretStr(CHANGES_ONLY)))
    runtime = Runtime.build(settings.model_copy(update={"max_body_bytes": 4096}), clock=clock, ingest_tokens=tokens)
    with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
        http.headers.update(auth())
        yield http
    runtime.database.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def stored(db: Database) -> list[ChangeRecord]:
    with db.read() as session:
        return list(session.scalars(select(ChangeRecord).order_by(ChangeRecord.id)))


def generic(**fields: Any) -> dict[str, Any]:
    return {"service": "checkout", "kind": "deploy", "version": "v2.31", "who": "ana", **fields}


def github_status(state: str = "success", status_id: int = 501, **deployment: Any) -> dict[str, Any]:
    return {
        "action": "created",
        "deployment_status": {
            "id": status_id,
            "state": state,
            "environment": "production",
            "description": "rolled out",
            "target_url": "https://ci.example.com/run/77",
            "created_at": "2026-03-10T08:54:00Z",
            "creator": {"login": "deploy-bot"},
        },
        "deployment": {
            "id": 90,
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "ref": "0123456789abcdef0123456789abcdef01234567",
            "environment": "production",
            "creator": {"login": "ana"},
            "payload": {},
            **deployment,
        },
        "repository": {
            "name": "checkout",
            "full_name": "shop/checkout",
            "html_url": "https://github.com/shop/checkout",
        },
        "sender": {"login": "ana"},
    }


def argo(**fields: Any) -> dict[str, Any]:
    return {
        "app": "payments",
        "revision": "fedcba9876543210fedcba9876543210fedcba98",
        "phase": "Succeeded",
        "finishedAt": "2026-03-10T08:57:30Z",
        "initiatedBy": "<no value>",
        "url": "https://argocd.example.com/applications/payments",
        "message": "",
        **fields,
    }


@pytest.mark.db
def test_generic_change_is_stored_before_202(client: httpx.Client, db: Database) -> None:
    body = generic(when="2026-03-10T08:54:00+00:00", link="https://ci.example.com/p/1", description="canary")
    response = client.post("/changes", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    assert response.json()["duplicate"] is False
    [row] = stored(db)
    assert (row.service, row.kind, row.version, row.who) == ("checkout", "deploy", "v2.31", "ana")
    assert row.source == "generic"
    assert row.at.isoformat() == "2026-03-10T08:54:00+00:00"
    assert (row.link, row.description, row.received_at) == ("https://ci.example.com/p/1", "canary", T0)
    assert row.id == response.json()["change_id"]


@pytest.mark.db
def test_a_generic_change_without_when_is_dated_when_received(client: httpx.Client, db: Database) -> None:
    assert client.post("/changes", json={"service": "search", "kind": "feature_flag"}).status_code == 202
    [row] = stored(db)
    assert (row.at, row.kind, row.version) == (T0, "feature_flag", None)


@pytest.mark.db
def test_a_retried_delivery_is_stored_once(client: httpx.Client, db: Database) -> None:
    first = client.post("/changes", json=generic())
    again = client.post("/changes", json=generic())
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == {"status": "accepted", "change_id": first.json()["change_id"], "duplicate": True}
    # The sender's id identifies the change, whatever else the retry carries.
    client.post("/changes", json=generic(id="pipeline-7", description="first try"))
    retried = client.post("/changes", json=generic(id="pipeline-7", description="second try"))
    assert retried.json()["duplicate"] is True
    assert [row.description for row in stored(db)] == [None, "first try"]


@pytest.mark.db
def test_github_deployment_status_success_is_a_deploy(client: httpx.Client, db: Database) -> None:
    headers = {"X-GitHub-Event": "deployment_status"}
    response = client.post("/changes", json=github_status(), headers=headers)
    assert response.status_code == 202, response.text
    [row] = stored(db)
    assert (row.source, row.service, row.kind, row.version, row.who) == (
        "github",
        "checkout",
        "deploy",
        "0123456789ab",
        "ana",
    )
    assert row.at.isoformat() == "2026-03-10T08:54:00+00:00"
    assert row.link == "https://ci.example.com/run/77"
    assert row.description == "to production; rolled out"
    # GitHub's redelivery of the same status is the same change.
    assert client.post("/changes", json=github_status(), headers=headers).json()["duplicate"] is True
    # A deployment created with a payload names the service and version itself.
    named = github_status(status_id=502, payload={"service": "checkout-api", "version": "v2.32"})
    assert client.post("/changes", json=named, headers=headers).status_code == 202
    assert (stored(db)[-1].service, stored(db)[-1].version) == ("checkout-api", "v2.32")


def test_github_signature_with_the_token_is_a_credential(client: httpx.Client, db: Database) -> None:
    body = orjson.dumps(github_status())
    signature = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Authorization": "", "X-GitHub-Event": "deployment_status", "Content-Type": "application/json"}
    forged = "sha256=" + hmac.new(b"not-the-token", body, hashlib.sha256).hexdigest()
    refused = client.post("/changes", content=body, headers={**headers, "X-Hub-Signature-256": forged})
    assert refused.status_code == 401
    assert stored(db) == []
    accepted = client.post("/changes", content=body, headers={**headers, "X-Hub-Signature-256": signature})
    assert accepted.status_code == 202, accepted.text
    assert len(stored(db)) == 1


@pytest.mark.parametrize(
    ("event", "body", "reason"),
    [
        ("ping", {"zen": "Keep it logically awesome.", "hook_id": 1}, "ping"),
        ("deployment_status", github_status(state="failure"), "failure"),
        ("deployment_status", github_status(state="in_progress"), "in_progress"),
        ("push", {"ref": "refs/heads/main"}, "push"),
    ],
)
def test_github_deliveries_that_are_not_deploys_get_200_and_store_nothing(
    client: httpx.Client, db: Database, event: str, body: dict[str, Any], reason: str
) -> None:
    response = client.post("/changes", json=body, headers={"X-GitHub-Event": event})
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert reason in response.json()["reason"]
    assert stored(db) == []


@pytest.mark.db
def test_argocd_notification_is_a_deploy(client: httpx.Client, db: Database) -> None:
    response = client.post("/changes", json=argo())
    assert response.status_code == 202, response.text
    [row] = stored(db)
    assert (row.source, row.service, row.kind, row.version) == ("argocd", "payments", "deploy", "fedcba987654")
    assert row.who is None  # "<no value>": an automated sync has no user
    assert row.at.isoformat() == "2026-03-10T08:57:30+00:00"
    assert row.link == "https://argocd.example.com/applications/payments"
    assert row.description == "Argo CD synced payments"
    assert client.post("/changes", json=argo()).json()["duplicate"] is True
    named = argo(service="payments-api", initiatedBy="ana", finishedAt="2026-03-10T08:58:00Z")
    assert client.post("/changes", json=named).status_code == 202
    assert (stored(db)[-1].service, stored(db)[-1].who) == ("payments-api", "ana")


def test_a_failed_argocd_sync_gets_200_and_stores_nothing(client: httpx.Client, db: Database) -> None:
    response = client.post("/changes", json=argo(phase="Failed"))
    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    assert stored(db) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": ""},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer " + PD_ROUTING_KEY},  # a token scoped to another source
        {"Authorization": "Token " + TOKEN},
    ],
)
def test_bad_credentials_get_401_and_store_nothing(client: httpx.Client, db: Database, headers: dict[str, str]) -> None:
    response = client.post("/changes", json=generic(), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert stored(db) == []


def test_a_token_scoped_to_changes_is_accepted_here_only(client: httpx.Client, db: Database) -> None:
    assert client.post("/changes", json=generic(), headers=auth(CHANGES_ONLY)).status_code == 202
    alert = {"alerts": [{"name": "Disk"}]}
    assert client.post("/alerts/generic", json=alert, headers=auth(CHANGES_ONLY)).status_code == 401


def test_size_and_content_type_are_checked_before_the_body(client: httpx.Client, db: Database) -> None:
    too_large = client.post("/changes", json=generic(description="x" * 5000))
    assert (too_large.status_code, too_large.json()["error"]) == (413, "too_large")
    as_form = client.post("/changes", content=b"service=checkout", headers={"Content-Type": "text/plain"})
    assert (as_form.status_code, as_form.json()["error"]) == (415, "unsupported_media_type")
    unauthenticated_and_large = client.post(
        "/changes", json=generic(description="x" * 5000), headers={"Authorization": ""}
    )
    assert unauthenticated_and_large.status_code == 401
    assert stored(db) == []


BAD_BODIES: list[tuple[dict[str, str], bytes | dict[str, Any] | list[Any], str | None]] = [
    ({}, b'{"service": "checkout",', None),
    ({}, [generic()], None),
    ({}, {"kind": "deploy"}, "service"),
    ({}, generic(service="check out"), "service"),
    ({}, generic(service=""), "service"),
    ({}, generic(kind="reboot"), "kind"),
    ({}, generic(version=231), "version"),
    ({}, generic(who="a" * 201), "who"),
    ({}, generic(when="2026-03-10T08:54:00"), "when"),
    ({}, generic(when="yesterday"), "when"),
    ({}, generic(when="2026-03-10T10:00:00Z"), "when"),  # an hour after the clock's now
    ({}, generic(link="javascript:alert(1)"), "link"),
    ({}, generic(description="d" * 2001), "description"),
    ({}, generic(id=""), "id"),
    ({}, generic(services=["a"]), "services"),
    ({"X-GitHub-Event": "deployment_status"}, {"deployment": {}}, "deployment_status"),
    (
        {"X-GitHub-Event": "deployment_status"},
        {**github_status(), "deployment_status": {**github_status()["deployment_status"], "created_at": "soon"}},
        "deployment_status.created_at",
    ),
    ({"X-GitHub-Event": "deployment_status"}, {**github_status(), "repository": {"name": "x"}}, "repository.full_name"),
    ({}, {"app": "payments"}, "revision"),
    ({}, argo(app="<no value>"), "app"),
    ({}, argo(finishedAt="2026-03-10T08:57:30"), "finishedAt"),
    ({}, argo(url="not a link"), "url"),
]


def test_bad_bodies_get_400_naming_the_field_and_store_nothing(client: httpx.Client, db: Database) -> None:
    for headers, body, field in BAD_BODIES:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        response = client.post("/changes", content=content, headers={**headers, "Content-Type": "application/json"})
        assert response.status_code == 400, (body, response.text)
        answer = response.json()
        assert answer["error"] == "invalid"
        assert answer.get("field") == field, (body, answer)
        if field is not None:
            assert field in answer["message"]
    assert stored(db) == []


def test_a_locked_database_gets_503_with_retry_after_and_the_retry_is_stored(
    client: httpx.Client, db: Database
) -> None:
    if not db.is_sqlite:
        pytest.skip("holds SQLite's write lock from another connection")
    with db.write_connection():  # another process's writer holds the lock past the 1 s lock timeout
        refused = client.post("/changes", json=generic())
    assert (refused.status_code, refused.json()["error"]) == (503, "unavailable")
    assert refused.headers["Retry-After"] == "5"
    assert stored(db) == []
    assert client.post("/changes", json=generic()).status_code == 202
    assert len(stored(db)) == 1
