"""A running bot wired to the Slack stand-in, and a signed driver that acts as Slack towards it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from bot.incidents.models import Incident, TimelineEntry
from bot.runtime import ALL_ROLES, Runtime, utc_now
from bot.settings import Settings
from bot.slack.models import OutboxItem, OutboxStatus
from bot.standin.driver import SlackDriver
from bot.standin.server import StandinServer
from bot.standin.workspace import Workspace
from knowledge.embeddings import Embedder
from tests.conftest import auth
from tests.support import FakeClock, serve_in_thread, wait_for


@dataclass
class SlackBot:
    runtime: Runtime
    url: str
    http: httpx.Client
    driver: SlackDriver
    clock: FakeClock | None = None  # set: the worker and the outbox run only in drain(), on this clock

    @property
    def standin(self) -> StandinServer:
        assert self.runtime.slack.standin is not None
        return self.runtime.slack.standin

    def send(self, payload: dict[str, Any], source: str = "alertmanager") -> None:
        response = self.http.post(f"/alerts/{source}", json=payload, headers=auth())
        assert response.status_code == 202, response.text

    def posts(self, channel: str = "incidents") -> list[dict[str, Any]]:
        return self.standin.messages(channel)

    def drain(self) -> None:
        """Everything due happens now (on the fake clock); with the real clock the threads do it."""
        if self.clock is not None:
            drain(self.runtime, self.clock)

    def wait_for_post(self, predicate: Any = None, channel: str = "incidents", timeout: float = 10) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            self.drain()
            for message in self.posts(channel):
                if predicate is None or predicate(message):
                    return message
            return None

        message: dict[str, Any] = wait_for(found, timeout=timeout)
        return message

    def incident(self, incident_id: int) -> Incident:
        with self.runtime.database.read() as session:
            incident = session.get(Incident, incident_id)
            assert incident is not None
            return incident

    def timeline(self, incident_id: int) -> list[TimelineEntry]:
        with self.runtime.database.read() as session:
            return list(
                session.scalars(
                    select(TimelineEntry).where(TimelineEntry.incident_id == incident_id).order_by(TimelineEntry.id)
                )
            )


PASSES_PER_INSTANT = 50


def drain(runtime: Runtime, clock: FakeClock, *, step: float = 1.0, limit: float = 600.0) -> None:
    """Apply the stored deliveries and send the outbox, moving the fake clock on by ``step`` seconds whenever
    nothing more can be done at this instant (pacing, Retry-After, coalescing), until no Slack write is
    pending. Tests call this instead of sleeping: no real time has to pass, and "nothing more happens" is
    checked once everything due has happened. Timers (reminders) are left alone; advance the clock for them."""
    waited = 0.0
    while True:
        for _ in range(PASSES_PER_INSTANT):
            if not runtime.worker.run_once() and not runtime.slack.outbox.run_once():
                break
        else:
            raise AssertionError("the worker or the outbox kept finding work at one instant")
        with runtime.database.read() as session:
            pending = session.scalar(
                select(func.count()).select_from(OutboxItem).where(OutboxItem.status == OutboxStatus.PENDING)
            )
        if not pending:
            return
        if waited >= limit:
            raise AssertionError(f"{pending} Slack writes still pending after {limit:.0f} s of fake time")
        clock.advance(seconds=step)
        if runtime.slack.standin is not None:
            runtime.slack.standin.advance_clock(step)  # its rate limits pass with the bot's time
        waited += step


@contextmanager
def running_bot(
    settings: Settings,
    embedder: Embedder | None = None,
    *,
    clock: FakeClock | None = None,
    workspace: Workspace | None = None,
) -> Iterator[SlackBot]:
    """The whole bot over HTTP on loopback, with its stand-in and a driver. With ``clock``, only the web side
    runs (ingest, Slack requests, the stand-in) and the worker and the outbox run in ``bot.drain()``; without,
    everything runs in its threads on the real clock. ``workspace``: what the stand-in starts with."""
    runtime = Runtime.build(settings, embedder=embedder, clock=clock or utc_now, standin_workspace=workspace)
    with (
        serve_in_thread(runtime.asgi_app(frozenset({"web"}) if clock else ALL_ROLES)) as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        assert runtime.slack.standin is not None and runtime.slack.signing_secret is not None
        with SlackDriver(
            runtime.slack.standin.url, bot_url=url, signing_secret=runtime.slack.signing_secret, workspace=workspace
        ) as driver:
            yield SlackBot(runtime, url, http, driver, clock)
