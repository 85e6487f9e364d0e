"""The one table of slash commands drives the help text, parsing, permissions and both manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.slack import commands
from bot.slack.commands import SLASH_COMMANDS, Who
from bot.slack.errors import UsageError
from bot.slack.grammar import Kind

ROOT = Path(__file__).resolve().parents[1]
HTTP_URL = "https://incibot.example.com/slack/events"


@pytest.mark.parametrize(("name", "url"), [("slack-manifest.yml", HTTP_URL), ("slack-manifest-socket.yml", None)])
def test_manifests_declare_exactly_the_table(name: str, url: str | None) -> None:
    manifest = yaml.safe_load((ROOT / "deploy" / name).read_text())
    assert manifest["features"]["slash_commands"] == commands.manifest_slash_commands(url), (
        f"deploy/{name}: features.slash_commands must be what bot.slack.commands.manifest_slash_commands() gives"
    )


def test_help_lists_every_row_of_its_command_with_its_arguments() -> None:
    for command in commands.COMMANDS:
        text = commands.usage(command)
        for row in commands.rows(command):
            assert f"`{row.usage}` — {row.summary}" in text
    assert "`/incident resolve ID [note]` — resolve, with an optional resolution note" in commands.usage("/incident")
    assert commands.usage("/runbook").startswith("`/runbook QUERY` — runbooks for a symptom or an alert name")


def test_every_row_parses_its_own_usage_example_and_refuses_extra_words() -> None:
    samples = {"ID": "42", "@user": "<@U0BOB|bob>", "note": "rolled back", "TITLE": "DB down", "QUERY": "disk full"}
    samples |= {"A": "42", "B": "#43", "ALERTNAME|ALERT_ID": "KubePodCrashLooping", "CATEGORY": "database"}
    samples |= {"ACTION key=value…": "restart-deployment namespace=shop", "QUESTION": "is checkout down?"}
    for row in SLASH_COMMANDS:
        text = " ".join([row.name, *(samples[p.label] for p in row.params)]).strip()
        parsed = commands.parse(row.command, text)
        assert (parsed.slash, parsed.name) == (row.command, row.name)
        if row.params and row.params[-1].kind is Kind.INCIDENT_ID:
            with pytest.raises(UsageError, match=f"takes nothing after the {row.params[-1].label}"):
                commands.parse(row.command, f"{text} extra")


def test_every_writing_row_is_for_responders_and_says_what_others_may_not_do() -> None:
    for row in SLASH_COMMANDS:
        assert row.who is Who.RESPONDERS or not row.writes, row.usage
        assert bool(row.what) == (row.who is Who.RESPONDERS), row.usage


def test_merge_takes_two_incident_ids_and_split_an_alert_selector() -> None:
    merge = commands.parse("/incident", "merge #7 12")
    assert (merge.name, merge.incident_id, merge.other_id) == ("merge", 7, 12)
    with pytest.raises(UsageError, match="needs an incident ID"):
        commands.parse("/incident", "merge 7")
    split = commands.parse("/incident", "split 7 KubePodCrashLooping")
    assert (split.name, split.incident_id, split.text) == ("split", 7, "KubePodCrashLooping")
    with pytest.raises(UsageError, match="needs a name or ID of an alert"):
        commands.parse("/incident", "split 7")
