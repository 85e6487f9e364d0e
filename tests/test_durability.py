"""Durability: a 202 survives a SIGKILL, SIGTERM under load loses nothing, and an outage answers 503.

These tests run ``incibot serve`` as a real process (or uvicorn in a thread for the outage test) and
check what the database holds, not what the server says.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.db.database import Database
from bot.incidents.models import Incident, IncidentAlert, TimelineEntry
from bot.ingest.models import Alert, Delivery
from bot.runtime import Runtime
from tests.conftest import TOKEN, auth
from tests.processes import ServeProcess, incibot_env
from tests.support import am_alert, am_group, serve_in_thread, wait_for

pytestmark = pytest.mark.db

GROUP_KEY = '{}:{alertname="HighErrorRate"}'


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The test's own connection to the database the server processes use."""
    database = Database(database_url)
    yield database
    database.dispose()


def delivery_statuses(db: Database) -> dict[int, str]:
    with db.read() as session:
        return {row.id: str(row.status) for row in session.execute(select(Delivery.id, Delivery.status))}


def incidents(db: Database) -> list[Incident]:
    with db.read() as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


def timeline_kinds(db: Database, incident_id: int) -> list[str]:
    with db.read() as session:
        query = select(TimelineEntry.kind).where(TimelineEntry.incident_id == incident_id).order_by(TimelineEntry.id)
        return list(session.scalars(query))


def counts(db: Database) -> tuple[int, int, int]:
    """(deliveries, alerts, incidents) stored."""
    with db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Delivery)) or 0,
            session.scalar(select(func.count()).select_from(Alert)) or 0,
            session.scalar(select(func.count()).select_from(Incident)) or 0,
        )


def post_group(url: str, alerts: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(
        f"{url}/alerts/alertmanager", json=am_group(alerts, group_key=GROUP_KEY), headers=auth(), timeout=10
    )


# --- SIGKILL after the 202, before processing ------------------------------------------------------------


def test_delivery_accepted_before_sigkill_is_processed_exactly_once_after_restart(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    env = incibot_env(tmp_path / "var", database_url, ingest_tokens=TOKEN)

    # Ingest only: the delivery is committed and answered, and nothing has processed it when the kill comes.
    ingest_only = ServeProcess({**env, "INCIBOT_PROCESS_DELIVERIES": "false"}, tmp_path / "serve-1.log")
    with ingest_only:
        response = post_group(ingest_only.url, [am_alert(pod="a"), am_alert(pod="b")])
        assert response.status_code == 202, response.text
        delivery_id = response.json()["delivery_id"]
        assert ingest_only.kill() == -signal.SIGKILL
    assert "processing is off" in ingest_only.log()
    assert "stopped cleanly" not in ingest_only.log()
    assert delivery_statuses(db) == {delivery_id: "pending"}
    assert counts(db) == (1, 2, 0)

    # A normal start processes it: one incident with both alerts.
    with ServeProcess(env, tmp_path / "serve-2.log"):
        wait_for(lambda: delivery_statuses(db) == {delivery_id: "done"}, timeout=15)
    [incident] = incidents(db)
    assert (incident.alert_count, str(incident.status)) == (2, "triggered")
    assert timeline_kinds(db, incident.id) == ["opened", "alerts_added"]  # pod a opened it, pod b joined

    # Another start must not apply it again. A new alert of the same group shows that its worker has run.
    with ServeProcess(env, tmp_path / "serve-3.log") as server:
        response = post_group(server.url, [am_alert(pod="c")])
        assert response.status_code == 202, response.text
        second_id = response.json()["delivery_id"]
        wait_for(lambda: delivery_statuses(db) == {delivery_id: "done", second_id: "done"}, timeout=15)
    [again] = incidents(db)
    assert again.id == incident.id
    assert again.alert_count == 3
    assert timeline_kinds(db, incident.id) == ["opened", "alerts_added", "alerts_added"]
    assert counts(db) == (2, 3, 1)


# --- SIGKILL between the chunks of a large delivery --------------------------------------------------------

LARGE_GROUP = 800  # many chunks: on SQLite a chunk is at most 50 ms of work


def progress(db: Database, delivery_id: int) -> tuple[str, int]:
    with db.read() as session:
        row = session.execute(select(Delivery.status, Delivery.events_applied).where(Delivery.id == delivery_id)).one()
        return str(row.status), row.events_applied


def links(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(IncidentAlert)) or 0


@pytest.mark.timeout(300)  # three server starts and 800 alerts applied, on a loaded machine
def test_sigkill_between_chunks_resumes_and_applies_every_alert_once(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    env = incibot_env(tmp_path / "var", database_url, ingest_tokens=TOKEN)
    with ServeProcess({**env, "INCIBOT_PROCESS_DELIVERIES": "false"}, tmp_path / "serve-1.log") as ingest_only:
        response = post_group(ingest_only.url, [am_alert(pod=f"pod-{n}") for n in range(LARGE_GROUP)])
        assert response.status_code == 202, response.text
        big = response.json()["delivery_id"]
        later = post_group(ingest_only.url, [am_alert(pod="later")]).json()["delivery_id"]  # same group, after

    # Killed once some chunks are committed and before the last one.
    worker = ServeProcess(env, tmp_path / "serve-2.log")
    with worker:
        wait_for(lambda: progress(db, big)[1] > 0, timeout=120, interval=0.005)
        assert worker.kill() == -signal.SIGKILL
    status, applied = progress(db, big)
    assert (status, progress(db, later)[0]) == ("pending", "pending"), f"killed too late ({applied} applied)"
    assert 0 < applied < LARGE_GROUP
    [incident] = incidents(db)
    assert incident.alert_count == applied == links(db)  # the committed chunks, and nothing of the killed one

    with ServeProcess(env, tmp_path / "serve-3.log"):
        wait_for(lambda: progress(db, later)[0] == "done", timeout=300, interval=0.05)
    assert progress(db, big) == ("done", LARGE_GROUP)
    [incident] = incidents(db)
    assert incident.alert_count == LARGE_GROUP + 1 == links(db)
    assert counts(db) == (2, LARGE_GROUP + 1, 1)


# --- SIGTERM under load ----------------------------------------------------------------------------------

CLIENTS = 16
ACCEPTED_BEFORE_SIGTERM = 200


@dataclass(frozen=True, slots=True)
class Answer:
    probe: str  # the unique label value of the request's one alert
    status: int | None  # None: no HTTP answer (connection refused or reset)
    after_sigterm: bool  # the answer (or the failure) came after SIGTERM was sent


async def _load(url: str, sigterm: Callable[[], None]) -> list[Answer]:
    """``CLIENTS`` concurrent senders, each posting unique one-alert groups until the server is gone.

    Once ``ACCEPTED_BEFORE_SIGTERM`` requests were accepted, ``sigterm()`` is called, mid-load. A sender
    stops at its first answer that is not a 202 after that (or at any failure).
    """
    answers: list[Answer] = []
    sent = asyncio.Event()

    async def sender(number: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=auth(), timeout=30) as http:
            for sequence in itertools.count():
                probe = f"c{number}-{sequence}"
                alert = am_alert(pod=f"pod-{number}", probe=probe)
                group = am_group([alert], group_key=f'{{}}:{{probe="{probe}"}}')
                try:
                    status: int | None = (await http.post("/alerts/alertmanager", json=group)).status_code
                except httpx.TransportError:
                    status = None
                answers.append(Answer(probe, status, sent.is_set()))
                if status != 202:
                    return
                if not sent.is_set() and sum(a.status == 202 for a in answers) >= ACCEPTED_BEFORE_SIGTERM:
                    sigterm()
                    sent.set()

    async with asyncio.timeout(25):
        await asyncio.gather(*(sender(number) for number in range(CLIENTS)))
    return answers


def stored_probes(db: Database) -> set[str]:
    with db.read() as session:
        return {labels["probe"] for labels in session.scalars(select(Alert.labels))}


def test_sigterm_under_load_keeps_every_accepted_delivery(database_url: str, tmp_path: Path, db: Database) -> None:
    server = ServeProcess(incibot_env(tmp_path / "var", database_url, ingest_tokens=TOKEN), tmp_path / "serve.log")
    with server:
        process = server.process
        assert process is not None
        answers = asyncio.run(_load(server.url, lambda: process.send_signal(signal.SIGTERM)))
        try:
            returncode: int | None = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            returncode = None

    before = [a for a in answers if not a.after_sigterm]
    assert len(before) >= ACCEPTED_BEFORE_SIGTERM
    assert {a.status for a in before} == {202}, "a running server refused or dropped requests"
    accepted = {a.probe for a in answers if a.status == 202}
    refused = {a.probe for a in answers if a.status is not None and a.status != 202}
    assert {a.status for a in answers} <= {202, 503, None}
    assert len(answers) - len(accepted) >= CLIENTS, "every sender ends on a refusal or a failure"

    stored = stored_probes(db)
    assert accepted - stored == set(), "answered 202 but not stored"
    assert stored & refused == set(), "refused but stored anyway"
    assert stored <= {a.probe for a in answers}

    log = server.log()
    assert "incibot stopped cleanly" in log, log
    assert returncode == 0, f"incibot serve exited with {returncode} after SIGTERM:\n{log}"


# --- database outage -------------------------------------------------------------------------------------


@contextmanager
def sqlite_write_lock(database_url: str) -> Iterator[None]:
    """Another process's exclusive lock on the SQLite file: writers time out (``db_lock_timeout``)."""
    path = make_url(database_url).database
    assert path
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def postgres_cluster() -> tuple[str, str]:
    """The local cluster to stop, from ``INCIBOT_TEST_PG_CLUSTER`` ("15 main"); skipped when unset, but not in CI."""
    cluster = os.environ.get("INCIBOT_TEST_PG_CLUSTER", "").split()
    if len(cluster) != 2:
        reason = 'set INCIBOT_TEST_PG_CLUSTER (e.g. "15 main") to stop and start PostgreSQL in this test'
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return cluster[0], cluster[1]


@contextmanager
def postgres_stopped(cluster: tuple[str, str]) -> Iterator[None]:
    """PostgreSQL really down (fast shutdown), and started again afterwards whatever happens."""
    subprocess.run(["pg_ctlcluster", *cluster, "stop", "-m", "fast"], check=True, timeout=60)
    try:
        yield
    finally:
        subprocess.run(["pg_ctlcluster", *cluster, "start"], check=True, timeout=60)


def test_database_outage_gets_503_with_retry_after_and_stores_nothing(
    runtime: Runtime, database: Database, database_url: str
) -> None:
    outage: AbstractContextManager[None] = (
        postgres_stopped(postgres_cluster()) if database.is_postgres else sqlite_write_lock(database_url)
    )
    group = am_group([am_alert(pod="a")], group_key=GROUP_KEY)

    with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, headers=auth(), timeout=30) as http:
        assert http.get("/readyz").status_code == 200
        with outage:
            refused = http.post("/alerts/alertmanager", json=group)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "unavailable"
            assert int(refused.headers["Retry-After"]) > 0
            if database.is_postgres:  # a locked SQLite file can still be read: it is busy, not down
                not_ready = http.get("/readyz")
                assert not_ready.status_code == 503
                assert not_ready.json()["status"] == "unavailable"

        wait_for(lambda: http.get("/readyz").status_code == 200, timeout=20, interval=0.2)
        assert counts(database) == (0, 0, 0)
        retried = http.post("/alerts/alertmanager", json=group)
        assert retried.status_code == 202, retried.text

    with database.read() as session:
        assert list(session.scalars(select(Delivery.id))) == [retried.json()["delivery_id"]]
    assert counts(database)[:2] == (1, 1)
