"""The running bot as Slack sees it: Socket Mode through the stand-in, the 3-second ack deadline under load
while the outbox is slow, and Events API retries. The whole runtime runs (real threads, real clock); the
only wall-clock assertion is Slack's own ack deadline."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from slack_sdk import WebClient
from sqlalchemy import select

from bot.incidents.models import Incident, IncidentStatus, TimelineEntry
from bot.runtime import Runtime
from bot.settings import Settings
from bot.slack.listeners.agent import HELP
from bot.standin.driver import ACK_DEADLINE, Delivery, SlackDriver
from bot.standin.server import StandinServer
from bot.standin.signing import signed_headers
from bot.standin.workspace import BOT_USER_ID, DEFAULT_BOT_TOKEN, Workspace
from tests.support import serve_in_thread, wait_for

pytestmark = pytest.mark.db


@dataclass
class Live:
    runtime: Runtime
    standin: StandinServer
    url: str

    def driver(self) -> SlackDriver:
        return SlackDriver(self.standin.url, bot_url=self.url, signing_secret=self.runtime.slack.signing_secret)

    def incidents(self) -> list[Incident]:
        with self.runtime.database.read() as session:
            return list(session.scalars(select(Incident).order_by(Incident.id)))

    def timeline(self, kind: str) -> list[int]:
        with self.runtime.database.read() as session:
            return list(session.scalars(select(TimelineEntry.incident_id).where(TimelineEntry.kind == kind)))


def serve(settings: Settings) -> Iterator[Live]:
    runtime = Runtime.build(settings)
    with serve_in_thread(runtime.asgi_app()) as url:
        assert runtime.slack.standin is not None
        yield Live(runtime, runtime.slack.standin, url)


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    """The whole bot, served on loopback (Slack's requests come over HTTP)."""
    yield from serve(settings)


@pytest.fixture
def live_socket(settings: Settings) -> Iterator[Live]:
    """The whole bot with Socket Mode: in stand-in mode any app token means "use the stand-in's own"."""
    with_token = settings.model_copy(update={"slack_app_token": SecretStr("xapp-1-anything")})
    for live in serve(with_token):
        assert live.runtime.slack.mode == "standin"
        assert live.runtime.slack.app_token == Workspace().app_token
        assert live.runtime.slack.socket_handler is not None
        yield live


def test_socket_mode_slash_command_is_acked_once_and_handled_once(live_socket: Live) -> None:
    live = live_socket
    with live.driver() as driver:
        listed = driver.slash_command("/incident", "list", via_socket=True, wait_responses=3)
        declared = driver.slash_command("/incident", "declare Checkout is down", via_socket=True, wait_responses=3)

    for delivery in (listed, declared):
        assert delivery.transport == "socket"
        assert delivery.acked and delivery.latency < ACK_DEADLINE
    assert listed.responses == [{"text": "No open incidents. :tada:", "response_type": "ephemeral"}]
    [incident] = wait_for(live.incidents)
    assert incident.title == "Checkout is down"
    assert declared.responses == [
        {"text": f"Declared incident {incident.id}: Checkout is down", "response_type": "ephemeral"}
    ]
    time.sleep(0.5)  # nothing more arrives later: one effect each
    assert len(live.incidents()) == 1
    for delivery in (listed, declared):
        assert delivery.response_url is not None
        assert len(live.standin.responses(delivery.response_url)) == 1


def test_fifty_concurrent_commands_are_acked_in_time_while_the_outbox_is_slow(live: Live) -> None:
    for method in ("chat.postMessage", "chat.update"):
        live.standin.add_fault("latency", method=method, times=None, seconds=2.0)
    with live.runtime.database.write() as session:
        ids = [live.runtime.incidents.declare(session, f"Service {n} down", "slack:U0BOB", "bob").id for n in range(5)]
    live.runtime.slack.outbox.wake()  # it starts on five posts of 2 s each

    texts = [f"ack {ids[n % 5]}" for n in range(40)] + ["list"] * 10

    def command(text: str) -> Delivery:
        with live.driver() as driver:
            return driver.slash_command("/incident", text, wait_responses=20)

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        deliveries = list(pool.map(command, texts))
    assert len(live.standin.calls("chat.postMessage")) < 5, "the outbox was meant to be busy all along"
    live.standin.clear_faults()

    slowest = max(delivery.latency for delivery in deliveries)
    assert all(delivery.acked and delivery.status == 200 for delivery in deliveries)
    assert slowest < ACK_DEADLINE, slowest
    assert all(len(delivery.responses) == 1 for delivery in deliveries)
    answers = [delivery.responses[0]["text"] for text, delivery in zip(texts, deliveries, strict=True)]
    for incident_id in ids:
        mine = [a for t, a in zip(texts, answers, strict=True) if t == f"ack {incident_id}"]
        assert mine.count(f"Incident {incident_id} acknowledged by alice.") == 1, mine
        assert len(mine) == 8
    assert all(a.startswith("Open incidents:") for t, a in zip(texts, answers, strict=True) if t == "list")
    assert all(incident.status == IncidentStatus.ACKNOWLEDGED for incident in live.incidents())
    assert sorted(live.timeline("acknowledged")) == sorted(ids)


def test_event_retry_is_processed_when_the_first_delivery_never_arrived(live: Live) -> None:
    live.standin.set_rate_limits(False)  # the scene is set with the bot's own posts, three in a second
    slack = WebClient(base_url=live.standin.api_url, token=DEFAULT_BOT_TOKEN, timeout=10)
    first = slack.chat_postMessage(channel="incidents", text="who is on call?")["ts"]
    second = slack.chat_postMessage(channel="incidents", text="and now?")["ts"]

    def deliver(event_id: str, ts: str, retry_num: int) -> httpx.Response:
        callback = {
            "token": "standin-verification-token",
            "team_id": "T0STANDIN",
            "api_app_id": "A0STANDIN",
            "event": {
                "type": "app_mention",
                "user": "U0ALICE",
                "text": f"<@{BOT_USER_ID}> help",
                "ts": ts,
                "channel": "C0INCIDENTS",
                "event_ts": ts,
            },
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T0STANDIN", "user_id": BOT_USER_ID, "is_bot": True}],
        }
        body = orjson.dumps(callback)
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Retry-Num": str(retry_num),
            "X-Slack-Retry-Reason": "http_timeout",
            **signed_headers(live.runtime.slack.signing_secret, int(time.time()), body),
        }
        return httpx.post(f"{live.url}/slack/events", content=body, headers=headers, timeout=ACK_DEADLINE)

    def replies(ts: str) -> list[dict[str, Any]]:
        return [reply for m in live.standin.messages("incidents") if m["ts"] == ts for reply in m["replies"]]

    assert deliver("Ev0RETRIED01", first, retry_num=1).status_code == 200  # Slack's first try was lost
    [reply] = wait_for(lambda: replies(first))
    assert reply["text"] == HELP

    assert deliver("Ev0RETRIED01", first, retry_num=2).status_code == 200  # the same event once more
    assert deliver("Ev0ANOTHER02", second, retry_num=0).status_code == 200  # a new one, as a marker
    wait_for(lambda: replies(second))
    time.sleep(0.3)
    assert len(replies(first)) == 1
    assert len(replies(second)) == 1
