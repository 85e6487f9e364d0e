"""The agent's hand-over through the stand-in with signed requests: "Report a problem" opens the modal from the
click, its submission becomes a ``UserReport`` alert stored like a webhook's (so the worker makes, classifies and
posts an incident) and the reporter gets the incident's link in their conversation; "Ask a human" posts the question
to the help channel, and every reply people write in that thread comes back to the asker (once, replays included)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.agent.answers import ASK_HUMAN_ACTION, REPORT_ACTION, abstain_answer
from bot.agent.handover import CONFIRM_WITHIN, STORED
from bot.agent.handover_models import HelpRequest
from bot.agent.models import AgentQuestion
from bot.ingest.models import Alert, Delivery
from bot.settings import Settings
from bot.slack.listeners.agent_handover import GONE, NOT_YOURS
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus
from bot.standin.workspace import DEFAULT_BOT_TOKEN
from knowledge.embeddings import Embedder
from tests.agent_support import agent_settings, ask, buttons
from tests.slack_support import SlackBot, running_bot
from tests.support import T0, FakeClock, wait_for

pytestmark = pytest.mark.db

HELP = "help"


def _help_channel(bot: SlackBot) -> None:
    """#help, set up by an admin: the bot is in it, so are Bob and Carol."""
    admin = WebClient(base_url=bot.standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)
    created = admin.conversations_create(name=HELP)
    admin.conversations_invite(channel=created["channel"]["id"], users="U0BOB,U0CAROL")


@pytest.fixture
def bot(settings: Settings, clock: FakeClock) -> Iterator[SlackBot]:
    with running_bot(settings.model_copy(update={"help_channel": HELP}), clock=clock) as running:
        _help_channel(running)
        yield running


def _abstained(bot: SlackBot, question: str, user: str = "U0ALICE") -> tuple[str, str]:
    """``user`` asked ``question`` in their DM and the agent abstained with the hand-over buttons: (DM, answer ts)."""
    dm = bot.driver.im_channel(user)
    with bot.runtime.database.write() as session:
        row = AgentQuestion(asker=user, channel=dm, thread_ts="", question=question, sources=[], asked_at=T0)
        session.add(row)
        session.flush()
        question_id = row.id
    answer = abstain_answer(question_id)
    posted = bot.runtime.slack.client.chat_postMessage(channel=dm, text=answer.text, blocks=answer.blocks)
    with bot.runtime.database.write() as session:
        stored = session.get(AgentQuestion, question_id)
        assert stored is not None
        stored.thread_ts = stored.reply_ts = str(posted["ts"])
    return dm, str(posted["ts"])


def _thread(bot: SlackBot, channel: str, ts: str, count: int) -> list[str]:
    """The texts of the replies in ``ts``'s thread, once there are ``count`` (draining the worker meanwhile)."""

    def found() -> list[str] | None:
        bot.drain()
        [message] = [m for m in bot.posts(channel) if m["ts"] == ts]
        texts = [str(reply["text"]) for reply in message.get("replies", [])]
        return texts if len(texts) >= count else None

    texts: list[str] = wait_for(found, timeout=15)
    return texts


def _report(bot: SlackBot, dm: str, ts: str, values: dict[str, str | None]) -> dict[str, Any]:
    clicked = bot.driver.block_action(dm, ts, REPORT_ACTION)
    assert clicked.acked
    [view] = wait_for(lambda: bot.driver.views("U0ALICE"), timeout=5)
    submitted = bot.driver.view_submission(values)
    assert submitted.view_outcome is not None and submitted.view_outcome["ok"], submitted.view_outcome
    return view  # type: ignore[no-any-return]


def test_report_a_problem_becomes_an_incident_and_the_reporter_gets_its_link(bot: SlackBot) -> None:
    dm, ts = _abstained(bot, "the shop <!channel> says my card was refused")
    view = _report(
        bot, dm, ts, {"report-text": "Checkout refuses every card\nsince 9:00", "report-service": "checkout"}
    )
    text_input = next(b for b in view["blocks"] if b["block_id"] == "report-text")["element"]
    assert text_input["initial_value"] == "the shop <!channel> says my card was refused"  # plain text, inert
    with bot.runtime.database.read() as session:  # committed with the report: a restart cannot lose it
        [queued] = session.scalars(select(OutboxItem).where(OutboxItem.kind == OutboxKind.AGENT_REPORTED)).all()
        assert (queued.status, queued.channel, queued.payload["thread_ts"]) == (OutboxStatus.PENDING, dm, ts)

    [confirmation] = _thread(bot, dm, ts, 1)
    incident = bot.incident(1)
    assert incident.title == "User report: Checkout refuses every card"
    [post] = bot.posts()
    link = f"https://incibot-standin.slack.com/archives/C0INCIDENTS/p{post['ts'].replace('.', '')}"
    assert confirmation == (
        f":white_check_mark: Thanks, I reported it to the on-call team as incident <{link}|#1: {incident.title}>."
    )
    with bot.runtime.database.read() as session:
        [alert] = session.scalars(select(Alert)).all()
        [delivery] = session.scalars(select(Delivery)).all()
    assert (alert.source, alert.alertname, alert.severity) == ("generic", "UserReport", "warning")
    assert alert.labels == {
        "source": "user-report",
        "reporter": "U0ALICE",
        "reporter_name": "alice",
        "service": "checkout",
        "alertname": "UserReport",
        "severity": "warning",
    }
    assert alert.annotations["description"] == "Checkout refuses every card\nsince 9:00"
    assert delivery.source == "generic" and delivery.status == "done"  # processed like any webhook delivery


def test_a_report_whose_incident_is_slow_to_come_is_confirmed_as_stored_at_the_deadline(
    bot: SlackBot, clock: FakeClock
) -> None:
    dm, ts = _abstained(bot, "the wiki is blank")
    _report(bot, dm, ts, {"report-text": "The wiki shows blank pages"})
    assert bot.runtime.slack.outbox.run_once() == 0  # no incident yet (the worker has not run): it waits
    clock.advance(seconds=CONFIRM_WITHIN.total_seconds())
    bot.runtime.slack.outbox.run_once()
    [message] = [m for m in bot.posts(dm) if m["ts"] == ts]
    assert [reply["text"] for reply in message["replies"]] == [STORED]


def test_report_buttons_belong_to_the_asker_and_an_empty_report_is_refused(bot: SlackBot) -> None:
    dm, ts = _abstained(bot, "printer on floor 2 is jammed")
    tampered = bot.driver.block_action(dm, ts, REPORT_ACTION, value="999", wait_responses=5)
    assert tampered.responses[0]["text"] == GONE
    _abstained(bot, "vpn drops", user="U0BOB")  # question 2, Bob's: Alice sends its id (as from a channel thread)
    not_hers = bot.driver.block_action(dm, ts, REPORT_ACTION, value="2", wait_responses=5)
    assert not_hers.responses[0]["text"] == NOT_YOURS
    assert bot.driver.views("U0ALICE") == []

    bot.driver.block_action(dm, ts, REPORT_ACTION)
    wait_for(lambda: bot.driver.views("U0ALICE"), timeout=5)
    empty = bot.driver.view_submission({"report-text": "   "})
    assert empty.view_outcome is not None and empty.view_outcome.get("errors") == {"report-text": "Say what is wrong."}
    with bot.runtime.database.read() as session:
        assert session.scalars(select(Delivery)).all() == []


def test_ask_a_human_posts_to_the_help_channel_and_relays_every_reply_once(
    settings: Settings, clock: FakeClock, tmp_path: Path, shared_embedder: Embedder
) -> None:
    configured = agent_settings(settings, tmp_path, help_channel=HELP)
    with running_bot(configured, shared_embedder, clock=clock) as running:
        _help_channel(running)
        _relay_round_trip(running)


def _relay_round_trip(bot: SlackBot) -> None:
    answer = ask(bot, "why does <@U0BOB> get *two* laptops?")  # nothing in the knowledge base: it abstains
    assert buttons(answer) == {REPORT_ACTION: "1", ASK_HUMAN_ACTION: "1"}
    dm, ts = bot.driver.im_channel("U0ALICE"), str(answer["ts"])
    asked = bot.driver.block_action(dm, ts, ASK_HUMAN_ACTION, wait_responses=5)
    assert asked.responses[0]["text"] == "I asked in #help. When someone answers there, I'll send you their reply here."
    [help_post] = bot.posts(HELP)
    assert help_post["text"] == (
        ":raising_hand: <@U0ALICE> asked incibot something it could not answer:\n"
        "> why does &lt;@U0BOB&gt; get *two* laptops?\n"
        "They asked in a direct message with incibot; reply here and incibot passes it on."
    )
    again = bot.driver.block_action(dm, ts, ASK_HUMAN_ACTION, wait_responses=5)
    assert again.responses[0]["text"].startswith("I already asked a person about this")
    assert len(bot.posts(HELP)) == 1

    said = bot.driver.say(HELP, "New starters get a spare <!here>", user="U0CAROL", thread_ts=help_post["ts"])
    assert said.acked
    bot.driver.say(HELP, "unrelated chatter", user="U0BOB")  # not in a help thread: acked, not relayed
    bot.driver.say(HELP, "and it goes back\nafter a month", user="U0BOB", thread_ts=help_post["ts"])
    replayed = {"type": "message", "channel_type": "channel", "channel": said.channel, "user": "U0CAROL"}
    bot.driver.event(replayed | {"ts": said.ts, "thread_ts": help_post["ts"], "text": "New starters get a spare"})
    with bot.runtime.database.read() as session:
        question = session.get(AgentQuestion, 1)
        assert question is not None
        root = question.thread_ts  # the DM thread of the question, where the answer is

    def queued() -> list[OutboxItem] | None:  # counted and queued together, sent by the outbox (durable)
        with bot.runtime.database.read() as session:
            items = list(session.scalars(select(OutboxItem).where(OutboxItem.kind == OutboxKind.AGENT_REPLY)))
        return items if len(items) == 2 else None

    assert all(item.status == OutboxStatus.PENDING and item.channel == dm for item in wait_for(queued))
    relayed = [text for text in _thread(bot, dm, root, 3) if text.startswith(":speech_balloon:")]
    assert relayed == [
        ":speech_balloon: <@U0CAROL> answered your question:\n> New starters get a spare &lt;!here&gt;",
        ":speech_balloon: <@U0BOB> answered your question:\n> and it goes back\n> after a month",
    ]
    with bot.runtime.database.read() as session:
        [request] = session.scalars(select(HelpRequest)).all()
    assert (request.user_id, request.replies, request.first_reply_at) == ("U0ALICE", 2, T0)


def test_ask_a_human_without_a_help_channel_says_so(settings: Settings, clock: FakeClock) -> None:
    with running_bot(settings, clock=clock) as bot:
        dm, ts = _abstained(bot, "anything")
        asked = bot.driver.block_action(dm, ts, ASK_HUMAN_ACTION, wait_responses=5)
        assert "INCIBOT_HELP_CHANNEL" in asked.responses[0]["text"]


def test_a_report_is_classified_like_any_alert(settings: Settings, clock: FakeClock, shared_embedder: Embedder) -> None:
    with running_bot(settings.model_copy(update={"classification": True}), shared_embedder, clock=clock) as bot:
        dm, ts = _abstained(bot, "orders page is broken")
        text = "The orders database refuses new connections: too many connections on postgres, queries time out"
        _report(bot, dm, ts, {"report-text": text})
        _thread(bot, dm, ts, 1)
        incident = bot.incident(1)
        assert (incident.category, incident.category_source) == ("database", "model")
