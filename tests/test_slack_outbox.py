"""The Slack outbox against the real stand-in over loopback HTTP: pacing, 429s, dropped connections, 5xx,
deleted messages, coalescing, severity filtering, reminders and per-incident channels.

Alerts come in through the real HTTP ingest; processing (``worker.run_once``), the outbox
(``outbox.run_once``) and maintenance (``maintenance.run_once``) are driven by hand with a fake clock, so
every pacing and backoff step is deterministic. Only the delivery writer and the stand-in run in threads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from sqlalchemy import func, select

from bot.incidents.models import Incident, TimelineEntry
from bot.knowledge.models import IncidentDocument
from bot.runtime import Runtime
from bot.settings import Route, Settings
from bot.slack.blocks import CLASSIFY_ACTION, MAX_HEADER_CHARS, MAX_SECTION_CHARS, RESOLVE_ACTION
from bot.slack.models import OutboxItem, OutboxStatus
from bot.slack.outbox import OutboxWorker
from bot.slack.suggester import AHEAD
from bot.standin.faults import FaultKind
from bot.standin.server import StandinServer
from bot.standin.workspace import BOT_USER_ID, DEFAULT_BOT_TOKEN, ChannelSeed, Workspace
from bot.web.app import build_web_app
from knowledge.classify.categories import CATEGORY_KEYS
from knowledge.embeddings import Embedder
from tests.conftest import auth
from tests.support import FakeClock, am_alert, am_group, serve_in_thread

pytestmark = pytest.mark.db

ALICE = "slack:U0ALICE"
MAX_ATTEMPTS = 10  # the outbox's default


@dataclass
class Bot:
    runtime: Runtime
    http: httpx.Client
    clock: FakeClock
    standin: StandinServer
    slack: WebClient  # the bot's token on the stand-in, for setting the scene (creating channels)

    def send(self, payload: dict[str, Any]) -> None:
        response = self.http.post("/alerts/alertmanager", json=payload, headers=auth())
        assert response.status_code == 202, response.text

    def process(self) -> None:
        while self.runtime.worker.run_once():
            pass

    def pump(self) -> None:
        """Run outbox passes at the current (fake) time until nothing more is due."""
        for _ in range(20):
            if not self.runtime.slack.outbox.run_once():
                return
        raise AssertionError("the outbox kept finding work at one instant")

    def later(self, seconds: float) -> None:
        self.clock.advance(seconds=seconds)
        self.standin.advance_clock(seconds)  # the stand-in's rate limits see the same time pass
        self.pump()

    def declare(self, title: str) -> int:
        with self.runtime.database.write() as session:
            return self.runtime.incidents.declare(session, title, ALICE, "alice").id

    def acknowledge(self, incident_id: int) -> None:
        with self.runtime.database.write() as session:
            assert self.runtime.incidents.acknowledge(session, incident_id, ALICE, "alice").changed

    def incident(self, incident_id: int) -> Incident:
        with self.runtime.database.read() as session:
            found = session.get(Incident, incident_id)
            assert found is not None
            return found

    def incidents(self) -> list[Incident]:
        with self.runtime.database.read() as session:
            return list(session.scalars(select(Incident).order_by(Incident.id)))

    def outbox(self) -> list[OutboxItem]:
        with self.runtime.database.read() as session:
            return list(session.scalars(select(OutboxItem).order_by(OutboxItem.id)))

    def messages(self, channel: str = "incidents") -> list[dict[str, Any]]:
        return self.standin.messages(channel)

    def posts_to(self, channel_id: str) -> list[dict[str, Any]]:
        """``chat.postMessage`` calls to ``channel_id`` (by id or name) as the stand-in recorded them."""
        names = {channel_id}
        info = self.standin.channel(channel_id)
        if info is not None:
            names |= {info["id"], info["name"]}
        return [call for call in self.standin.calls("chat.postMessage") if call["params"]["channel"] in names]


def start_bot(settings: Settings, clock: FakeClock) -> Iterator[Bot]:
    """The real web app on loopback, with only the delivery writer and the stand-in running."""
    runtime = Runtime.build(settings.model_copy(update={"process_deliveries": False}), clock=clock)
    standin = runtime.slack.standin
    assert standin is not None

    def start() -> None:
        runtime.writer.start()
        standin.start()

    def stop() -> None:
        runtime.writer.stop()
        standin.stop()

    app = build_web_app(
        runtime.ingest, runtime.slack, runtime.database, runtime.metrics, on_startup=start, on_shutdown=stop
    )
    try:
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as http:
            slack = WebClient(base_url=standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)
            yield Bot(runtime, http, clock, standin, slack)
    finally:
        runtime.database.dispose()


class Bots:
    """Starts bots with settings overrides; stops them (in reverse) at the end of the test."""

    def __init__(self, settings: Settings, clock: FakeClock) -> None:
        self._settings = settings
        self._clock = clock
        self._running: dict[int, Iterator[Bot]] = {}

    def start(self, **overrides: Any) -> Bot:
        started = start_bot(self._settings.model_copy(update=overrides), self._clock)
        bot = next(started)
        self._running[id(bot)] = started
        return bot

    def stop(self, bot: Bot) -> None:
        next(self._running.pop(id(bot)), None)

    def stop_all(self) -> None:
        for started in reversed(list(self._running.values())):
            next(started, None)
        self._running.clear()


@pytest.fixture
def bots(settings: Settings, clock: FakeClock) -> Iterator[Bots]:
    started = Bots(settings, clock)
    yield started
    started.stop_all()


@pytest.fixture
def bot(bots: Bots) -> Bot:
    return bots.start()


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def section_texts(message: dict[str, Any]) -> list[str]:
    texts = []
    for block in message["blocks"] or []:
        if block.get("text"):
            texts.append(block["text"]["text"])
        texts += [field["text"] for field in block.get("fields", [])]
        texts += [element.get("text", "") for element in block.get("elements", []) if block["type"] == "context"]
    return texts


# Failures Slack can answer with.


def test_429_pauses_only_its_channel_for_retry_after(bots: Bots) -> None:
    bot = bots.start(routes=(Route("team", "payments", "payments"),))
    bot.slack.conversations_create(name="payments")  # an admin made it; the bot is in it
    bot.send(am_group([am_alert("PaymentsDown", team="payments")], group_key="payments"))
    bot.process()
    payments = only(bot.incidents()).id
    first_other = bot.declare("Checkout is slow")
    bot.standin.add_fault("ratelimited", method="chat.postMessage", channel="payments", retry_after=2)

    bot.pump()  # t=0: #payments answers 429 (Retry-After: 2); #incidents posts
    assert bot.messages("payments") == []
    assert len(bot.messages("incidents")) == 1
    [limited] = bot.posts_to("payments")
    assert (limited["status"], limited["fault"]) == (429, "ratelimited")

    second_other = bot.declare("Search is slow")
    bot.later(1)  # t=1: #payments is still paused; #incidents keeps posting
    assert bot.messages("payments") == []
    assert len(bot.messages("incidents")) == 2
    bot.later(0.9)  # t=1.9: still inside Retry-After
    assert bot.messages("payments") == []
    assert len(bot.posts_to("payments")) == 1

    bot.later(0.1)  # t=2: the pause is over
    [posted] = bot.messages("payments")
    assert [call["status"] for call in bot.posts_to("payments")] == [429, 200]
    assert bot.incident(payments).slack_ts == posted["ts"]
    assert "PaymentsDown" in posted["text"]
    bot.later(5)
    assert len(bot.messages("payments")) == 1
    assert [m["ts"] for m in bot.messages("incidents")] == [
        bot.incident(first_other).slack_ts,
        bot.incident(second_other).slack_ts,
    ]
    assert all(item.status == OutboxStatus.DONE for item in bot.outbox())


def test_rate_limited_in_the_body_pauses_only_its_channel(bots: Bots) -> None:
    """Slack also refuses with HTTP 200 and ``{"ok": false, "error": "rate_limited"}``, without Retry-After."""
    bot = bots.start(routes=(Route("team", "payments", "payments"),))
    bot.slack.conversations_create(name="payments")
    bot.send(am_group([am_alert("PaymentsDown", team="payments")], group_key="payments"))
    bot.process()
    payments = only(bot.incidents()).id
    bot.standin.add_fault("error", method="chat.postMessage", channel="payments", error="rate_limited", times=3)

    bot.pump()  # #payments is refused in the body
    other = bot.declare("Checkout is slow")
    bot.pump()  # #incidents is not paused by it
    assert bot.messages("payments") == []
    assert [m["ts"] for m in bot.messages("incidents")] == [bot.incident(other).slack_ts]
    [limited] = bot.posts_to("payments")
    assert (limited["status"], limited["error"], limited["fault"]) == (200, "rate_limited", "error")

    for _ in range(4):
        bot.later(1.5)  # each refusal pauses #payments' posts for a moment, never for good
    [posted] = bot.messages("payments")
    assert bot.incident(payments).slack_ts == posted["ts"]
    assert [call["error"] for call in bot.posts_to("payments")] == ["rate_limited"] * 3 + [None]
    [item] = [item for item in bot.outbox() if item.incident_id == payments]
    assert (item.status, item.attempts) == (OutboxStatus.DONE, 1)  # a rate limit is not a failed attempt


def test_dropped_connection_after_post_is_reconciled_not_reposted(bot: Bot) -> None:
    incident_id = bot.declare("Checkout is down")
    bot.standin.add_fault("accept_then_drop", method="chat.postMessage")

    bot.pump()  # Slack stores the post, but the answer never arrives
    [stored] = bot.messages()
    assert bot.incident(incident_id).slack_ts is None
    [item] = bot.outbox()
    assert (item.status, item.ambiguous, item.attempts) == (OutboxStatus.PENDING, True, 1)

    bot.later(1)  # inside the backoff: nothing happens
    assert len(bot.standin.calls("chat.postMessage")) == 1
    bot.later(1.5)  # past the backoff: the worker looks before it posts
    bot.later(10)
    assert only(bot.messages())["ts"] == stored["ts"]
    assert len(bot.standin.calls("chat.postMessage")) == 1
    assert bot.standin.calls("conversations.history")
    incident = bot.incident(incident_id)
    assert (incident.slack_channel, incident.slack_ts) == ("C0INCIDENTS", stored["ts"])
    [item] = bot.outbox()
    assert (item.status, item.ambiguous) == (OutboxStatus.DONE, False)


def test_dropped_connection_after_thread_reply_is_reconciled(bot: Bot) -> None:
    incident_id = bot.declare("Checkout is down")
    bot.pump()
    bot.standin.add_fault("accept_then_drop", method="chat.postMessage")
    bot.acknowledge(incident_id)

    bot.later(1)  # the reply is stored but unanswered; the edit goes through
    [message] = bot.messages()
    assert [reply["text"] for reply in message["replies"]] == ["Acknowledged by alice."]
    bot.later(3)
    bot.later(10)
    [message] = bot.messages()
    assert [reply["text"] for reply in message["replies"]] == ["Acknowledged by alice."]
    assert bot.standin.calls("conversations.replies")
    assert len(bot.standin.calls("chat.postMessage")) == 2  # the post and the one reply
    assert all(item.status == OutboxStatus.DONE for item in bot.outbox())


def test_deleted_message_is_reposted_and_relinked(bot: Bot) -> None:
    incident_id = bot.declare("Checkout is down")
    bot.pump()
    old_ts = bot.incident(incident_id).slack_ts
    assert old_ts is not None
    assert bot.standin.delete_message("incidents", old_ts)
    bot.acknowledge(incident_id)

    bot.later(1)
    bot.later(3)
    [message] = bot.messages()  # the old one is gone; exactly one new one
    incident = bot.incident(incident_id)
    assert incident.slack_ts == message["ts"] != old_ts
    assert ":eyes: Acknowledged" in " ".join(section_texts(message))
    assert "acknowledged (incident" in message["text"]
    # The repost is the acknowledged post: "Resolve" (no "Acknowledge" any more) and the category menu.
    actions = [block for block in message["blocks"] if block["type"] == "actions"]
    assert [element["action_id"] for element in only(actions)["elements"]] == [RESOLVE_ACTION, CLASSIFY_ACTION]
    menu = only(actions)["elements"][1]
    assert menu["type"] == "static_select" and len(menu["options"]) == len(CATEGORY_KEYS)
    # The acknowledgement's thread reply lands in the new message's thread, not nowhere.
    assert [reply["text"] for reply in message["replies"]] == ["Acknowledged by alice."]
    assert all(item.status == OutboxStatus.DONE for item in bot.outbox())


def test_server_error_is_retried_after_backoff(bot: Bot) -> None:
    incident_id = bot.declare("Checkout is down")
    bot.standin.add_fault("server_error", method="chat.postMessage", status=500)

    bot.pump()
    assert bot.messages() == []
    [failed] = bot.standin.calls("chat.postMessage")
    assert (failed["status"], failed["fault"]) == (500, "server_error")
    bot.later(1.5)  # the first backoff is 2 s
    assert len(bot.standin.calls("chat.postMessage")) == 1
    bot.later(0.5)
    [message] = bot.messages()
    assert bot.incident(incident_id).slack_ts == message["ts"]
    bot.later(60)
    assert len(bot.messages()) == 1
    assert [call["status"] for call in bot.standin.calls("chat.postMessage")] == [500, 200]


# What gets posted.


def test_a_thousand_alerts_cost_a_handful_of_calls(bot: Bot) -> None:
    long_name = "CheckoutLatencyBudgetBurn" + "X" * 300  # long lines: the section limit bites before ten

    def batch(start: int) -> dict[str, Any]:
        return am_group([am_alert(long_name, pod=f"pod-{n:04d}") for n in range(start, start + 100)])

    bot.send(batch(0))
    bot.process()
    bot.pump()  # the post, with the first 100 alerts
    for start in range(100, 1000, 100):  # 900 more join in nine deliveries, each processed at once
        bot.send(batch(start))
        bot.process()
        bot.pump()
    for _ in range(8):
        bot.later(0.5)

    [incident] = bot.incidents()
    assert incident.alert_count == 1000
    posts, updates = bot.standin.calls("chat.postMessage"), bot.standin.calls("chat.update")
    assert len(posts) + len(updates) <= 6, (len(posts), len(updates))
    assert all(call["error"] is None for call in posts + updates)
    [message] = bot.messages()
    assert len(message["blocks"]) <= 50
    assert message["blocks"][0]["type"] == "header"
    assert len(message["blocks"][0]["text"]["text"]) <= MAX_HEADER_CHARS
    assert all(len(text) <= MAX_SECTION_CHARS for text in section_texts(message))
    assert "*Alerts*\n1000" in section_texts(message)
    # One alert name: one grouped line with the count and a few of the pods that tell the alerts apart.
    [alert_section] = [text for text in section_texts(message) if text.startswith(":fire:")]
    assert alert_section.startswith(":fire: *1000 \N{MULTIPLICATION SIGN} CheckoutLatencyBudgetBurn")
    assert alert_section.endswith(" — pod-0000, -0001, -0002, -0003, -0004 and 995 more")
    [joined] = message["replies"]
    assert joined["text"].startswith(
        "900 alerts joined:\n:fire: *900 \N{MULTIPLICATION SIGN} CheckoutLatencyBudgetBurn"
    )
    assert joined["text"].endswith(" — pod-0100, -0101, -0102, -0103, -0104 and 895 more")
    assert len(joined["text"]) <= MAX_SECTION_CHARS


def test_below_min_severity_is_stored_never_posted(bots: Bots) -> None:
    bot = bots.start(min_severity="critical")
    bot.send(am_group([am_alert("DiskFilling", severity="warning")], group_key="disk"))
    bot.send(am_group([am_alert("DatabaseDown", severity="critical")], group_key="db"))
    bot.process()
    bot.later(5)
    warning, critical = bot.incidents()
    assert (warning.severity, critical.severity) == ("warning", "critical")
    [message] = bot.messages()
    assert "DatabaseDown" in message["text"]
    assert warning.slack_ts is None and critical.slack_ts == message["ts"]
    assert {item.incident_id for item in bot.outbox()} == {critical.id}


def test_unacknowledged_reminder_once_and_after_a_restart(bots: Bots, clock: FakeClock) -> None:
    bot = bots.start(unacked_reminder=timedelta(minutes=15))
    forgotten = bot.declare("Checkout is down")
    handled = bot.declare("Search is slow")
    bot.pump()
    bot.later(1)
    bot.acknowledge(handled)
    bot.later(1)

    def replies(incident_id: int) -> list[str]:
        ts = bot.incident(incident_id).slack_ts
        return [reply["text"] for m in bot.messages() if m["ts"] == ts for reply in m["replies"]]

    bot.clock.advance(minutes=14)  # not due yet
    assert bot.runtime.maintenance.run_once()
    bot.later(1)
    assert replies(forgotten) == []
    bot.clock.advance(minutes=1)
    assert bot.runtime.maintenance.run_once()
    bot.later(1)

    reminder = "Still unacknowledged after 15 min. Acknowledge it if you are on it."
    assert replies(forgotten) == [reminder]
    assert replies(handled) == ["Acknowledged by alice."]
    bot.clock.advance(minutes=30)
    assert bot.runtime.maintenance.run_once()
    bot.later(5)
    assert replies(forgotten) == [reminder]

    # A timer is a database row: set before a restart, it fires after it, once.
    survivor = bot.declare("Payments are slow")
    bot.later(1)
    bots.stop(bot)
    restarted = bots.start(unacked_reminder=timedelta(minutes=15))
    clock.advance(minutes=16)
    assert restarted.runtime.maintenance.run_once()
    restarted.later(1)
    assert restarted.runtime.maintenance.run_once()
    restarted.later(5)
    ts = restarted.incident(survivor).slack_ts
    [message] = [m for m in restarted.messages() if m["ts"] == ts]
    assert [r["text"] for r in message["replies"]] == [
        "Still unacknowledged after 16 min. Acknowledge it if you are on it."
    ]
    with restarted.runtime.database.read() as session:
        kinds = session.scalars(select(TimelineEntry.kind).where(TimelineEntry.incident_id == survivor)).all()
        reminders = select(func.count()).select_from(TimelineEntry).where(TimelineEntry.kind == "reminder")
        assert (list(kinds), session.scalar(reminders)) == (["opened", "reminder"], 2)


def test_incident_channel_is_created_with_a_suffix_and_linked(bots: Bots) -> None:
    bot = bots.start(incident_channels=True, responders=frozenset({"U0ALICE", "U0BOB"}))
    incident_id = bot.declare("Checkout is DOWN!")
    taken = f"inc-{incident_id}-checkout-is-down"
    bot.slack.conversations_create(name=taken)

    bot.pump()
    bot.later(1)
    bot.later(2)
    created = [(c["params"]["name"], c["error"]) for c in bot.standin.calls("conversations.create")]
    assert created == [(taken, None), (taken, "name_taken"), (f"{taken}-2", None)]
    channel = bot.standin.channel(f"{taken}-2")
    assert channel is not None
    assert set(channel["members"]) >= {"U0ALICE", "U0BOB"}
    incident = bot.incident(incident_id)
    assert incident.incident_channel == channel["id"]
    [message] = bot.messages()
    assert message["ts"] == incident.slack_ts
    assert f"channel <#{channel['id']}>" in " ".join(section_texts(message))
    assert len(message["edits"]) == 1


def test_one_unknown_responder_does_not_keep_the_others_out_of_the_incident_channel(
    bots: Bots, caplog: pytest.LogCaptureFixture
) -> None:
    bot = bots.start(incident_channels=True, responders=frozenset({"U0ALICE", "U0GONE", "U0BOB"}))
    incident_id = bot.declare("Checkout is down")

    bot.pump()
    bot.later(1)
    [invite] = bot.standin.calls("conversations.invite")
    assert invite["error"] is None  # Slack fails the whole call on one bad user unless force=true
    channel = bot.standin.channel(f"inc-{incident_id}-checkout-is-down")
    assert channel is not None
    assert {"U0ALICE", "U0BOB"} <= set(channel["members"])
    assert "U0GONE" not in channel["members"]
    assert "could not invite U0GONE" in caplog.text


def test_deleted_message_before_an_alerts_joined_reply(bot: Bot) -> None:
    bot.send(am_group([am_alert(pod="a")]))
    bot.process()
    bot.pump()
    bot.send(am_group([am_alert(pod="a"), am_alert(pod="b")]))
    bot.process()
    bot.later(1)  # the edit goes out now; the "joined" reply waits for the coalescing window
    [incident] = bot.incidents()
    old_ts = incident.slack_ts
    assert old_ts is not None and len(only(bot.messages())["edits"]) == 1
    assert bot.standin.delete_message("incidents", old_ts)

    bot.later(1.5)
    bot.later(3)
    [message] = bot.messages()
    assert bot.incident(incident.id).slack_ts == message["ts"] != old_ts
    assert [reply["text"].split(":")[0] for reply in message["replies"]] == ["1 alert joined"]
    assert all(item.status == OutboxStatus.DONE for item in bot.outbox())


def test_429_on_a_reply_pauses_new_posts_to_the_same_channel(bot: Bot) -> None:
    first = bot.declare("Checkout is down")
    bot.pump()
    bot.clock.advance(seconds=5)
    bot.standin.add_fault("ratelimited", method="chat.postMessage", channel="incidents", retry_after=2)
    bot.acknowledge(first)
    bot.pump()  # the reply to #incidents (by id) gets the 429
    bot.declare("Search is slow")
    bot.pump()  # a new post to #incidents (by name): the channel is paused
    assert [call["status"] for call in bot.standin.calls("chat.postMessage")] == [200, 429]
    bot.later(2)  # the pause is over: the new post goes first, then (a second later) the reply
    bot.later(1)
    first_message, second_message = bot.messages()
    assert [reply["text"] for reply in first_message["replies"]] == ["Acknowledged by alice."]
    assert "Search is slow" in second_message["text"]
    assert [call["status"] for call in bot.standin.calls("chat.postMessage")] == [200, 429, 200, 200]


def test_a_new_incidents_post_goes_before_replies_queued_for_others_in_its_channel(bot: Bot) -> None:
    first = bot.declare("Checkout is down")
    bot.pump()
    bot.clock.advance(seconds=5)
    bot.acknowledge(first)  # a reply to #incidents, queued before the next incident opens
    bot.declare("Search is slow")
    bot.pump()  # one post a second in a channel: the new incident's
    assert "Search is slow" in bot.standin.calls("chat.postMessage")[-1]["params"]["text"]
    bot.later(1)
    first_message, second_message = bot.messages()
    assert [reply["text"] for reply in first_message["replies"]] == ["Acknowledged by alice."]
    assert "Search is slow" in second_message["text"]


# One failing item or channel never holds back the others (issue 8, defects 2, 4 and 6).


@pytest.mark.parametrize("fault", ["server_error", "ratelimited"])
def test_refused_lookups_after_a_restart_never_wedge_the_outbox(bots: Bots, fault: FaultKind) -> None:
    bot = bots.start()
    interrupted = bot.declare("Checkout is down")
    bot.standin.add_fault("accept_then_drop", method="chat.postMessage")
    bot.pump()  # Slack stored the post; the answer was lost
    [item] = bot.outbox()
    assert (item.status, item.ambiguous) == (OutboxStatus.PENDING, True)
    bots.stop(bot)

    bot = bots.start()  # the restarted outbox knows no channel: reconciling needs the lookups
    for method in ("conversations.list", "conversations.info", "conversations.history", "conversations.join"):
        bot.standin.add_fault(fault, method=method, times=None, retry_after=5)
    later = bot.declare("Search is slow")
    for _ in range(40):
        bot.later(60)

    first, second = bot.outbox()
    assert first.incident_id == interrupted and first.attempts <= MAX_ATTEMPTS
    if fault == "server_error":  # counted: the attempt limit applies
        assert (first.status, first.attempts) == (OutboxStatus.FAILED, MAX_ATTEMPTS)
        assert first.last_error is not None and "HTTP 500" in first.last_error
    else:  # Slack said when: waiting is not an attempt, and never blocks anyone else
        assert (first.status, first.ambiguous) == (OutboxStatus.PENDING, True)
    assert second.status == OutboxStatus.DONE
    posted = bot.incident(later).slack_ts
    assert posted is not None and [m["ts"] for m in bot.messages()][-1] == posted
    assert len(bot.messages()) == 2  # the interrupted post (stored once) and the later one


def test_429_on_chat_update_does_not_stop_posts(bot: Bot) -> None:
    first = bot.declare("Checkout is down")
    bot.pump()
    bot.later(5)
    bot.standin.add_fault("ratelimited", method="chat.update", retry_after=10)
    bot.acknowledge(first)
    bot.pump()  # the edit answers 429 (Retry-After: 10); the reply is posted
    second = bot.declare("Search is slow")
    bot.later(1)  # chat.update is paused; posts are not
    assert bot.incident(second).slack_ts is not None
    assert [call["status"] for call in bot.standin.calls("chat.update")] == [429]
    [message, _] = bot.messages()
    assert [reply["text"] for reply in message["replies"]] == ["Acknowledged by alice."]
    assert message["edits"] == []
    bot.later(8.9)  # still inside Retry-After
    assert [call["status"] for call in bot.standin.calls("chat.update")] == [429]
    bot.later(0.1)
    assert [call["status"] for call in bot.standin.calls("chat.update")] == [429, 200]
    assert "acknowledged" in bot.messages()[0]["text"]
    assert all(item.status == OutboxStatus.DONE for item in bot.outbox())


def test_configured_channels_are_joined_at_start_up_and_kept_as_ids(
    settings: Settings, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``chat:write.public`` posts to a public channel without joining it, but reading it back (to reconcile a
    lost answer) needs membership: the worker joins the configured public channels first, and says plainly,
    once, that it must be invited to a private one it cannot see."""
    payments = ChannelSeed("C0PAYMENTS01", "payments", ("U0ALICE",))
    secret = ChannelSeed("C0SECRET001", "secret", ("U0ALICE",), is_private=True)
    runtime = Runtime.build(settings.model_copy(update={"alerts_channel": "#payments"}), clock=clock)
    with StandinServer(tmp_path / "slack.sqlite", workspace=Workspace(channels=(payments, secret))) as standin:
        client = WebClient(base_url=standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)
        outbox = OutboxWorker(runtime.database, client, clock, channels=("#payments", "secret"))
        caplog.set_level(logging.INFO)
        assert outbox.run_once() == 0  # nothing to send yet: it sets the channels up
        assert BOT_USER_ID in (standin.channel("payments") or {})["members"]
        assert [call["params"]["channel"] for call in standin.calls("conversations.join")] == ["C0PAYMENTS01"]

        with runtime.database.write() as session:  # queued for "#payments", by name, as settings name it
            incident_id = runtime.incidents.declare(session, "Payments are failing", ALICE, "alice").id
        standin.add_fault("accept_then_drop", method="chat.postMessage")
        outbox.run_once()  # stored, unanswered
        for _ in range(3):
            clock.advance(seconds=5)
            outbox.run_once()  # the worker reads #payments back and finds it
        [message] = standin.messages("payments")
        assert [call["error"] for call in standin.calls("conversations.history")] == [None]
        assert len(standin.calls("chat.postMessage")) == 1
        with runtime.database.read() as session:
            [item] = session.scalars(select(OutboxItem)).all()
            assert (item.status, item.channel) == (OutboxStatus.DONE, "C0PAYMENTS01")
            incident = session.get(Incident, incident_id)
            assert incident is not None and (incident.slack_channel, incident.slack_ts) == (
                "C0PAYMENTS01",
                message["ts"],
            )
    runtime.database.dispose()
    said = [record.getMessage() for record in caplog.records if "#secret" in record.getMessage()]
    assert said == [
        "Slack channel #secret not found: create it and invite @incibot, or if it is private, invite @incibot"
        " (/invite @incibot)"
    ]


def test_suggestions_are_found_when_the_incident_opens_and_never_hold_a_post_over_a_second(
    knowledge_settings: Settings, clock: FakeClock, shared_embedder: Embedder
) -> None:
    runtime = Runtime.build(knowledge_settings, clock=clock, embedder=shared_embedder)
    outbox, standin = runtime.slack.outbox, runtime.slack.standin
    assert outbox.suggester is not None and standin is not None
    standin.start()
    try:
        with runtime.database.write() as session:
            found_first = runtime.incidents.declare(session, "Disk almost full on db-7", ALICE, "alice").id
            slow = runtime.incidents.declare(session, "Replica lagging behind the primary", ALICE, "alice").id
        assert outbox.suggester.run_once() == 2  # both found before any post is sent, outside the send path
        assert outbox.run_once() == 1  # the first post goes at once, with its suggestions
        [post] = standin.messages("incidents")
        assert "*Runbooks*" in json.dumps(post["blocks"]) and "looking for runbooks" not in json.dumps(post["blocks"])
        assert runtime.slack.outbox.run_once() == 0  # the second waits for its own turn on the channel …

        with runtime.database.write() as session:  # … and a third whose search has not run waits a second at most
            late = runtime.incidents.declare(session, "Checkout latency budget burning", ALICE, "alice").id
        clock.advance(seconds=0.9)
        outbox.run_once()
        with runtime.database.read() as session:
            posted = session.scalars(select(Incident.id).where(Incident.slack_ts.is_not(None))).all()
        assert (list(posted), slow, late) == ([found_first], found_first + 1, found_first + 2)
        clock.advance(seconds=1.1)
        outbox.run_once()
        clock.advance(seconds=1)
        outbox.run_once()
        posts = standin.messages("incidents")
        assert len(posts) == 3
        assert "looking for runbooks" in json.dumps(posts[2]["blocks"])  # it went without them
        assert outbox.suggester.run_once() == 1  # found later: stored, and the post is edited
        clock.advance(seconds=3)
        outbox.run_once()
        edited = standin.messages("incidents")[2]
        assert edited["edits"] and "looking for runbooks" not in json.dumps(edited["blocks"])
    finally:
        standin.stop()
        runtime.database.dispose()


def test_in_a_storm_suggestions_are_found_for_a_channels_next_posts_only_and_each_post_goes_with_them(
    knowledge_settings: Settings, clock: FakeClock, shared_embedder: Embedder
) -> None:
    """A channel takes one post a second: searching at once for the posts further back takes the CPU from the
    storm and sends nothing sooner. Their turn comes, and each is searched for before it is sent."""
    runtime = Runtime.build(knowledge_settings, clock=clock, embedder=shared_embedder)
    outbox, standin = runtime.slack.outbox, runtime.slack.standin
    assert outbox.suggester is not None and standin is not None
    standin.start()
    standin.set_rate_limits(False)  # the outbox paces itself by this test's clock: one post a second
    try:
        with runtime.database.write() as session:
            ids = [
                runtime.incidents.declare(session, f"Disk almost full on db-{n}", ALICE, "alice").id for n in range(6)
            ]
        assert outbox.suggester.run_once() == AHEAD == 3
        assert outbox.suggester.run_once() == 0  # the others wait for their turn
        with runtime.database.read() as session:
            found = session.scalars(
                select(IncidentDocument.incident_id).where(IncidentDocument.suggestions.is_not(None))
            )
            assert sorted(found) == ids[:AHEAD]
        for turn in range(len(ids)):
            outbox.run_once()  # one post (the channel's pace) …
            assert outbox.suggester.run_once() == (1 if turn < len(ids) - AHEAD else 0)  # … and one more searched
            clock.advance(seconds=1)
        posts = standin.messages("incidents")
        assert len(posts) == len(ids)
        assert not [post for post in posts if "looking for runbooks" in json.dumps(post["blocks"])]
        assert not [post for post in posts if post.get("edits")]  # none went without them: no edit was needed
    finally:
        standin.stop()
        runtime.database.dispose()


def test_channel_set_up_waits_out_a_slack_outage_without_stopping_the_worker(
    runtime: Runtime, clock: FakeClock, tmp_path: Path
) -> None:
    payments = ChannelSeed("C0PAYMENTS01", "payments", ("U0ALICE",))
    with StandinServer(tmp_path / "slack.sqlite", workspace=Workspace(channels=(payments,))) as standin:
        client = WebClient(base_url=standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)
        outbox = OutboxWorker(runtime.database, client, clock, channels=("payments",))
        standin.add_fault("server_error", method="conversations.list", times=2, status=503)
        outbox.run_once()  # Slack is down: the set-up fails, the pass goes on
        clock.advance(seconds=1)
        outbox.run_once()  # backing off: no call
        assert [call["status"] for call in standin.calls("conversations.list")] == [503]
        clock.advance(seconds=1)
        outbox.run_once()  # 2 s later: down again; next try in 4 s
        clock.advance(seconds=4)
        outbox.run_once()
        assert [call["status"] for call in standin.calls("conversations.list")] == [503, 503, 200]
        assert BOT_USER_ID in (standin.channel("payments") or {})["members"]
        clock.advance(seconds=60)
        outbox.run_once()  # set up once: no more lookups
        assert len(standin.calls("conversations.list")) == 3 and len(standin.calls("conversations.join")) == 1
