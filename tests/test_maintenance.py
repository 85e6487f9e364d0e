"""Retention, quiet-incident flags and the lease that keeps maintenance to one process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from bot.db.database import Database
from bot.incidents.models import Incident, IncidentStatus, TimelineEntry
from bot.ingest.models import Alert, Delivery
from bot.runtime import Runtime
from bot.scheduling import lease
from bot.scheduling.scheduler import Maintenance
from bot.settings import Settings
from tests.conftest import auth
from tests.support import FakeClock, am_alert, am_group, serve_in_thread

pytestmark = pytest.mark.db


@pytest.fixture
def send(settings: Settings, clock: FakeClock) -> Iterator[tuple[Runtime, httpx.Client]]:
    runtime = Runtime.build(settings.model_copy(update={"process_deliveries": False}), clock=clock)
    with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield runtime, http


def test_retention_prunes_old_processed_deliveries_only(
    send: tuple[Runtime, httpx.Client], clock: FakeClock, settings: Settings
) -> None:
    runtime, http = send
    http.post("/alerts/alertmanager", json=am_group([am_alert(pod="old")]), headers=auth())
    while runtime.worker.run_once():
        pass
    clock.advance(days=31)
    http.post("/alerts/alertmanager", json=am_group([am_alert(pod="new", starts_at=clock.now)]), headers=auth())
    maintenance = Maintenance(
        runtime.database, runtime.incidents, clock, retention=settings.retention, quiet_after=timedelta(days=99)
    )
    assert maintenance.run_once()
    with runtime.database.read() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1  # the new, still pending one
        assert session.scalar(select(func.count()).select_from(Alert)) == 2  # alerts are kept
        assert session.scalar(select(func.count()).select_from(Incident)) == 1


def test_quiet_incidents_are_flagged_once_never_resolved(
    send: tuple[Runtime, httpx.Client], clock: FakeClock, settings: Settings
) -> None:
    runtime, http = send
    http.post("/alerts/alertmanager", json=am_group([am_alert(pod="a")]), headers=auth())
    http.post("/alerts/alertmanager", json=am_group([am_alert(pod="b")], group_key="other"), headers=auth())
    while runtime.worker.run_once():
        pass
    maintenance = Maintenance(
        runtime.database, runtime.incidents, clock, retention=settings.retention, quiet_after=timedelta(hours=6)
    )
    clock.advance(hours=5)
    # Alertmanager re-sends group "other" (a still-firing alert): that source is alive.
    http.post("/alerts/alertmanager", json=am_group([am_alert(pod="b")], group_key="other"), headers=auth())
    clock.advance(hours=2)
    assert maintenance.run_once()
    assert maintenance.run_once()  # a second run flags nothing new
    with runtime.database.read() as session:
        incidents = {i.group_key: i for i in session.scalars(select(Incident))}
        quiet = incidents['alertmanager:{}:{alertname="HighErrorRate"}']
        alive = incidents["alertmanager:other"]
        assert quiet.quiet_flagged_at == clock.now
        assert quiet.status == IncidentStatus.TRIGGERED
        assert alive.quiet_flagged_at is None
        flags = session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "flagged_quiet")).all()
        assert [entry.incident_id for entry in flags] == [quiet.id]


def test_lease_admits_one_holder_until_it_expires(database: Database, clock: FakeClock) -> None:
    ttl = timedelta(minutes=10)
    with database.write() as session:
        assert lease.acquire(session, "maintenance", "host-a:1", clock.now, ttl)
    with database.write() as session:
        assert not lease.acquire(session, "maintenance", "host-b:2", clock.now, ttl)
        assert lease.acquire(session, "maintenance", "host-a:1", clock.now, ttl)  # renewal
    clock.advance(minutes=11)
    with database.write() as session:
        assert lease.acquire(session, "maintenance", "host-b:2", clock.now, ttl)
    with database.write() as session:
        assert not lease.acquire(session, "maintenance", "host-a:1", clock.now, ttl)
