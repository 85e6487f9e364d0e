"""Large deliveries are applied in chunks: each commits its progress, the group's order holds, nothing twice.

Deliveries come in over real HTTP with processing off; a worker of the test's own, with a small chunk size and a
fake timer (the write-lock budget), is driven by hand with the fake clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

from bot.incidents.models import Incident, IncidentAlert, TimelineEntry
from bot.ingest.models import Delivery
from bot.processing.worker import (
    CHUNK_BUDGET,
    SQLITE_CHUNK_ROOM,
    SQLITE_HOLD_BUDGET,
    STORM_CALM_AFTER,
    ProcessingWorker,
)
from bot.runtime import Runtime
from bot.settings import Settings
from tests.conftest import auth
from tests.support import FakeClock, am_alert, am_group, serve_in_thread

pytestmark = pytest.mark.db

BIG = '{}:{alertname="HighErrorRate"}'
OTHER = '{}:{alertname="DiskFull"}'


class FakeTimer:
    """A monotonic timer that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@dataclass
class Bot:
    runtime: Runtime
    http: httpx.Client
    clock: FakeClock

    def send(self, alerts: int, group_key: str, prefix: str) -> int:
        group = am_group([am_alert(pod=f"{prefix}{n}") for n in range(alerts)], group_key=group_key)
        response = self.http.post("/alerts/alertmanager", json=group, headers=auth())
        assert response.status_code == 202, response.text
        delivery_id: int = response.json()["delivery_id"]
        return delivery_id

    def worker(self, chunk_events: int, timer: FakeTimer) -> ProcessingWorker:
        """A worker whose SQLite transactions have a storm's budget (the short one) at all times."""
        runtime = self.runtime
        return ProcessingWorker(
            runtime.database,
            runtime.incidents,
            runtime.metrics,
            self.clock,
            chunk_events=chunk_events,
            calm_budget=SQLITE_HOLD_BUDGET,
            timer=timer,
        )

    def progress(self) -> dict[int, tuple[str, int]]:
        with self.runtime.database.read() as session:
            rows = session.execute(select(Delivery.id, Delivery.status, Delivery.events_applied))
            return {row.id: (str(row.status), row.events_applied) for row in rows}

    def incidents(self) -> list[Incident]:
        with self.runtime.database.read() as session:
            return list(session.scalars(select(Incident).order_by(Incident.id)))

    def links(self, incident_id: int) -> int:
        with self.runtime.database.read() as session:
            query = select(func.count()).select_from(IncidentAlert).where(IncidentAlert.incident_id == incident_id)
            return session.scalar(query) or 0

    def timeline(self, incident_id: int) -> list[str]:
        with self.runtime.database.read() as session:
            query = select(TimelineEntry.kind).where(TimelineEntry.incident_id == incident_id)
            return list(session.scalars(query.order_by(TimelineEntry.id)))


@pytest.fixture
def bot(settings: Settings, clock: FakeClock) -> Iterator[Bot]:
    runtime = Runtime.build(settings.model_copy(update={"process_deliveries": False}), clock=clock)
    try:
        with serve_in_thread(runtime.asgi_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
            yield Bot(runtime, http, clock)
    finally:
        runtime.database.dispose()


def test_a_large_delivery_is_applied_in_chunks_and_its_group_waits(bot: Bot) -> None:
    big = bot.send(10, BIG, "big-")
    later = bot.send(1, BIG, "later-")  # same group, after the big one: must wait for all of it
    other = bot.send(1, OTHER, "other-")  # another group: must not wait
    worker = bot.worker(chunk_events=3, timer=FakeTimer())

    seen = []
    while worker.run_once():
        seen.append(bot.progress())
        bot.clock.advance(seconds=1)

    assert [state[big] for state in seen] == [("pending", 3), ("pending", 6), ("pending", 9), ("done", 10)]
    assert [state[later][0] for state in seen] == ["pending", "pending", "pending", "done"]
    assert seen[0][other] == ("done", 1)  # applied in the first transaction, beside the first chunk
    big_incident, other_incident = bot.incidents()
    assert (big_incident.alert_count, bot.links(big_incident.id)) == (11, 11)
    assert (other_incident.alert_count, bot.links(other_incident.id)) == (1, 1)
    # One "alerts added" per chunk: the first opened the incident and added 2, then 3, 3 and 1, then the later
    # delivery's alert.
    assert bot.timeline(big_incident.id) == ["opened", *["alerts_added"] * 5]


def test_a_chunk_ends_when_its_transaction_has_run_for_its_budget(bot: Bot) -> None:
    big = bot.send(12, BIG, "big-")
    # Every read of the timer is 40% of the budget later: a chunk ends after a few events.
    budget = SQLITE_HOLD_BUDGET + SQLITE_CHUNK_ROOM if bot.runtime.database.is_sqlite else CHUNK_BUDGET
    worker = bot.worker(chunk_events=1000, timer=FakeTimer(step=budget * 0.4))
    applied = []
    while worker.run_once():
        applied.append(bot.progress()[big][1])
    assert len(applied) > 3
    assert applied == sorted(set(applied))
    assert max(b - a for a, b in zip([0, *applied], applied, strict=False)) <= 3
    [incident] = bot.incidents()
    assert (incident.alert_count, bot.links(incident.id)) == (12, 12)
    assert bot.progress()[big] == ("done", 12)


def test_a_failing_chunk_rolls_back_alone_and_the_retry_resumes_after_the_last_committed_one(bot: Bot) -> None:
    big = bot.send(9, BIG, "big-")
    worker = bot.worker(chunk_events=3, timer=FakeTimer())
    assert worker.run_once() == 1
    assert bot.progress()[big] == ("pending", 3)

    original = bot.runtime.incidents.apply_events
    calls = []

    def failing(*args: object, **kwargs: object) -> int:
        calls.append(1)
        raise RuntimeError("boom")

    bot.runtime.incidents.apply_events = failing  # type: ignore[method-assign]
    try:
        worker.run_once()
    finally:
        bot.runtime.incidents.apply_events = original  # type: ignore[method-assign]
    assert calls == [1]
    assert bot.progress()[big] == ("pending", 3)  # the failed chunk changed nothing

    bot.clock.advance(minutes=10)  # past the retry's back-off
    while worker.run_once():
        pass
    assert bot.progress()[big] == ("done", 9)
    [incident] = bot.incidents()
    assert (incident.alert_count, bot.links(incident.id)) == (9, 9)


def test_a_large_delivery_in_progress_gets_a_chunk_in_every_transaction_while_small_ones_keep_coming(
    bot: Bot,
) -> None:
    big = bot.send(9, BIG, "big-")
    small = [bot.send(1, f'{{}}:{{pod="small-{n}"}}', f"small-{n}-") for n in range(6)]
    # Each read of the timer is 3 ms later: on SQLite one small delivery spends the 12 ms budget of a transaction,
    # yet the big one, in progress, still gets its chunk (its budget has SQLITE_CHUNK_ROOM more).
    worker = bot.worker(chunk_events=3, timer=FakeTimer(step=0.003))
    history = []
    while worker.run_once():
        state = bot.progress()
        history.append((state[big][1], sum(state[delivery][0] == "done" for delivery in small)))
    applied = [big_applied for big_applied, _small_done in history]
    assert applied[:3] == [3, 6, 9]  # a chunk in each of the first three transactions
    if bot.runtime.database.is_sqlite:
        assert history[2][1] < len(small)  # ... while small deliveries were still waiting
    assert history[-1] == (9, len(small))


def test_chunks_read_neither_the_body_nor_each_alert_again(bot: Bot) -> None:
    """A 20,000-alert delivery is about 6 MB: re-reading its body and re-parsing its events for every chunk held
    SQLite's write lock for hundreds of milliseconds (mostly in garbage collection), and fetching its alerts one
    query each made it crawl."""
    big = bot.send(250, BIG, "big-")
    transactions, selects = _drained(bot.worker(chunk_events=50, timer=FakeTimer()), bot)
    assert transactions == 5 and bot.progress()[big] == ("done", 250)
    assert not [statement for statement in selects if "deliveries.body" in statement]
    assert len([statement for statement in selects if re.search(r"deliveries\.events\b", statement)]) == 1  # once
    assert not [statement for statement in selects if re.search(r"FROM alerts WHERE alerts\.id = ", statement)]
    [incident] = bot.incidents()
    assert (incident.alert_count, bot.links(incident.id)) == (250, 250)


def test_a_small_deliverys_events_are_read_once_however_many_transactions_claim_it(bot: Bot) -> None:
    """During a storm a SQLite transaction applies a few deliveries of the batch it claims, and the next claims
    most of the others again: their events were read (and parsed) again in every one, inside the write lock."""
    small = [bot.send(1, f'{{}}:{{pod="small-{n}"}}', f"small-{n}-") for n in range(6)]
    # Each read of the timer is past the budget: on SQLite a transaction applies one delivery.
    transactions, selects = _drained(bot.worker(chunk_events=50, timer=FakeTimer(step=0.02)), bot)
    assert _done(bot) == len(small)
    assert transactions == (len(small) if bot.runtime.database.is_sqlite else 1)
    assert len([statement for statement in selects if re.search(r"deliveries\.events\b", statement)]) == 1  # once


def _drained(worker: ProcessingWorker, bot: Bot) -> tuple[int, list[str]]:
    """Run ``worker`` until nothing is left; returns its transactions and the SELECT statements it ran."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    engine = bot.runtime.database.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        transactions = 0
        while worker.run_once():
            transactions += 1
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return transactions, [statement for statement in statements if statement.startswith("SELECT")]


def _done(bot: Bot) -> int:
    return sum(status == "done" for status, _ in bot.progress().values())


def _applied_by_one_step(bot: Bot, worker: ProcessingWorker) -> int:
    before = _done(bot)
    assert worker.step() > 0
    return _done(bot) - before


def test_on_sqlite_transactions_are_short_while_deliveries_pour_in_and_longer_once_they_stop(bot: Bot) -> None:
    if not bot.runtime.database.is_sqlite:
        pytest.skip("the budgets are SQLite's (PostgreSQL has row locks: ingestion never waits for the worker)")
    runtime = bot.runtime
    timer = FakeTimer(step=0.002)
    worker = ProcessingWorker(runtime.database, runtime.incidents, runtime.metrics, bot.clock, timer=timer)
    small = [bot.send(1, f'{{}}:{{pod="calm-{n}"}}', f"calm-{n}-") for n in range(40)]
    first = _applied_by_one_step(bot, worker)  # no rate measured yet: a storm's budget (ingestion first)
    timer.now += STORM_CALM_AFTER
    assert worker.step() > 0  # nothing arrived for half a second: calm
    calm = _applied_by_one_step(bot, worker)
    storm = [bot.send(1, f'{{}}:{{pod="storm-{n}"}}', f"storm-{n}-") for n in range(20)]
    assert worker.step() > 0  # 20 deliveries arrived within a few (fake) milliseconds: a storm
    during = _applied_by_one_step(bot, worker)  # ... so this transaction had the short budget
    assert 0 < first < calm and 0 < during < calm
    while worker.run_once():
        pass
    assert _done(bot) == len(small) + len(storm)


def test_a_storm_ends_only_after_a_while_without_arrivals(bot: Bot) -> None:
    """Between two rounds ingestion may have committed nothing (the worker held the lock, or its writer commits
    webhooks in groups): that alone must not end the storm and give the worker its long transactions again."""
    if not bot.runtime.database.is_sqlite:
        pytest.skip("the budgets are SQLite's (PostgreSQL has row locks: ingestion never waits for the worker)")
    runtime = bot.runtime
    timer = FakeTimer(step=0.002)
    worker = ProcessingWorker(runtime.database, runtime.incidents, runtime.metrics, bot.clock, timer=timer)
    bot.send(1, '{}:{pod="first"}', "first-")
    assert worker.step() > 0  # the first look: no rate yet
    for n in range(60):
        bot.send(1, f'{{}}:{{pod="storm-{n}"}}', f"storm-{n}-")
    assert worker.step() > 0  # sees the storm
    assert worker.step() > 0  # nothing arrived since the last look, milliseconds ago: too soon to call it over
    still = _applied_by_one_step(bot, worker)
    timer.now += STORM_CALM_AFTER  # a quiet half second
    assert worker.step() > 0  # this look ends the storm
    calm = _applied_by_one_step(bot, worker)
    assert 0 < still < calm
