"""People correct the correlator: merge and split from Slack and the CLI, and the "Not related" button of an
"alerts joined" reply. Each correction changes the incidents (and their Slack posts) and is stored as labelled
pairs for training. The bot runs with its Slack stand-in on a fake clock; the CLI as people run it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.cli.main import main
from bot.cli.models import stored_corrections
from bot.db.database import Database
from bot.incidents.corrections import feedback_pairs
from bot.incidents.models import CorrelationFeedback, Incident, IncidentAlert, IncidentStatus
from bot.ingest.models import Alert
from bot.settings import Settings
from bot.slack.blocks import NOT_RELATED_ACTION
from knowledge.correlation.features import FEATURES
from knowledge.embeddings import Embedder
from tests.processes import incibot_env
from tests.slack_support import SlackBot, running_bot
from tests.support import FakeClock, am_alert, am_group

pytestmark = pytest.mark.db

CHECKOUT = '{}:{alertname="HighErrorRate"}'
PAYMENTS = '{}:{service="payments"}'


@pytest.fixture
def bot(settings: Settings, clock: FakeClock, shared_embedder: Embedder) -> Iterator[SlackBot]:
    responders = settings.model_copy(update={"responders": frozenset({"U0ALICE", "U0BOB"})})
    with running_bot(responders, shared_embedder, clock=clock) as running:
        yield running


def _fire(bot: SlackBot, group_key: str, *alerts: dict[str, Any]) -> None:
    bot.send(am_group(list(alerts), group_key=group_key))
    bot.drain()


def _two_incidents(bot: SlackBot) -> None:
    _fire(bot, CHECKOUT, *(am_alert(pod=f"web-{n}") for n in range(2)))
    _fire(bot, PAYMENTS, *(am_alert("PaymentsLatencyHigh", service="payments", pod=f"pay-{n}") for n in range(3)))
    assert len(bot.posts()) == 2


def _post(bot: SlackBot, incident_id: int) -> dict[str, Any]:
    ts = bot.incident(incident_id).slack_ts
    [post] = [message for message in bot.posts() if message["ts"] == ts]
    return post


def _feedback(database: Database) -> list[CorrelationFeedback]:
    with database.read() as session:
        return list(session.scalars(select(CorrelationFeedback).order_by(CorrelationFeedback.id)))


def _links(database: Database, incident_id: int) -> list[IncidentAlert]:
    with database.read() as session:
        return list(session.scalars(select(IncidentAlert).where(IncidentAlert.incident_id == incident_id)))


def test_merge_from_slack_moves_the_alerts_and_freezes_the_merged_post(bot: SlackBot) -> None:
    _two_incidents(bot)
    answer = bot.driver.slash_command("/incident", "merge 1 2", user="U0ALICE", wait_responses=5)
    assert [r["text"] for r in answer.responses] == ["Incident 2 merged into #1 by alice (3 alerts moved)."]
    bot.drain()
    merged, kept = bot.incident(2), bot.incident(1)
    assert (merged.merged_into, merged.status, merged.resolved_by) == (1, IncidentStatus.RESOLVED, "alice")
    assert (kept.alert_count, kept.status) == (5, IncidentStatus.TRIGGERED)
    assert kept.correlation is not None and kept.correlation["alertnames"] == {
        "HighErrorRate": 2,
        "PaymentsLatencyHigh": 3,
    }
    moved = [link for link in _links(bot.runtime.database, 1) if link.decision == "merged"]
    assert len(moved) == 3 and all(str(link.reason).startswith("from #2, merged in by alice") for link in moved)

    post = _post(bot, 2)
    assert "merged into #1" in post["text"]
    assert not any(block["type"] == "actions" for block in post["blocks"])  # no Acknowledge / Resolve any more
    assert [reply["text"] for reply in post["replies"]] == ["Merged into #1 by alice (3 alerts moved)."]
    assert _post(bot, 1)["replies"][-1]["text"] == "#2 merged in by alice (3 alerts joined)."

    rows = _feedback(bot.runtime.database)
    assert [(row.kind, row.incident_id, row.related) for row in rows] == [("merge", 1, True)] * 3
    assert all(len(row.features) == len(FEATURES) for row in rows)
    with bot.runtime.database.read() as session:
        features, labels = feedback_pairs(session)
    assert features.shape == (3, len(FEATURES)) and labels.tolist() == [1, 1, 1]

    # B's post stops updating: its former alerts resolve in A, and B's message is left as the merge made it.
    edits = len(post["edits"])
    _fire(
        bot,
        PAYMENTS,
        *(am_alert("PaymentsLatencyHigh", status="resolved", service="payments", pod=f"pay-{n}") for n in range(3)),
    )
    assert len(_post(bot, 2)["edits"]) == edits and len(_post(bot, 2)["replies"]) == 1
    assert _post(bot, 1)["replies"][-1]["text"].startswith("3 alerts resolved: PaymentsLatencyHigh")


def test_split_from_slack_opens_and_posts_a_new_incident(bot: SlackBot) -> None:
    _fire(
        bot,
        CHECKOUT,
        am_alert(pod="web-0"),
        am_alert("KubePodCrashLooping", pod="web-1"),
        am_alert("KubePodCrashLooping", pod="web-2"),
    )
    answer = bot.driver.slash_command("/incident", "split 1 KubePodCrashLooping", user="U0BOB", wait_responses=5)
    assert answer.responses[0]["text"] == "Moved 2 alerts (KubePodCrashLooping) from #1 to new incident #2."
    bot.drain()
    assert (bot.incident(1).alert_count, bot.incident(2).alert_count) == (1, 2)
    assert bot.incident(2).status == IncidentStatus.TRIGGERED
    assert "KubePodCrashLooping" in _post(bot, 2)["text"]  # posted like any new incident
    assert _post(bot, 1)["replies"][-1]["text"] == "2 alerts (KubePodCrashLooping) split off by bob: now #2."
    rows = _feedback(bot.runtime.database)
    assert [(row.kind, row.incident_id, row.related) for row in rows] == [("split", 1, False)] * 2
    assert {link.decision for link in _links(bot.runtime.database, 2)} == {"split"}


def test_not_related_button_splits_the_reply_s_alerts_for_responders_only(bot: SlackBot) -> None:
    _fire(bot, CHECKOUT, am_alert(pod="web-0"))
    _fire(bot, CHECKOUT, am_alert(pod="web-0"), am_alert("DiskFull", pod="db-1"), am_alert("DiskFull", pod="db-2"))
    [reply] = _post(bot, 1)["replies"]
    assert reply["text"].startswith("2 alerts joined")
    ts = str(reply["ts"])

    refused = bot.driver.block_action("incidents", ts, NOT_RELATED_ACTION, user="U0CAROL", wait_responses=5)
    assert "Only incident responders may merge and split incidents" in refused.responses[0]["text"]
    assert bot.incident(1).alert_count == 3 and not _feedback(bot.runtime.database)

    click = bot.driver.block_action("incidents", ts, NOT_RELATED_ACTION, user="U0ALICE", wait_responses=5)
    [response] = click.responses
    assert response["text"] == "Moved 2 alerts (DiskFull) from #1 to new incident #2."
    assert response.get("response_type") == "ephemeral"
    bot.drain()
    assert (bot.incident(1).alert_count, bot.incident(2).alert_count) == (1, 2)
    assert "DiskFull" in _post(bot, 2)["text"]
    rows = _feedback(bot.runtime.database)
    assert [(row.kind, row.incident_id, row.related) for row in rows] == [("not_related", 1, False)] * 2
    again = bot.driver.block_action("incidents", ts, NOT_RELATED_ACTION, user="U0ALICE", wait_responses=5)
    assert again.responses[0]["text"] == "Those alerts are no longer part of incident 1."


def test_cli_merge_split_show_and_refusals(
    settings: Settings,
    clock: FakeClock,
    shared_embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with running_bot(settings, shared_embedder, clock=clock) as bot:
        _two_incidents(bot)
        _fire(bot, CHECKOUT, am_alert(pod="web-0"), am_alert(pod="web-1"), am_alert("KubePodCrashLooping", pod="web-3"))
        with bot.runtime.database.read() as session:
            crashloop = session.scalar(select(Alert.id).where(Alert.alertname == "KubePodCrashLooping"))
    for name, value in incibot_env(settings.state_dir, settings.database_url).items():
        if name.startswith("INCIBOT_"):
            monkeypatch.setenv(name, value)

    def incibot(*args: str) -> tuple[int, str, str]:
        status = main(["incidents", *args])
        out, err = capsys.readouterr()
        return status, out.strip(), err.strip()

    refusals = {
        ("merge", "1", "1"): "Cannot merge incident 1 into itself.",
        ("merge", "1", "9"): "incibot: There is no incident 9.",
        ("split", "1", "NoSuchAlert"): "Incident 1 has no alert named NoSuchAlert and no alert with that id.",
        (
            "split",
            "2",
            "PaymentsLatencyHigh",
        ): "Those are all the alerts of incident 2; there is nothing to split from.",
    }
    for args, message in refusals.items():
        assert incibot(*args) == (1, "", message)
    with pytest.raises(SystemExit) as usage:
        incibot("merge", "1")
    assert usage.value.code == 2 and "required: B" in capsys.readouterr().err
    database = Database(str(settings.database_url))
    try:
        assert not _feedback(database)
        split = incibot("split", "1", str(crashloop), "--by", "cli:dana")
        assert split == (0, "Moved 1 alert (KubePodCrashLooping) from #1 to new incident #3.", "")
        merge = incibot("merge", "3", "2", "--by", "cli:dana")
        assert merge == (0, "Incident 2 merged into #3 by cli:dana (3 alerts moved).", "")
        assert incibot("merge", "1", "2") == (1, "", "Incident 2 was already merged into #3.")

        assert "Merged into: #3" in incibot("show", "2")[1]
        shown = incibot("show", "3")[1]
        assert "split: from #1, split off by cli:dana; before: the same alertmanager group" in shown
        assert "merged: from #2, merged in by cli:dana; before: new incident: a new alertmanager group" in shown
        assert [(row.kind, row.related) for row in _feedback(database)] == [("split", False), *[("merge", True)] * 3]
        with database.read() as session:
            counts = {i.id: (i.alert_count, i.merged_into) for i in session.scalars(select(Incident))}
        assert counts == {1: (2, None), 2: (0, 3), 3: (4, None)}
        # The next `incibot models train correlate` reads them as weighted pairs (the settings it runs with).
        [corrections] = stored_corrections(Settings(), 20.0)
        assert corrections.labels.tolist() == [0, 1, 1, 1]
        assert corrections.rows.shape == (4, len(FEATURES)) and corrections.weight == 20.0
        assert stored_corrections(Settings(), 0.0) == []
    finally:
        database.dispose()
