"""``incibot incidents ack|resolve`` reach Slack and search exactly as the same action in Slack does: the
incident service is built with all its listeners in one place, whoever calls it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.knowledge.models import IncidentDocument
from bot.runtime import Runtime
from bot.settings import Settings
from bot.slack.models import OutboxItem
from bot.standin.driver import SlackDriver
from tests.processes import incibot_env, run_incibot
from tests.slack_support import drain
from tests.support import FakeClock, serve_in_thread

pytestmark = pytest.mark.db

NOTE = "rolled back the deploy"


@pytest.fixture
def clock() -> FakeClock:
    """Starts now: the ``incibot`` process that acts runs on the real clock."""
    return FakeClock(datetime.now(UTC))


@pytest.fixture
def served(settings: Settings, clock: FakeClock) -> Iterator[tuple[Runtime, SlackDriver]]:
    """The web side (ingest, /slack/events, the stand-in) on loopback; the outbox is pumped by hand."""
    runtime = Runtime.build(settings, clock=clock)
    with serve_in_thread(runtime.asgi_app(frozenset({"web"}))) as url:
        assert runtime.slack.standin is not None and runtime.slack.signing_secret is not None
        with SlackDriver(runtime.slack.standin.url, bot_url=url, signing_secret=runtime.slack.signing_secret) as driver:
            yield runtime, driver


def _declare_and_post(runtime: Runtime, clock: FakeClock, title: str) -> int:
    with runtime.database.write() as session:
        incident_id = runtime.incidents.declare(session, title, "slack:U0ALICE", "alice").id
    drain(runtime, clock)
    return incident_id


def _effects(runtime: Runtime, incident_id: int, after: int) -> tuple[list[Any], tuple[int, str, bool]]:
    """The outbox rows the action wrote, and the search document's (revision, text, waiting to be indexed)."""
    with runtime.database.read() as session:
        rows = session.scalars(
            select(OutboxItem)
            .where(OutboxItem.incident_id == incident_id, OutboxItem.id > after)
            .order_by(OutboxItem.id)
        ).all()
        document = session.get(IncidentDocument, incident_id)
        assert document is not None
        return [(r.kind, r.channel, r.payload, r.status) for r in rows], (document.rev, document.text, document.pending)


def _last_outbox_id(runtime: Runtime) -> int:
    with runtime.database.read() as session:
        return max(session.scalars(select(OutboxItem.id)).all())


@pytest.mark.parametrize(("slack_text", "cli_args"), [("ack {id}", ["ack"]), (f"resolve {{id}} {NOTE}", ["resolve"])])
def test_cli_action_writes_what_the_slack_action_writes(
    served: tuple[Runtime, SlackDriver], settings: Settings, clock: FakeClock, slack_text: str, cli_args: list[str]
) -> None:
    runtime, driver = served
    in_slack = _declare_and_post(runtime, clock, "Checkout is down")
    from_cli = _declare_and_post(runtime, clock, "Checkout is down")

    before = _last_outbox_id(runtime)
    answer = driver.slash_command("/incident", slack_text.format(id=in_slack), user="U0ALICE", wait_responses=5)
    assert answer.responses, answer
    slack_effects = _effects(runtime, in_slack, before)

    before = _last_outbox_id(runtime)
    extra = ["--note", NOTE] if cli_args == ["resolve"] else []
    env = incibot_env(settings.state_dir, settings.database_url)
    done = run_incibot("incidents", *cli_args, str(from_cli), "--by", "alice", *extra, env=env)
    assert done.returncode == 0, done.stderr
    cli_effects = _effects(runtime, from_cli, before)

    assert slack_effects[0], "the Slack action queued Slack writes"
    if cli_args == ["resolve"]:
        revision, text, _pending = slack_effects[1]
        assert revision == 2 and NOTE in text, "the document is re-indexed with the note"
    assert cli_effects == slack_effects

    drain(runtime, clock)  # and the post is edited, with a reply in its thread, as for the Slack action
    assert runtime.slack.standin is not None
    posts = {m["ts"]: m for m in runtime.slack.standin.messages("incidents")}
    edited = [m for m in posts.values() if m["edits"]]
    assert len(edited) == 2
    assert edited[0]["text"].replace(f"#{in_slack}", "#N") == edited[1]["text"].replace(f"#{from_cli}", "#N")
    assert [r["text"] for r in edited[0]["replies"]] == [r["text"] for r in edited[1]["replies"]] != []
