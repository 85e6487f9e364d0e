"""The virtual agent through the stand-in, with signed events: DM and mention questions, status and how-to
answers with their sources, abstention with the hand-over buttons, audiences (internal documents, private
channels), follow-up context, the rate limit, "notify me when resolved", and escaping of what users write."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.agent.answers import ASK_HUMAN_ACTION, LOOKING, NOTIFY_ACTION, REPORT_ACTION
from bot.agent.exchange import ANSWER_GRACE
from bot.agent.models import AgentQuestion
from bot.settings import Rate, Route, Settings
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus
from bot.standin.workspace import BOT_USER_ID, ChannelSeed, Workspace
from knowledge.embeddings import Embedder
from tests.agent_support import agent_settings, answers, ask, block_text, buttons, thread
from tests.slack_support import SlackBot, running_bot
from tests.support import FakeClock, am_alert, am_group, wait_for

pytestmark = pytest.mark.db

SECOPS = ChannelSeed("C0SECOPS", "secops", (BOT_USER_ID, "U0CAROL"), is_private=True)
INCIDENTS = ChannelSeed("C0INCIDENTS", "incidents", (BOT_USER_ID, "U0ALICE", "U0BOB", "U0CAROL"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bot(settings: Settings, tmp_path: Path, shared_embedder: Embedder, clock: FakeClock) -> Iterator[SlackBot]:
    with running_bot(agent_settings(settings, tmp_path), shared_embedder, clock=clock) as running:
        yield running


@pytest.fixture
def responder_bot(
    settings: Settings, tmp_path: Path, shared_embedder: Embedder, clock: FakeClock
) -> Iterator[SlackBot]:
    """Carol is the one responder; security alerts go to the private #secops."""
    configured = agent_settings(
        settings, tmp_path, responders=frozenset({"U0CAROL"}), routes=(Route("team", "security", "secops"),)
    )
    workspace = Workspace(channels=(INCIDENTS, SECOPS))
    with running_bot(configured, shared_embedder, clock=clock, workspace=workspace) as running:
        yield running


def checkout_incident(bot: SlackBot) -> None:
    bot.send(am_group([am_alert("HighErrorRate", service="checkout")]))
    bot.wait_for_post()


def test_status_question_in_a_dm_gets_looking_at_once_then_the_open_incident_and_a_dm_when_resolved(
    bot: SlackBot, clock: FakeClock
) -> None:
    checkout_incident(bot)
    asked_at = time.time()
    answer = ask(bot, "is checkout down?")
    text = block_text(answer)
    assert "*#1 HighErrorRate on checkout* — checkout · triggered · since <!date^" in text
    assert "critical" not in text and "<#C0INCIDENTS>" not in text  # an end user sees no severity, no channel
    assert answer["edits"][0]["text"] == LOOKING  # the first reply was the placeholder, edited into the answer
    looking = next(c for c in bot.standin.calls("chat.postMessage") if c["params"].get("text") == LOOKING)
    assert looking["time"] - asked_at < 3.0
    assert buttons(answer) == {NOTIFY_ACTION: "1"}

    dm = bot.driver.im_channel("U0ALICE")
    clicked = bot.driver.block_action(dm, answer["ts"], NOTIFY_ACTION, wait_responses=5)
    assert clicked.responses[0]["text"] == "I'll send you a direct message when #1 is resolved."
    bot.driver.block_action(dm, answer["ts"], NOTIFY_ACTION, wait_responses=5)  # twice: still one DM
    bot.driver.slash_command("/incident", "resolve 1 rolled back", wait_responses=5)
    bot.drain()
    notices = [m for m in bot.standin.messages(dm) if m["text"].startswith(":white_check_mark: Resolved")]
    assert len(notices) == 1 and "#1 HighErrorRate on checkout (checkout)" in notices[0]["text"]

    clock.advance(hours=20)
    later = block_text(ask(bot, "is checkout down again?", user="U0BOB"))
    assert later.startswith("No open incident matches; the last one for checkout was #1, resolved <!date^")


def test_how_to_question_quotes_the_best_passage_with_title_and_link(bot: SlackBot) -> None:
    answer = ask(bot, "I forgot my password, how can I set a new one?")
    text = block_text(answer)
    assert "> Go to the self-service portal at id.example.com" in text
    assert "— <https://help.example.com/password|Resetting your password> · Forgotten password" in text
    assert not buttons(answer)


def test_a_follow_up_in_the_thread_uses_the_previous_question(bot: SlackBot) -> None:
    alone = ask(bot, "and what about on my phone?", user="U0BOB")
    assert REPORT_ACTION in buttons(alone)  # without context it cannot be answered
    first = bot.driver.direct_message("how do I connect to the VPN?")
    assert "GlobalGate client" in block_text(answers(bot, first.channel, first.ts)[0])
    follow_up = ask(bot, "and what about on my phone?", thread_ts=first.ts)
    assert "GlobalGate Mobile" in block_text(follow_up)


def test_an_unrelated_question_abstains_with_both_hand_over_buttons(bot: SlackBot) -> None:
    answer = ask(bot, "what's the capital of France?")
    with bot.runtime.database.read() as session:
        asked = session.scalars(select(AgentQuestion)).one()
    assert asked.kind == "abstain" and asked.reply_ts == answer["ts"]
    assert buttons(answer) == {REPORT_ACTION: str(asked.id), ASK_HUMAN_ACTION: str(asked.id)}
    assert block_text(answer).startswith("I don't know the answer to that")


def test_internal_runbooks_and_private_channel_incidents_are_for_responders_only(responder_bot: SlackBot) -> None:
    bot = responder_bot
    bot.send(am_group([am_alert("VaultSealed", service="vault", team="security")], group_key="{}:{vault}"))
    bot.wait_for_post(channel="secops")
    question = "how do I rotate the payment gateway credentials?"
    for_alice = block_text(ask(bot, question))
    assert "vault rotation job" not in for_alice and "Rotating the payment gateway" not in for_alice
    assert "vault rotation job payments/rotate-gateway-key" in block_text(ask(bot, question, user="U0CAROL"))

    hidden = block_text(ask(bot, "is vault down?", user="U0BOB"))
    assert "#1" not in hidden and "VaultSealed" not in hidden
    shown = block_text(ask(bot, "is vault down?", user="U0CAROL"))
    assert "*#1 VaultSealed on checkout*" in shown or "#1 VaultSealed" in shown
    assert "<#C0SECOPS>" in shown and "critical" in shown  # a responder sees where and how bad


def test_each_user_has_a_rate_limit_with_a_polite_message(
    settings: Settings, tmp_path: Path, shared_embedder: Embedder, clock: FakeClock
) -> None:
    configured = agent_settings(settings, tmp_path, agent_rate=Rate(2, timedelta(minutes=1)))
    with running_bot(configured, shared_embedder, clock=clock) as bot:
        for _ in range(2):
            assert "self-service portal" in block_text(ask(bot, "how do I reset my password?"))
        limited = ask(bot, "how do I reset my password?")
        assert limited["text"].startswith("You've asked 2 questions in the last minute. Please give me a moment")
        assert not limited["edits"]  # no placeholder: nothing was looked up
        assert "self-service portal" in block_text(ask(bot, "how do I reset my password?", user="U0BOB"))
        clock.advance(seconds=61)
        assert "self-service portal" in block_text(ask(bot, "how do I reset my password?"))


def test_user_text_is_escaped_and_the_bot_ignores_bots(bot: SlackBot) -> None:
    hostile = "<!channel> is <@U0BOB> down? <https://evil.example/|click here> &amp; *bold*"
    asked = bot.driver.slash_command("/ask", hostile, wait_responses=5)
    assert asked.responses[0]["text"].startswith("I've answered you in a direct message")
    dm = bot.driver.im_channel("U0ALICE")
    quoted = wait_for(lambda: next(iter(bot.standin.messages(dm)), None))
    assert (
        quoted["text"] == "You asked: &lt;!channel&gt; is &lt;@U0BOB&gt; down? &lt;https://evil.example/|click here&gt;"
        " &amp;amp; *bold*"
    )
    answers(bot, dm, quoted["ts"])

    mention = bot.driver.say("incidents", f"<@{BOT_USER_ID}> {hostile}")
    reply = answers(bot, mention.channel, mention.ts)[0]
    for message in (*bot.standin.messages(dm), reply, *thread(bot, dm, quoted["ts"])):
        shown = f"{message['text']}\n{block_text(message)}"
        assert "<!channel>" not in shown and "<@U0BOB>" not in shown and "<https://evil" not in shown

    before = len(bot.standin.calls("chat.postMessage"))
    own = {"type": "message", "channel": dm, "channel_type": "im", "user": BOT_USER_ID, "bot_id": "B0STANDIN"}
    assert bot.driver.event({**own, "text": "is checkout down?", "ts": "1.000001"}).acked
    assert bot.driver.event({**own, "subtype": "bot_message", "text": "hi", "ts": "1.000002"}).acked
    assert_nothing_posted_since(bot, before)


@pytest.mark.parametrize(
    ("raw", "rate"),
    [
        ("5/min", Rate(5, timedelta(minutes=1))),
        ("20/hour", Rate(20, timedelta(hours=1))),
        ("3/30s", Rate(3, timedelta(seconds=30))),
    ],
)
def test_the_rate_setting_reads_count_per_period(raw: str, rate: Rate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIBOT_AGENT_RATE", raw)
    assert Settings().agent_rate == rate


def test_a_rate_that_is_not_count_per_period_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw in ("5", "0/min", "5/fortnight", "5/0s"):
        monkeypatch.setenv("INCIBOT_AGENT_RATE", raw)
        with pytest.raises(ValueError, match="is not COUNT/PERIOD"):
            Settings()


def test_dm_events_with_a_subtype_are_acknowledged_and_not_answered(bot: SlackBot) -> None:
    dm = bot.driver.im_channel("U0ALICE")
    person = {"user": "U0ALICE", "text": "is checkout down?", "ts": "1.000001"}
    events: list[dict[str, Any]] = [
        {"subtype": "message_changed", "message": {**person, "text": "is checkout down now?"}, "ts": "1.000002"},
        {"subtype": "message_deleted", "deleted_ts": "1.000001", "previous_message": person, "ts": "1.000003"},
        {"subtype": "bot_message", "bot_id": "B0OTHER", "text": "is checkout down?", "ts": "1.000004"},
        {"subtype": "file_share", **person, "ts": "1.000005"},
    ]
    before = len(bot.standin.calls("chat.postMessage"))
    for event in events:
        delivered = bot.driver.event({"type": "message", "channel": dm, "channel_type": "im", **event}, retry=False)
        assert [attempt.status for attempt in delivered.attempts] == [200]  # acked at once: Slack does not re-send
    assert_nothing_posted_since(bot, before)


def test_an_answer_slack_rate_limits_is_edited_in_by_the_outbox_after_retry_after(bot: SlackBot) -> None:
    first = ask(bot, "how do I reset my password?")
    bot.drain()  # edited at once: the queued copy is not sent again
    assert [call["status"] for call in bot.standin.calls("chat.update")] == [200] and first["edits"]

    bot.standin.add_fault("ratelimited", method="chat.update", retry_after=3)
    said = bot.driver.direct_message("how do I connect to the VPN?", user="U0BOB")
    wait_for(lambda: len(bot.standin.calls("chat.update")) == 2 or None)

    def rescheduled() -> tuple[OutboxItem, AgentQuestion] | None:
        """The queued edit once the refused one moved it (the bot writes that after Slack's answer came back)."""
        with bot.runtime.database.read() as session:
            item = session.scalars(select(OutboxItem).where(OutboxItem.status == OutboxStatus.PENDING)).one()
            asked = session.scalars(select(AgentQuestion).where(AgentQuestion.asker == "U0BOB")).one()
        assert item.kind == OutboxKind.AGENT_ANSWER and asked.answered_at is not None
        return (item, asked) if item.not_before != asked.answered_at + ANSWER_GRACE else None

    item, asked = wait_for(rescheduled)
    assert asked.answered_at is not None
    assert item.not_before - asked.answered_at == timedelta(seconds=3)  # Slack's Retry-After
    bot.drain()
    assert [call["status"] for call in bot.standin.calls("chat.update")] == [200, 429, 200]
    assert "GlobalGate client" in block_text(answers(bot, said.channel, said.ts)[0])
    with bot.runtime.database.read() as session:
        sent = session.get(OutboxItem, item.id)
        assert sent is not None and sent.status == OutboxStatus.DONE


def resolved_with_note(
    bot: SlackBot, number: int, alert: dict[str, Any], summary: str, note: str, channel: str
) -> None:
    alert["annotations"]["summary"] = summary
    bot.send(am_group([alert], group_key=f"{{}}:{{{alert['labels']['alertname']}}}"))
    bot.wait_for_post(channel=channel)
    bot.driver.slash_command("/incident", f"resolve {number} {note}", user="U0CAROL", wait_responses=5)
    bot.drain()


def test_resolved_incidents_notes_answer_how_to_questions_within_their_audience(responder_bot: SlackBot) -> None:
    bot = responder_bot
    shop = am_alert("StalePrices", service="shop")
    resolved_with_note(
        bot, 1, shop, "Shop pages show outdated prices", "Clear the CDN cache from the admin page.", "incidents"
    )
    answer = block_text(ask(bot, "the shop shows old prices", user="U0BOB"))
    assert "Clear the CDN cache from the admin page." in answer
    post = bot.standin.messages("C0INCIDENTS")[0]
    link = f"/archives/C0INCIDENTS/p{post['ts'].replace('.', '')}|incident #1: Shop pages show outdated prices>"
    assert link in answer  # cited with its title and a link to its post

    vault = am_alert("VaultSealed", service="vault", team="security")
    resolved_with_note(bot, 2, vault, "Vault sealed itself", "Unseal it with three key holders' shares.", "secops")
    question = "how do I unseal the vault?"
    assert "key holders" not in block_text(ask(bot, question, user="U0BOB"))  # posted in a private channel
    assert "Unseal it with three key holders' shares." in block_text(ask(bot, question, user="U0CAROL"))


def assert_nothing_posted_since(bot: SlackBot, before: int) -> None:
    """No post since ``before`` posts but a later question's own. An ignored event is dropped by the listener's
    matcher before its ack returns; the later question, answered, shows the bot kept working meanwhile (a negative
    has no event of its own to wait on, and a fixed sleep only hoped)."""
    ask(bot, "how do I reset my password?", user="U0BOB")
    assert len(bot.standin.calls("chat.postMessage")) == before + 1  # the later question's "looking…"
