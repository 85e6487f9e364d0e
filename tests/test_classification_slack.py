"""People classify incidents in Slack and on the command line: the post's category menu (a signed ``block_actions``
payload through the stand-in), ``/incident classify`` and ``incibot incidents classify``. A pick is stored as a
labelled example with who and when, routes the incident (``INCIBOT_ROUTES`` with ``category=KEY``), and a pick that
moves its route says so in the thread with a button that re-posts it there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from slack_sdk import WebClient
from sqlalchemy import select

from bot.cli.main import main
from bot.incidents.models import CategoryLabel
from bot.ingest.models import Alert
from bot.settings import Route, Settings
from bot.slack.blocks import CLASSIFY_ACTION, REPOST_ACTION, category_value
from bot.slack.notifier import ChannelRouter
from bot.standin.workspace import DEFAULT_BOT_TOKEN
from knowledge.classify.categories import CATEGORY_KEYS
from knowledge.text import alert_text
from tests.processes import incibot_env
from tests.slack_support import SlackBot, running_bot
from tests.support import FakeClock, am_alert, am_group

pytestmark = pytest.mark.db

ROUTES = (Route("category", "database", "db-incidents"),)


@pytest.fixture
def bot(settings: Settings, clock: FakeClock) -> Iterator[SlackBot]:
    configured = settings.model_copy(update={"responders": frozenset({"U0ALICE", "U0BOB"}), "routes": ROUTES})
    with running_bot(configured, clock=clock) as running:
        admin = WebClient(base_url=running.standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)
        admin.conversations_create(name="db-incidents")
        running.send(am_group([am_alert("PostgresReplicationLag", service="orders-db")]))
        running.drain()
        yield running


def _post(bot: SlackBot, channel: str = "incidents") -> dict[str, Any]:
    [post] = bot.posts(channel)
    return post


def _field(post: dict[str, Any], name: str) -> str:
    fields = [field["text"] for block in post["blocks"] for field in block.get("fields", [])]
    [value] = [str(text).split("\n", 1)[1] for text in fields if str(text).startswith(f"*{name}*")]
    return value


def _menu(post: dict[str, Any]) -> dict[str, Any]:
    menus = [e for b in post["blocks"] for e in b.get("elements", []) if e.get("action_id") == CLASSIFY_ACTION]
    assert len(menus) == 1
    menu: dict[str, Any] = menus[0]
    return menu


def _labels(bot: SlackBot) -> list[CategoryLabel]:
    with bot.runtime.database.read() as session:
        return list(session.scalars(select(CategoryLabel).order_by(CategoryLabel.id)))


def test_an_unclassified_post_offers_the_menu_and_a_pick_is_stored_routes_and_re_posts(
    bot: SlackBot, clock: FakeClock
) -> None:
    post = _post(bot)
    assert _field(post, "Category") == "unclassified: pick one in the menu"
    menu = _menu(post)
    assert [option["value"] for option in menu["options"]] == [category_value(1, key) for key in CATEGORY_KEYS]
    assert "initial_option" not in menu
    assert bot.incident(1).category is None

    refused = bot.driver.block_action(
        "incidents", post["ts"], CLASSIFY_ACTION, option=category_value(1, "database"), user="U0CAROL", wait_responses=5
    )
    assert "Only incident responders may classify incidents" in refused.responses[0]["text"]
    assert bot.incident(1).category is None and not _labels(bot)

    picked_at = clock()
    picked = bot.driver.block_action(
        "incidents", post["ts"], CLASSIFY_ACTION, option=category_value(1, "database"), user="U0ALICE", wait_responses=5
    )
    assert [r["text"] for r in picked.responses] == ["Incident 1 is now classified as Database."]
    bot.drain()
    incident = bot.incident(1)
    assert (incident.category, incident.category_source, incident.category_confidence) == ("database", "person", None)
    [label] = _labels(bot)
    with bot.runtime.database.read() as session:
        texts = [alert_text(alert.normalized()) for alert in session.scalars(select(Alert))]
    assert (label.actor, label.at, label.category, label.previous, label.texts) == (
        "slack:U0ALICE",
        picked_at,
        "database",
        None,
        texts,
    )

    post = _post(bot)
    assert _field(post, "Category") == "Database (set by a person)"
    assert _menu(post)["initial_option"]["value"] == category_value(1, "database")
    [note] = post["replies"]
    assert note["text"] == (
        "alice set the category to Database (was unclassified).\n"
        "With this category it would now go to #db-incidents; nothing already posted moved."
    )
    assert bot.posts("db-incidents") == []  # nothing moved

    moved = bot.driver.block_action("incidents", note["ts"], REPOST_ACTION, user="U0BOB", wait_responses=5)
    assert moved.responses[0]["text"].startswith("Incident 1 is being re-posted in #db-incidents")
    bot.drain()
    reposted = _post(bot, "db-incidents")
    assert "PostgresReplicationLag" in reposted["text"] and _field(reposted, "Category").startswith("Database")
    assert bot.incident(1).slack_ts == reposted["ts"]  # its updates go there now
    assert _post(bot)["replies"][-1]["text"] == "bob re-posted it in #db-incidents."


def test_classify_command_validates_replaces_the_label_and_the_cli_does_the_same(
    bot: SlackBot, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = bot.driver.slash_command("/incident", "classify 1 databse", user="U0ALICE", wait_responses=5)
    [answer] = wrong.responses
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == (
        "`databse` is not a category; the categories are " + ", ".join(f"`{key}`" for key in CATEGORY_KEYS) + "."
    )
    assert not _labels(bot)

    ok = bot.driver.slash_command("/incident", "classify #1 Network", user="U0BOB", wait_responses=5)
    assert ok.responses[0]["text"] == "Incident 1 is now classified as Network."
    again = bot.driver.slash_command("/incident", "classify 1 network", user="U0ALICE", wait_responses=5)
    assert again.responses[0]["text"] == "Incident 1 is already classified as Network."
    missing = bot.driver.slash_command("/incident", "classify 9 network", user="U0ALICE", wait_responses=5)
    assert missing.responses[0]["text"] == "There is no incident 9."
    bot.drain()
    assert "would now go" not in _post(bot)["replies"][-1]["text"]  # network has no route of its own

    for name, value in incibot_env(settings.state_dir, settings.database_url).items():
        if name.startswith("INCIBOT_"):
            monkeypatch.setenv(name, value)
    assert main(["incidents", "classify", "1", "storage", "--by", "cli:dana"]) == 0
    assert capsys.readouterr().out.strip() == "Incident 1 is now classified as Storage."
    [label] = _labels(bot)  # one per incident: the later pick replaced it
    assert (label.actor, label.category, label.previous) == ("cli:dana", "storage", "network")
    with pytest.raises(SystemExit) as refused:
        main(["incidents", "classify", "1", "disk"])
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'disk'" in error and all(key in error for key in CATEGORY_KEYS)


def test_routes_key_on_category_or_labels_and_the_first_match_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIBOT_ROUTES", "team=payments:#pay, category=database:#db, service=orders:#orders")
    router = ChannelRouter(Settings().routes, "#incidents")
    assert router.channel_for([{"service": "orders"}], "database") == "db"  # the category rule comes first
    assert router.channel_for([{"service": "orders", "team": "payments"}], "database") == "pay"
    assert router.channel_for([{"service": "orders"}], "network") == "orders"
    assert router.channel_for([{"category": "database"}], None) == "incidents"  # never an alert label
    assert router.only is None  # routes lead elsewhere: each incident is routed by its labels and category
    assert ChannelRouter([], "#incidents").only == "incidents"
    assert ChannelRouter([Route("team", "payments", "incidents")], "#incidents").only == "incidents"
    monkeypatch.setenv("INCIBOT_ROUTES", "category=databse:#db")
    with pytest.raises(ValidationError, match=r"unknown category 'databse'.*one of compute, network"):
        Settings()
