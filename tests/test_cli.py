"""The ``incibot`` command line, run as people run it: real processes, a real server, a real database."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.db import migrate
from bot.db.database import Database
from bot.incidents.models import Incident
from bot.ingest.models import Alert, Delivery
from tests.conftest import auth
from tests.processes import ServeProcess, incibot_env, run_incibot
from tests.support import am_alert, am_group, free_port, wait_for

pytestmark = pytest.mark.db

SUMMARY_KEYS = {
    "id",
    "status",
    "title",
    "severity",
    "service",
    "source",
    "alert_count",
    "opened_at",
    "acknowledged_at",
    "resolved_at",
    "merged_into",
    "category",
}
DELIVERY_KEYS = {"id", "source", "status", "received_at", "alerts", "attempts", "last_error"}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the address ``serve`` must refuse without a configured token


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def env(state_dir: Path, database_url: str) -> dict[str, str]:
    """No INCIBOT_INGEST_TOKENS: ``serve`` keeps its token in the state dir, as on a laptop."""
    return incibot_env(state_dir, database_url)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must succeed."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


def refused(result: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """The stderr of a command that must fail (with ``code`` when given), without a traceback."""
    assert result.returncode != 0, f"unexpected success\nstdout: {result.stdout}"
    if code is not None:
        assert result.returncode == code, f"exit {result.returncode}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stored(db: Database) -> tuple[int, int, int]:
    """(deliveries, alerts, incidents)."""
    with db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Delivery)) or 0,
            session.scalar(select(func.count()).select_from(Alert)) or 0,
            session.scalar(select(func.count()).select_from(Incident)) or 0,
        )


def processed(db: Database) -> bool:
    """Every stored delivery is done."""
    with db.read() as session:
        statuses = list(session.scalars(select(Delivery.status)))
    return bool(statuses) and all(status == "done" for status in statuses)


# --- db upgrade, serve and its token ----------------------------------------------------------------------


def test_db_upgrade_on_a_fresh_state_dir(tmp_path: Path, env: dict[str, str]) -> None:
    fresh = incibot_env(tmp_path / "fresh")  # no database URL: SQLite in the state dir
    not_migrated = run_incibot("serve", "--port", str(free_port()), env=fresh, timeout=20)
    assert "incibot db upgrade" in refused(not_migrated, 1)

    head = migrate.head_revision()
    assert ok(run_incibot("db", "upgrade", env=fresh)).strip() == f"database at revision {head}"
    assert (tmp_path / "fresh" / "incibot.db").is_file()
    assert ok(run_incibot("db", "upgrade", env=fresh)).strip() == f"database at revision {head}"  # idempotent
    assert ok_json(run_incibot("incidents", "list", "--json", env=fresh)) == []

    # The configured database (SQLite or PostgreSQL), already at head.
    assert ok(run_incibot("db", "upgrade", env=env)).strip() == f"database at revision {head}"


def test_serve_creates_a_private_token_once_and_reuses_it(env: dict[str, str], state_dir: Path, tmp_path: Path) -> None:
    token_file = state_dir / "ingest-token"
    group = am_group([am_alert()])
    with ServeProcess(env, tmp_path / "serve-1.log") as first:
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert f"Created an ingest token in {token_file}: {token}" in first.log()
        assert httpx.post(f"{first.url}/alerts/alertmanager", json=group, headers=auth(token)).status_code == 202
        assert httpx.post(f"{first.url}/alerts/alertmanager", json=group, headers=auth("nope")).status_code == 401

    with ServeProcess(env, tmp_path / "serve-2.log") as second:
        assert token_file.read_text().strip() == token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert f"Using the ingest token in {token_file}" in second.log()
        assert token not in second.log()  # printed once, when created
        assert httpx.post(f"{second.url}/alerts/alertmanager", json=group, headers=auth(token)).status_code == 202


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads a process's children from Linux's /proc")
def test_serve_runs_its_worker_at_a_lower_cpu_priority(
    env: dict[str, str], database_url: str, state_dir: Path, tmp_path: Path
) -> None:
    """Ingestion comes first where the two share cores: the worker child is niced, serve itself is not. The child
    goes by its role's name in ps and top, not "python"."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    with ServeProcess({**env, "INCIBOT_WORKER_NICE": "7"}, tmp_path / "serve.log") as server:
        assert server.process is not None
        assert os.getpriority(os.PRIO_PROCESS, server.process.pid) == ours
        assert wait_for(lambda: _children(server.process.pid))  # type: ignore[union-attr]
        [worker] = _children(server.process.pid)
        assert wait_for(lambda: os.getpriority(os.PRIO_PROCESS, worker) == min(ours + 7, 19))
        assert wait_for(lambda: Path(f"/proc/{worker}/comm").read_text().strip() == "incibot-worker")


def test_serve_refuses_a_public_address_without_a_token(env: dict[str, str], state_dir: Path) -> None:
    port = free_port()
    result = run_incibot("serve", "--host", ALL_INTERFACES, "--port", str(port), env=env, timeout=20)
    message = refused(result)
    assert f"refusing to listen on {ALL_INTERFACES} without INCIBOT_INGEST_TOKENS" in message
    assert "incibot starting" not in result.stdout
    assert not (state_dir / "ingest-token").exists()
    assert not is_listening(port)


# --- incidents and deliveries against a running server ----------------------------------------------------


@dataclass
class Running:
    env: dict[str, str]
    url: str
    db: Database


@pytest.fixture
def running(env: dict[str, str], db: Database, tmp_path: Path) -> Iterator[Running]:
    with ServeProcess(env, tmp_path / "serve.log") as server:
        yield Running(env, server.url, db)


@pytest.fixture
def opened(running: Running) -> tuple[Running, int]:
    """``send-test-alert`` sent and processed: one incident of 3 alerts; returns its id."""
    output = ok(run_incibot("send-test-alert", "--url", running.url, env=running.env))
    assert output.startswith("202 ")
    wait_for(lambda: processed(running.db), timeout=15)
    with running.db.read() as session:
        [incident_id] = session.scalars(select(Incident.id))
    return running, incident_id


def test_send_test_alert_opens_one_incident_with_the_documented_keys(opened: tuple[Running, int]) -> None:
    running, incident_id = opened
    [incident] = ok_json(run_incibot("incidents", "list", "--json", env=running.env))
    assert set(incident) == SUMMARY_KEYS
    assert incident["id"] == incident_id
    assert isinstance(incident["id"], int)
    assert isinstance(incident["alert_count"], int)
    assert incident["alert_count"] == 3
    assert (incident["status"], incident["severity"], incident["source"]) == ("triggered", "critical", "alertmanager")
    assert incident["service"] == "checkout-api"
    assert isinstance(incident["title"], str)
    assert incident["title"]
    assert datetime.fromisoformat(incident["opened_at"]).tzinfo is not None
    assert (incident["acknowledged_at"], incident["resolved_at"]) == (None, None)
    assert ok_json(run_incibot("incidents", "list", "--status", "resolved", "--json", env=running.env)) == []


def test_acknowledge_and_resolve_from_the_command_line(opened: tuple[Running, int]) -> None:
    running, incident_id = opened
    iid = str(incident_id)
    assert "alice" in ok(run_incibot("incidents", "ack", iid, "--by", "alice", env=running.env))
    shown = ok_json(run_incibot("incidents", "show", iid, "--json", env=running.env))
    assert (shown["status"], shown["acknowledged_by"]) == ("acknowledged", "alice")
    assert shown["acknowledged_at"] is not None
    assert len(shown["alerts"]) == 3
    assert any(entry["actor"] == "alice" and "alice" in entry["text"] for entry in shown["timeline"])

    assert "already" in refused(run_incibot("incidents", "ack", iid, "--by", "carol", env=running.env))

    note = "Rolled back checkout-api to v1.42.0"
    assert "bob" in ok(run_incibot("incidents", "resolve", iid, "--note", note, "--by", "bob", env=running.env))
    shown = ok_json(run_incibot("incidents", "show", iid, "--json", env=running.env))
    assert (shown["status"], shown["resolved_by"], shown["resolution_note"]) == ("resolved", "bob", note)
    assert shown["resolved_at"] is not None
    assert any(entry["actor"] == "bob" and note in entry["text"] for entry in shown["timeline"])

    assert "already" in refused(run_incibot("incidents", "resolve", iid, "--by", "bob", env=running.env))
    assert "already" in refused(run_incibot("incidents", "ack", iid, "--by", "alice", env=running.env))


def test_send_test_alert_resolve_resolves_the_alerts_it_opened(opened: tuple[Running, int]) -> None:
    running, incident_id = opened
    assert ok(run_incibot("send-test-alert", "--url", running.url, "--resolve", env=running.env)).startswith("202 ")
    with running.db.read() as session:
        assert set(session.scalars(select(Alert.status))) == {"resolved"}
    assert stored(running.db) == (2, 3, 1)  # the same three occurrences, resolved: none new

    wait_for(lambda: processed(running.db), timeout=15)
    shown = ok_json(run_incibot("incidents", "show", str(incident_id), "--json", env=running.env))
    assert [alert["status"] for alert in shown["alerts"]] == ["resolved"] * 3
    assert (shown["status"], shown["resolved_by"]) == ("resolved", "incibot")


def test_deliveries_list_and_retry(opened: tuple[Running, int]) -> None:
    running, _ = opened
    [delivery] = ok_json(run_incibot("deliveries", "list", "--json", env=running.env))
    assert set(delivery) == DELIVERY_KEYS
    assert (delivery["source"], delivery["status"], delivery["alerts"], delivery["attempts"]) == (
        "alertmanager",
        "done",
        3,
        0,
    )
    assert delivery["last_error"] is None
    assert ok_json(run_incibot("deliveries", "list", "--failed", "--json", env=running.env)) == []
    assert ok(run_incibot("deliveries", "list", "--failed", env=running.env)).strip() == "No deliveries."
    table = ok(run_incibot("deliveries", "list", env=running.env))
    assert "alertmanager" in table
    assert "done" in table

    message = refused(run_incibot("deliveries", "retry", str(delivery["id"]), env=running.env), 1)
    assert "not failed" in message
    assert f"no delivery {delivery['id'] + 1000}" in refused(
        run_incibot("deliveries", "retry", str(delivery["id"] + 1000), env=running.env), 1
    )


def test_send_test_alert_with_a_wrong_token_fails_and_stores_nothing(running: Running) -> None:
    result = run_incibot("send-test-alert", "--url", running.url, "--token", "not-the-token", env=running.env)
    refused(result, 1)
    assert result.stdout.startswith("401 ")
    assert stored(running.db) == (0, 0, 0)


def test_send_test_alert_without_a_token_or_a_server(tmp_path: Path, database_url: str) -> None:
    env = incibot_env(tmp_path / "empty", database_url)
    assert "no ingest token" in refused(run_incibot("send-test-alert", env=env), 2)
    unreachable = f"http://127.0.0.1:{free_port()}"
    result = run_incibot("send-test-alert", "--url", unreachable, "--token", "t", env=env)
    assert "cannot reach" in refused(result, 1)


# --- errors people make -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [["show"], ["show", "--json"], ["ack", "--by", "alice"], ["resolve"]])
def test_unknown_incident_exits_1_with_a_message(env: dict[str, str], action: list[str]) -> None:
    command, *options = action
    result = run_incibot("incidents", command, "4242", *options, env=env)
    assert "There is no incident 4242" in refused(result, 1)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INCIBOT_RETENTION_DAYS", "abc"),
        ("INCIBOT_RETENTION_DAYS", "0"),
        ("INCIBOT_REOPEN_WINDOW", "soon"),
        ("INCIBOT_INGEST_TOKENS", "nagios=secret"),
        ("INCIBOT_PROCESS_DELIVERIES", "perhaps"),
    ],
)
def test_invalid_setting_exits_2_naming_it(env: dict[str, str], name: str, value: str) -> None:
    result = run_incibot("incidents", "list", env={**env, name: value})
    message = refused(result, 2)
    assert f"invalid setting {name}" in message
    assert result.stdout == ""


# --- the Slack stand-in beside `serve` -------------------------------------------------------------------


def test_serve_runs_the_slack_standin_and_slack_command_talks_to_it(
    opened: tuple[Running, int], state_dir: Path, tmp_path: Path
) -> None:
    running, incident_id = opened
    runtime_file = state_dir / "runtime.json"
    assert stat.S_IMODE(runtime_file.stat().st_mode) == 0o600
    info = json.loads(runtime_file.read_text())
    assert info["bot_url"] == running.url
    assert httpx.get(f"{running.url}/readyz").json()["slack"] == {"mode": "standin", "ok": True, "problems": []}

    def posted() -> list[dict[str, Any]]:
        answer = httpx.get(f"{info['standin_url']}/_standin/messages", params={"channel": "incidents"}).json()
        return list(answer["messages"])

    [post] = wait_for(posted, timeout=15)
    assert f"(incident #{incident_id})" in post["text"]
    assert f"local workspace: {info['standin_url']}/" in (tmp_path / "serve.log").read_text()
    page = httpx.get(info["workspace_url"], timeout=10).text  # the local workspace, drawn on the server
    assert f'data-ts="{post["ts"]}"' in page and 'data-action-id="incident_acknowledge"' in page
    alert = httpx.post(f"{info['workspace_url']}workspace/alerts", json={"sample": "certificate-expiry"}, timeout=10)
    assert alert.json()["status"] == 202  # its "Send test alert" reaches the bot's webhook with the token file's token

    listing = ok(run_incibot("slack", "command", "/incident list", env=running.env))
    assert listing.startswith("ack: HTTP 200")
    assert f"*#{incident_id}*" in listing
    acked = ok(run_incibot("slack", "command", f"/incident ack {incident_id}", "--user", "U0BOB", env=running.env))
    assert f"Incident {incident_id} acknowledged by bob." in acked
    wait_for(lambda: "acknowledged" in posted()[0]["text"], timeout=15)

    forged = run_incibot("slack", "command", "/incident list", "--signing-secret", "forged", env=running.env)
    assert "401" in refused(forged, 1)
