"""Slack end to end: incident posts through the outbox, /incident and the buttons through signed requests.

The web side runs in its threads (ingest, Slack's requests, the stand-in); the worker and the outbox run in
``bot.drain()`` on a fake clock, so "nothing more happens" is checked once everything due has happened."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from bot.incidents.models import IncidentStatus, TimelineEntry
from bot.settings import Settings
from bot.slack.blocks import ACK_ACTION, RESOLVE_ACTION
from bot.slack.models import SeenRequest
from bot.standin.driver import Signing
from bot.standin.signing import signed_headers
from tests.slack_support import SlackBot, running_bot
from tests.support import T0, FakeClock, am_alert, am_group, wait_for

pytestmark = pytest.mark.db


@pytest.fixture
def bot(settings: Settings, clock: FakeClock) -> Iterator[SlackBot]:
    with running_bot(settings, clock=clock) as running:
        yield running


def _three_alerts(status: str = "firing") -> dict[str, object]:
    return am_group([am_alert(pod=f"web-{n}", status=status) for n in range(3)])


def _open_incident(bot: SlackBot) -> dict[str, object]:
    bot.send(_three_alerts())
    return bot.wait_for_post()


def test_alerts_post_once_and_resolve_edits_in_place(bot: SlackBot) -> None:
    post = _open_incident(bot)
    listing = "\n".join(str(block.get("text", {}).get("text", "")) for block in post["blocks"])  # type: ignore[attr-defined]
    assert ":fire: *3 \N{MULTIPLICATION SIGN} HighErrorRate* HighErrorRate on checkout — web-0, -1, -2" in listing
    assert any(
        button["action_id"] == ACK_ACTION
        for block in post["blocks"]
        if block["type"] == "actions"  # type: ignore[attr-defined]
        for button in block["elements"]
    )
    bot.send(_three_alerts())  # Alertmanager re-sends the group
    bot.drain()
    assert len(bot.posts()) == 1
    bot.send(_three_alerts("resolved"))
    resolved = bot.wait_for_post(lambda m: "resolved" in m["text"])
    assert resolved["ts"] == post["ts"]  # edited in place
    assert resolved["edits"], "the message was edited"
    assert not any(b["type"] == "actions" for b in resolved["blocks"])  # no buttons on a resolved incident
    bot.drain()
    [reply] = bot.posts()[0]["replies"]
    assert reply["text"].startswith("Auto-resolved")
    assert len(bot.posts()) == 1


def test_a_flapping_alerts_resolves_and_reopens_are_coalesced_into_a_few_thread_replies(
    bot: SlackBot, clock: FakeClock
) -> None:
    # One alert: a delivery of one event is never split by the worker's time budget (a split resolve notes "alert
    # resolved" once more, on the incident its first part resolved).
    bot.send(am_group([am_alert(pod="web-0")]))
    bot.wait_for_post()
    for flap in range(1, 13):  # twelve episodes, each resolved and fired again half a minute apart
        ended, started = T0 + timedelta(minutes=flap - 1), T0 + timedelta(minutes=flap)
        bot.send(am_group([am_alert(pod="web-0", status="resolved", starts_at=ended)]))
        bot.send(am_group([am_alert(pod="web-0", starts_at=started)]))
        _run_at_this_instant(bot)
        clock.advance(seconds=30)
        bot.standin.advance_clock(30)
    bot.drain()
    kinds = [entry.kind for entry in bot.timeline(1)]
    assert kinds.count("auto_resolved") == kinds.count("reopened") == 12  # every change is on the timeline
    every = [reply["text"] for reply in bot.posts()[0]["replies"]]
    joined = [text for text in every if " joined:" in text]
    assert sum(int(text.split()[0]) for text in joined) == 12  # each refire's alert announced once ...
    assert len(joined) <= 3  # ... in a few replies that wait for the flapping incident's status reply
    replies = [text for text in every if _STATUS_REPLY.match(text)]  # not a cause or category note, say
    assert 2 <= len(replies) <= 5  # ... and a few thread replies say the 24 changes
    assert replies[0].startswith("Auto-resolved")  # the first changes are said as they happen
    summary = next(text for text in replies if "status changes" in text)
    assert "auto-resolved" in summary and "reopened" in summary and "Latest: Reopened" in summary
    said = sum(
        int(text.split(" status changes")[0]) if "status changes" in text else text.count("\n") + 1 for text in replies
    )
    assert said == 24  # each change said once across the replies


_STATUS_REPLY = re.compile(r"Auto-resolved|Reopened|(\d+ alerts|Alert) resolved:|\d+ status changes between ")


def _run_at_this_instant(bot: SlackBot) -> None:
    """The worker and the outbox do what is due now, as their threads would; the clock stays."""
    while bot.runtime.worker.run_once() or bot.runtime.slack.outbox.run_once():
        pass


def test_slash_ack_updates_post_and_names_the_user(bot: SlackBot) -> None:
    post = _open_incident(bot)
    delivery = bot.driver.slash_command("/incident", "ack 1", user="U0ALICE", wait_responses=5)
    assert delivery.status == 200 and delivery.latency < 3
    assert [r["text"] for r in delivery.responses] == ["Incident 1 acknowledged by alice."]
    assert all(r.get("response_type") == "ephemeral" for r in delivery.responses)
    edited = bot.wait_for_post(lambda m: "acknowledged" in m["text"])
    assert edited["ts"] == post["ts"]
    fields = " ".join(f["text"] for b in edited["blocks"] if b["type"] == "section" for f in b.get("fields", []))
    assert "*Commander*\nalice" in fields
    bot.drain()
    assert bot.posts()[0]["replies"][0]["text"] == "Acknowledged by alice."
    assert "<@" not in bot.posts()[0]["replies"][0]["text"]  # the person who acted is not pinged
    incident = bot.incident(1)
    assert (incident.status, incident.commander) == (IncidentStatus.ACKNOWLEDGED, "alice")
    assert [(e.actor, e.kind) for e in bot.timeline(1)][-1] == ("slack:U0ALICE", "acknowledged")


def test_ack_button_and_a_replayed_click_have_one_effect(bot: SlackBot) -> None:
    post = _open_incident(bot)
    first = bot.driver.block_action("incidents", str(post["ts"]), ACK_ACTION, user="U0BOB", wait_responses=5)
    assert first.status == 200
    assert bot.incident(1).status == IncidentStatus.ACKNOWLEDGED
    assert bot.incident(1).commander == "bob"
    # An attacker (or a flaky proxy) replays the exact signed click: same body, same signature.
    message = bot.standin.message("incidents", str(post["ts"]))
    response_url = bot.standin.mint_response_url("incidents", "U0CAROL", str(post["ts"]))
    payload = {
        "type": "block_actions",
        "user": {"id": "U0CAROL", "username": "carol"},
        "team": {"id": "T0STANDIN"},
        "channel": {"id": "C0INCIDENTS"},
        "message": message,
        "trigger_id": "1.2.3",
        "response_url": response_url,
        "container": {"type": "message", "message_ts": post["ts"], "channel_id": "C0INCIDENTS"},
        "actions": [
            {
                "action_id": RESOLVE_ACTION,
                "block_id": "incident-1",
                "value": "incident:1",
                "type": "button",
                "action_ts": "1773133200.000001",
            }
        ],
    }
    body = urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **signed_headers(bot.runtime.slack.signing_secret, int(time.time()), body),
    }
    answers = [httpx.post(f"{bot.url}/slack/events", content=body, headers=headers) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    # Both clicks are answered (each once its work is done): one resolves, the replay changes nothing.

    def both_answered() -> list[dict[str, Any]] | None:
        found = bot.standin.responses(response_url)
        return found if len(found) == 2 else None

    answered = [response["body"]["text"] for response in wait_for(both_answered)]
    assert sorted(answered) == ["Already done (this request was received twice).", "Incident 1 resolved by carol."]
    assert bot.incident(1).status == IncidentStatus.RESOLVED
    kinds = [e.kind for e in bot.timeline(1)]
    assert kinds.count("resolved") == 1 and kinds.count("acknowledged") == 1


def test_non_responders_are_refused(settings: Settings, clock: FakeClock) -> None:
    responders = settings.model_copy(update={"responders": frozenset({"U0ALICE", "S0ONCALL"})})
    with running_bot(responders, clock=clock) as bot:
        post = _open_incident(bot)
        refused = bot.driver.slash_command("/incident", "ack 1", user="U0BOB", wait_responses=5)
        assert "Only incident responders may acknowledge incidents" in refused.responses[0]["text"]
        click = bot.driver.block_action("incidents", str(post["ts"]), RESOLVE_ACTION, user="U0BOB", wait_responses=5)
        assert "Only incident responders may resolve incidents" in click.responses[0]["text"]
        assert bot.incident(1).status == IncidentStatus.TRIGGERED
        via_group = bot.driver.slash_command("/incident", "ack 1", user="U0CAROL", wait_responses=5)
        assert via_group.responses[0]["text"] == "Incident 1 acknowledged by carol."


def test_every_subcommand(bot: SlackBot) -> None:
    _open_incident(bot)

    def run(text: str, user: str = "U0ALICE") -> str:
        delivery = bot.driver.slash_command("/incident", text, user=user, wait_responses=5)
        assert delivery.status == 200, delivery
        return str(delivery.responses[0]["text"]) if delivery.responses else delivery.body

    assert "*#1*" in run("list")
    assert "Incident #1" in run("show 1")
    assert run("assign 1 <@U0CAROL|carol>") == "carol is now the commander of incident 1."
    assert run("ack #1") == "Incident 1 acknowledged by alice."
    assert run("ack 1").startswith("Incident 1 was already acknowledged")
    assert run("resolve 1 rolled back the deploy") == "Incident 1 resolved by alice."
    assert bot.incident(1).resolution_note == "rolled back the deploy"
    assert run("resolve 1").startswith("Incident 1 is already resolved")
    assert run("ack 1").startswith("Incident 1 is already resolved")
    assert run("declare Payments API returns 502").startswith("Declared incident 2")
    bot.wait_for_post(lambda m: "Payments API returns 502" in m["text"])
    assert "/incident list" in run("help")
    assert run("show 99") == "There is no incident 99."


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("frobnicate 1", "Unknown subcommand `frobnicate`"),
        ("ack", "needs an incident ID"),
        ("ack one", "`one` is not an incident ID"),
        ("ack 1 2", "takes nothing after the ID"),
        ("ack -1", "`-1` is not an incident ID"),
        ("assign 1 bob", "needs a user mention"),
        ("declare", "needs a title"),
        ("list everything", "takes no arguments"),
    ],
)
def test_bad_commands_get_ephemeral_usage_naming_the_problem(bot: SlackBot, text: str, problem: str) -> None:
    delivery = bot.driver.slash_command("/incident", text)
    assert delivery.status == 200
    assert problem in delivery.body
    assert "/incident list" in delivery.body  # the usage follows
    with bot.runtime.database.read() as session:
        assert session.scalar(select(func.count()).select_from(SeenRequest)) == 0


NOW = object()


@pytest.mark.parametrize(
    ("signing", "expected"),
    [
        ("valid", 200),
        ("minus_299", 200),
        ("minus_301", 401),
        ("plus_301", 401),
        ("missing_signature", 401),
        ("missing_timestamp", 401),
        ("timestamp_abc", 401),
        ("timestamp_empty", 401),
        ("wrong_secret", 401),
        ("tampered", 401),
    ],
)
def test_signature_matrix(bot: SlackBot, signing: str, expected: int, caplog: pytest.LogCaptureFixture) -> None:
    now = int(time.time())
    options = {
        "valid": Signing(),
        "minus_299": Signing(timestamp=now - 299),
        "minus_301": Signing(timestamp=now - 301),
        "plus_301": Signing(timestamp=now + 301),
        "missing_signature": Signing(omit_signature=True),
        "missing_timestamp": Signing(omit_timestamp=True),
        "wrong_secret": Signing(secret="not-the-secret"),
        "tampered": Signing(tamper=True),
    }
    if signing.startswith("timestamp_"):
        body = urlencode({"command": "/incident", "text": "declare forged", "user_id": "U0ALICE"}).encode()
        headers = signed_headers(bot.runtime.slack.signing_secret, now, body)
        headers["X-Slack-Request-Timestamp"] = "abc" if signing == "timestamp_abc" else ""
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        status = httpx.post(f"{bot.url}/slack/events", content=body, headers=headers).status_code
    else:
        wait = 5 if expected == 200 else 0  # a refused request runs nothing: there is nothing to wait for
        command = bot.driver.slash_command("/incident", "declare forged", signing=options[signing], wait_responses=wait)
        status = command.status or 0
    assert status == expected
    with bot.runtime.database.read() as session:
        declared = session.scalar(select(func.count()).select_from(TimelineEntry))
    assert declared == (1 if expected == 200 else 0)  # nothing is written for a 401
    if expected == 401:
        assert "forged" not in caplog.text  # a refused request's body is never logged
