"""The worker classifies incidents with the shipped classifier on a fresh state dir (cold start): a confident
category routes the new incident's post (``INCIBOT_ROUTES`` with ``category=KEY``), the model re-classifies as
alerts join (the severity stays the highest of its alerts'), an unsure model (a champion promoted through the
registry whose threshold is above its confidence) leaves it unclassified with the menu, and a person's category is
never replaced."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.cli.main import main
from bot.db.database import Database
from bot.registry import classify
from bot.registry.lifecycle import Score
from bot.registry.store import register
from bot.settings import Route, Settings
from bot.slack.blocks import CLASSIFY_ACTION, category_value
from bot.standin.workspace import DEFAULT_BOT_TOKEN
from knowledge.classify.model import CARD_FILE, DEFAULT_DIR, TextClassifier
from knowledge.embeddings import Embedder
from tests.slack_support import SlackBot, running_bot
from tests.support import T0, FakeClock, am_alert, am_group

pytestmark = pytest.mark.db


def _alert(name: str, summary: str, description: str, severity: str = "critical", service: str = "") -> dict[str, Any]:
    alert = am_alert(name, severity=severity, service=service)
    alert["annotations"] = {"summary": summary, "description": description}
    return alert


REPLICATION = _alert(
    "PostgresqlReplicationLag",
    "PostgreSQL replica is lagging behind the primary",
    "Replication lag on orders-db is above 30 seconds; reads from the replica are stale.",
    severity="warning",
    service="orders-db",
)
CONNECTIONS = _alert(
    "PostgresqlTooManyConnections",
    "PostgreSQL connections almost exhausted",
    "orders-db uses 95% of max_connections; new connections will be refused.",
    service="orders-db",
)
NONSENSE = _alert("ZqxFlorp", "Wibble quorp zant", "Frobnicated the blorf twice.", service="zz")


UNSURE = "classify-unsure"


@contextlib.contextmanager
def _running(settings: Settings, clock: FakeClock, embedder: Embedder) -> Iterator[SlackBot]:
    routes = (Route("category", "database", "db-incidents"),)
    configured = settings.model_copy(update={"classification": True, "routes": routes})
    with running_bot(configured, embedder, clock=clock) as running:
        admin = WebClient(base_url=running.standin.api_url, token=DEFAULT_BOT_TOKEN, retry_handlers=[], timeout=10)
        admin.conversations_create(name="db-incidents")
        yield running


@pytest.fixture
def bot(settings: Settings, clock: FakeClock, shared_embedder: Embedder) -> Iterator[SlackBot]:
    with _running(settings, clock, shared_embedder) as running:
        yield running


@pytest.fixture
def unsure_bot(
    settings: Settings, clock: FakeClock, shared_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SlackBot]:
    """The bot with a classify champion that claims a class only at 0.99 or more: the shipped classifier with its
    threshold raised, registered and promoted (``incibot models promote``) before the worker starts."""
    directory = settings.state_dir / "models" / "classify" / UNSURE
    shutil.copytree(DEFAULT_DIR, directory)
    card = json.loads((directory / CARD_FILE).read_text()) | {"version": UNSURE, "threshold": 0.99}
    (directory / CARD_FILE).write_text(json.dumps(card))
    registry_card = classify.challenger(TextClassifier.load(directory), []).card("none", Score("macro_f1", 1.0, True))
    database = Database(settings.effective_database_url)
    with database.write() as session:
        register(session, "classify", directory, registry_card, {}, now=T0)
    database.dispose()
    monkeypatch.setenv("INCIBOT_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("INCIBOT_STATE_DIR", str(settings.state_dir))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["models", "promote", "classify", UNSURE, "--by", "alice"]) == 0
    with _running(settings, clock, shared_embedder) as running:
        yield running


def _category_field(post: dict[str, Any]) -> str:
    fields = [field["text"] for block in post["blocks"] for field in block.get("fields", [])]
    [value] = [str(text).split("\n", 1)[1] for text in fields if str(text).startswith("*Category*")]
    return value


def test_cold_start_classifies_routes_by_category_and_re_classifies_as_alerts_join(bot: SlackBot) -> None:
    assert bot.runtime.classification is not None
    model = bot.runtime.classification.model
    bot.send(am_group([REPLICATION], group_key='{}:{service="orders-db"}'))
    bot.drain()
    incident = bot.incident(1)
    assert (incident.category, incident.category_source) == ("database", "model")
    assert incident.category_model == str(model.card.version)
    assert incident.category_confidence is not None and incident.category_confidence >= model.threshold
    assert bot.posts("incidents") == []  # routed by its category, from the start
    [post] = bot.posts("db-incidents")
    assert _category_field(post) == f"Database ({incident.category_confidence:.2f})"

    bot.send(am_group([REPLICATION, CONNECTIONS], group_key='{}:{service="orders-db"}'))
    bot.drain()
    incident = bot.incident(1)
    assert incident.alert_count == 2 and incident.severity == "critical"  # the highest of its alerts'
    assert (incident.category, incident.category_source) == ("database", "model")  # classified again, same class


def test_an_unsure_model_leaves_the_incident_unclassified_and_a_pick_is_kept(unsure_bot: SlackBot) -> None:
    bot = unsure_bot
    bot.send(am_group([NONSENSE], group_key='{}:{service="zz"}'))
    bot.drain()
    incident = bot.incident(1)
    assert (incident.category, incident.category_source, incident.category_model) == (None, "model", UNSURE)
    assert incident.category_confidence is not None and incident.category_confidence < 0.99  # it abstained
    [post] = bot.posts("incidents")
    assert _category_field(post) == "unclassified: pick one in the menu"
    picked = bot.driver.block_action(
        "incidents", post["ts"], CLASSIFY_ACTION, option=category_value(1, "application"), wait_responses=5
    )
    assert picked.responses[0]["text"] == "Incident 1 is now classified as Application errors / latency."
    bot.send(am_group([NONSENSE, REPLICATION], group_key='{}:{service="zz"}'))
    bot.drain()
    incident = bot.incident(1)
    assert (incident.alert_count, incident.category, incident.category_source) == (2, "application", "person")
