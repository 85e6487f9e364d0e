"""Root-cause suggestions in the running bot, through the Slack stand-in with signed requests: the post's summary
shows the likely cause and keeps it current (edits coalesced, a thread note when the top cause changes), a change
event makes a deploy the top cause, 👍/👎 are stored, ``/incident resolve … cause=`` records the confirmed cause,
and ``/incident cause`` says the ranking."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.cli.main import main
from bot.knowledge.suggestions import RunbookHit
from bot.rootcause.live import MIN_INTERVAL
from bot.rootcause.models import CauseFeedback, ConfirmedCause, RootCauseRanking
from bot.rootcause.ranking import StoredRanking
from bot.settings import Settings
from bot.slack.summary_blocks import (
    CONFIRM_ACTION,
    HELPFUL_ACTION,
    WRONG_ACTION,
    ActionHint,
    Situation,
    Summary,
    cause_question,
    cause_value,
    confirm_value,
    parse_cause_value,
    summary_blocks,
)
from knowledge.embeddings import Embedder
from knowledge.rootcause.model import CauseCandidate, Evidence
from tests.conftest import auth
from tests.processes import incibot_env
from tests.slack_support import SlackBot, running_bot
from tests.support import T0, FakeClock, am_alert, am_group

pytestmark = pytest.mark.db

GROUP = '{}:{cluster="prod"}'
W1, W2 = "k8s-worker-1", "k8s-worker-2"
TOPOLOGY = {
    "clusters": [
        {
            "name": "prod",
            "nodes": [{"name": "k8s-worker-1", "ip": "10.0.0.1"}, {"name": "k8s-worker-2", "ip": "10.0.0.2"}],
            "services": [
                {
                    "name": "frontend",
                    "depends_on": ["checkout"],
                    "pods": [
                        {"name": "frontend-5f7c9d8b4-k2x7q", "node": W1},
                        {"name": "frontend-5f7c9d8b4-zzzzz", "node": W1},
                    ],
                },
                {
                    "name": "checkout",
                    "depends_on": ["payments-db"],
                    "pods": [{"name": "checkout-6b8d4c9f7-w5z8r", "node": W1}],
                },
                {"name": "payments-db", "pods": [{"name": "payments-db-0", "node": W2}]},
                {
                    "name": "search",
                    "pods": [
                        {"name": "search-7c5d4f9b8-q2w4g", "node": W2},
                        {"name": "search-7c5d4f9b8-zzzzz", "node": W2},
                    ],
                },
            ],
        }
    ]
}


def alert(name: str, service: str, pod: str, summary: str) -> dict[str, Any]:
    payload = am_alert(name, service=service, pod=pod, cluster="prod")
    payload["annotations"]["summary"] = summary
    return payload


FRONTEND_5XX = ("HighErrorRate", "frontend", "frontend-5f7c9d8b4-k2x7q", "5xx ratio above 5%")
CHECKOUT_SLOW = ("HighLatency", "checkout", "checkout-6b8d4c9f7-w5z8r", "p99 latency above 2s")
DATABASE_DOWN = ("PostgresDown", "payments-db", "payments-db-0", "PostgreSQL instance is down")
SEARCH_5XX = ("HighErrorRate", "search", "search-7c5d4f9b8-q2w4g", "5xx ratio above 5%")


@pytest.fixture
def bot(settings: Settings, clock: FakeClock, tmp_path: Path) -> Iterator[SlackBot]:
    topology = tmp_path / "topology.json"
    topology.write_text(json.dumps(TOPOLOGY))
    configured = settings.model_copy(update={"responders": frozenset({"U0ALICE", "U0BOB"}), "topology_file": topology})
    with running_bot(configured, clock=clock) as running:
        yield running


def send(bot: SlackBot, *alerts: tuple[str, str, str, str]) -> None:
    """The alerts in one delivery, applied and posted, and the ranking settled (an incident is ranked again at
    most every ``MIN_INTERVAL``)."""
    assert bot.clock is not None
    bot.send(am_group([alert(*a) for a in alerts], group_key=GROUP))
    bot.drain()
    bot.clock.advance(seconds=MIN_INTERVAL.total_seconds())
    bot.drain()


def sections(message: dict[str, Any]) -> str:
    return "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b)


def likely_cause(message: dict[str, Any]) -> str:
    found = [b["text"]["text"] for b in message["blocks"] if b.get("text", {}).get("text", "").startswith("*Likely")]
    assert len(found) == 1, json.dumps(message["blocks"], indent=1)
    [text] = found
    return str(text)


def ranking(bot: SlackBot, incident_id: int = 1) -> RootCauseRanking:
    with bot.runtime.database.read() as session:
        row = session.get(RootCauseRanking, incident_id)
        assert row is not None
        return row


def test_post_summary_shows_the_likely_cause_and_a_late_root_alert_takes_the_top_with_a_note(
    bot: SlackBot, clock: FakeClock
) -> None:
    send(bot, FRONTEND_5XX, CHECKOUT_SLOW)
    [post] = bot.posts()
    text = sections(post)
    assert text.index("*What's going on*") < text.index("*Likely cause*") < text.index("*What to do next*")
    assert "2 alerts since" in text and "frontend" in text and "HighLatency" in text
    assert "*checkout* (service)" in likely_cause(post) and "depend on it" in likely_cause(post)
    buttons = [e for b in post["blocks"] for e in b.get("elements", []) if e.get("action_id") == HELPFUL_ACTION]
    assert [b["value"] for b in buttons] == [cause_value(1, "checkout")]
    assert "/incident resolve 1 cause=NAME" in text
    updates = len(bot.standin.calls("chat.update"))

    clock.advance(minutes=3)  # the database's own alert arrives minutes after its symptoms
    send(bot, DATABASE_DOWN)
    [post] = bot.posts()
    assert "*payments-db* (service)" in likely_cause(post).split("\n")[1]
    assert "PostgresDown says it failed" in likely_cause(post)
    assert "2. checkout (service)" in likely_cause(post)
    assert "Joined lately" in sections(post) and "PostgresDown on payments-db" in sections(post)
    [note] = [r["text"] for r in post["replies"] if "Likely cause changed" in r["text"]]
    assert re.fullmatch(
        r"Likely cause changed: service checkout → service payments-db \(\d+%\), because explains 1 of the 3 alerts"
        r" directly, 2 more on components that depend on it; its own alert PostgresDown says it failed\.",
        note,
    )
    # One delivery: the alerts joined edit and the ranking's share one coalesced edit at most each.
    assert len(bot.standin.calls("chat.update")) - updates <= 2
    assert ranking(bot).top == "payments-db" and not ranking(bot).stale


def test_a_change_event_makes_the_deploy_the_top_cause(bot: SlackBot, clock: FakeClock) -> None:
    send(bot, FRONTEND_5XX, SEARCH_5XX)
    assert ranking(bot).top == "frontend"  # a tie the topology cannot break
    clock.advance(minutes=1)
    change = {
        "service": "search",
        "kind": "deploy",
        "version": "v2.31",
        "who": "ana",
        "when": (T0 - timedelta(minutes=6)).isoformat(),
        "link": "https://ci.example.com/runs/1",
    }
    response = bot.http.post("/changes", json=change, headers=auth())
    assert response.status_code in (200, 201, 202), response.text
    clock.advance(seconds=5)
    bot.drain()
    [post] = bot.posts()
    assert "*search* (service)" in likely_cause(post)
    assert "search v2.31 deployed by ana 6 min before the first alert" in likely_cause(post)
    assert "Check the recent change to search first" in sections(post)
    assert any("Likely cause changed: service frontend → service search" in r["text"] for r in post["replies"])


def test_votes_are_stored_for_responders_only_and_a_later_vote_replaces_one(bot: SlackBot) -> None:
    send(bot, FRONTEND_5XX, CHECKOUT_SLOW)
    [post] = bot.posts()
    refused = bot.driver.block_action("incidents", post["ts"], HELPFUL_ACTION, user="U0CAROL", wait_responses=5)
    assert "Only incident responders may rate likely causes" in refused.responses[0]["text"]
    up = bot.driver.block_action("incidents", post["ts"], HELPFUL_ACTION, user="U0ALICE", wait_responses=5)
    assert up.responses[0]["text"] == "Thanks: :+1: recorded for checkout as the cause of incident 1."
    bot.driver.block_action("incidents", post["ts"], WRONG_ACTION, user="U0BOB", wait_responses=5)
    bot.driver.block_action("incidents", post["ts"], WRONG_ACTION, user="U0ALICE", wait_responses=5)
    tampered = bot.driver.block_action(
        "incidents", post["ts"], HELPFUL_ACTION, value="cause:x:checkout", user="U0ALICE", wait_responses=5
    )
    assert "does not belong" in tampered.responses[0]["text"]
    with bot.runtime.database.read() as session:
        votes = [(v.actor, v.candidate, v.helpful, v.rank) for v in session.scalars(select(CauseFeedback))]
    assert sorted(votes) == [("slack:U0ALICE", "checkout", False, 1), ("slack:U0BOB", "checkout", False, 1)]


def test_resolve_asks_for_the_cause_with_a_select_and_cause_text_is_recorded(bot: SlackBot) -> None:
    send(bot, FRONTEND_5XX, CHECKOUT_SLOW)
    answer = bot.driver.slash_command("/incident", "resolve 1 restarted the pods", user="U0BOB", wait_responses=5)
    assert answer.responses[0]["text"] == "Incident 1 resolved by bob."
    bot.drain()
    [post] = bot.posts()
    [question] = [r for r in post["replies"] if r["text"].startswith("What caused incident #1?")]
    picked = bot.driver.block_action(
        "incidents", question["ts"], CONFIRM_ACTION, option=confirm_value(1, 2), user="U0BOB", wait_responses=5
    )
    assert picked.responses[0]["text"] == "Recorded the cause of incident 1: frontend."
    bot.drain()
    assert confirmed(bot) == ("frontend", 2, "slack:U0BOB")
    assert "Confirmed by a person: *frontend*" in likely_cause(bot.posts()[0])

    # On an incident already resolved, cause= still records (and replaces) the confirmed cause.
    again = bot.driver.slash_command("/incident", 'resolve 1 cause="checkout"', user="U0ALICE", wait_responses=5)
    assert again.responses[0]["text"].endswith("Cause recorded: checkout.")
    assert confirmed(bot) == ("checkout", 1, "slack:U0ALICE")


def test_incident_cause_command_says_the_ranking_with_its_evidence(bot: SlackBot) -> None:
    send(bot, FRONTEND_5XX, CHECKOUT_SLOW)
    [answer] = bot.driver.slash_command("/incident", "cause 1", user="U0CAROL", wait_responses=5).responses
    assert answer["response_type"] == "ephemeral"
    lines = answer["text"].split("\n")
    assert lines[0] == "*Likely causes of incident #1*"
    assert re.fullmatch(r"1\. \*checkout\* \(service\) — \d+%", lines[1])
    assert any(line.startswith("2. *frontend* (service)") for line in lines)
    assert "depend on it _(topology)_" in answer["text"]
    missing = bot.driver.slash_command("/incident", "cause 9", wait_responses=5).responses[0]["text"]
    assert missing == "There is no incident 9."


def confirmed(bot: SlackBot, incident_id: int = 1) -> tuple[str, int | None, str]:
    with bot.runtime.database.read() as session:
        row = session.get(ConfirmedCause, incident_id)
        assert row is not None
        return row.name, row.rank, row.actor


@pytest.fixture
def searching_bot(
    knowledge_settings: Settings, clock: FakeClock, tmp_path: Path, shared_embedder: Embedder
) -> Iterator[SlackBot]:
    topology = tmp_path / "topology.json"
    topology.write_text(json.dumps(TOPOLOGY))
    configured = knowledge_settings.model_copy(update={"topology_file": topology})
    with running_bot(configured, shared_embedder, clock=clock) as running:
        yield running


def test_a_confirmed_cause_is_history_for_a_similar_new_incident_and_the_cli_shows_it(
    searching_bot: SlackBot, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bot = searching_bot
    send(bot, FRONTEND_5XX, SEARCH_5XX)
    assert ranking(bot, 1).top == "frontend"  # a tie the topology cannot break
    answer = bot.driver.slash_command("/incident", "resolve 1 cause=search bad index", wait_responses=5)
    assert answer.responses[0]["text"] == "Incident 1 resolved by alice. Cause recorded: search."
    assert confirmed(bot) == ("search", 2, "slack:U0ALICE")
    assert bot.runtime.knowledge is not None
    bot.runtime.knowledge.indexer.run_once()  # the resolved incident's document, as the worker's indexer does

    clock.advance(hours=1)
    other_pods = [
        (name, service, pod[:-5] + "zzzzz", summary) for name, service, pod, summary in (FRONTEND_5XX, SEARCH_5XX)
    ]
    bot.send(am_group([alert(*a) for a in other_pods], group_key='{}:{cluster="prod", try="2"}'))
    bot.drain()
    clock.advance(seconds=MIN_INTERVAL.total_seconds())
    bot.drain()
    second = ranking(bot, 2)
    assert second.top == "search"
    assert "confirmed cause of similar incident #1" in json.dumps(second.candidates)
    post = next(p for p in bot.posts() if "(incident #2)" in p["text"])
    assert ":books: confirmed cause of similar incident #1" in likely_cause(post)

    for name, value in incibot_env(bot.runtime.settings.state_dir, bot.runtime.settings.database_url).items():
        if name.startswith("INCIBOT_"):
            monkeypatch.setenv(name, value)
    assert main(["incidents", "show", "2"]) == 0
    shown = capsys.readouterr().out
    assert (
        "Likely causes:\n  1. search (service)" in shown and "history: confirmed cause of similar incident #1" in shown
    )
    assert main(["incidents", "show", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["root_cause"]["confirmed"] == "search" and data["root_cause"]["candidates"][0]["name"] == "frontend"
    assert main(["incidents", "resolve", "2", "--cause", "Search", "--by", "cli:dana"]) == 0
    assert capsys.readouterr().out.strip() == "Incident 2 resolved by cli:dana. Cause recorded: search."
    assert confirmed(bot, 2) == ("search", 1, "cli:dana")  # named as the ranking names it


def test_without_a_topology_candidates_are_named_by_the_service_label_never_a_pod(
    settings: Settings, clock: FakeClock
) -> None:
    with running_bot(settings, clock=clock) as bot:
        send(bot, FRONTEND_5XX, CHECKOUT_SLOW)
        names = [candidate["name"] for candidate in ranking(bot).candidates]
        assert names and set(names) <= {"frontend", "checkout"}
        [post] = bot.posts()
        assert "(service)" in likely_cause(post) and "k2x7q" not in likely_cause(post)


def test_summary_escapes_outside_text_and_stays_within_slacks_limits() -> None:
    hostile = "<!channel> <https://evil.example|click> & " + "x" * 10_000
    candidates = tuple(
        CauseCandidate(f"{hostile}{n}", "service", 0.5, (Evidence("change", hostile, 1.0),) * 5) for n in range(12)
    )
    stored = StoredRanking(candidates, stale=False, ranked_at=T0, confirmed=hostile)
    situation = Situation(((hostile, 3),) * 20, ((hostile, 2),) * 20, 40, T0, (hostile,) * 30, T0)
    runbooks = (RunbookHit("doc/" + hostile, hostile, 0.9, hostile, "javascript:alert(1)"),) * 3
    actions = (ActionHint(hostile, hostile, hostile),) * 5
    blocks = summary_blocks(Summary(7, situation, stored, runbooks, actions))
    question = cause_question("What caused it?", 7, candidates)
    for block in [*blocks, *question["blocks"]]:
        shown = " ".join(mrkdwn_texts(block))  # what Slack parses (plain_text and values never are)
        assert "<!channel>" not in shown and "<https://evil" not in shown and "<javascript:" not in shown
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        for element in block.get("elements", []):
            assert len(element.get("value", "")) <= 2000
            assert all(len(o["text"]["text"]) <= 75 and len(o["value"]) <= 150 for o in element.get("options", []))
    assert parse_cause_value(blocks[2]["elements"][0]["value"]) == (7, candidates[0].name[:200])
    assert len(question["blocks"][1]["elements"][0]["options"]) == 10


def mrkdwn_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [text for value in node.values() for text in mrkdwn_texts(value)]
    if isinstance(node, list):
        return [text for item in node for text in mrkdwn_texts(item)]
    return []


def test_a_single_alert_incident_is_posted_with_its_likely_cause_and_never_edited_for_it(bot: SlackBot) -> None:
    send(bot, DATABASE_DOWN)
    [post] = bot.posts()
    assert "*payments-db* (service) — 100%" in likely_cause(post)
    assert not bot.standin.calls("chat.update") and not ranking(bot).stale
