"""Pure Slack parts: Block Kit builders within Slack's limits, button values, the /incident grammar,
the manifests, and the stand-in's runtime file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bot.slack import commands, grammar
from bot.slack.alert_groups import AlertLine
from bot.slack.blocks import (
    ACK_ACTION,
    CLASSIFY_ACTION,
    RESOLVE_ACTION,
    IncidentCard,
    button_value,
    incident_message,
    parse_button_value,
)
from bot.slack.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent


def card(**overrides: object) -> IncidentCard:
    fields: dict[str, object] = {
        "id": 7, "title": "Checkout 5xx above 5%", "severity": "critical", "status": "triggered",
        "service": "checkout", "source": "alertmanager", "opened_at": datetime(2026, 3, 10, 9, tzinfo=UTC),
        "alert_count": 2, "commander": None,
        "alerts": (AlertLine("HighErrorRate", "firing", "5xx on checkout", "http://prom/graph?g0"),
                   AlertLine("HighLatency", "resolved", "p99 over 2s", None)),
    }  # fmt: skip
    fields.update(overrides)
    return IncidentCard(**fields)  # type: ignore[arg-type]


def test_incident_message_has_header_fields_context_and_buttons() -> None:
    message = incident_message(card())
    kinds = [block["type"] for block in message["blocks"]]
    assert kinds == ["header", "section", "section", "context", "actions"]
    assert message["blocks"][0]["text"]["text"] == "[CRITICAL] Checkout 5xx above 5%"
    *buttons, menu = message["blocks"][-1]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        (ACK_ACTION, "incident:7"),
        (RESOLVE_ACTION, "incident:7"),
    ]
    assert (menu["type"], menu["action_id"], len(menu["options"])) == ("static_select", CLASSIFY_ACTION, 10)
    assert "<http://prom/graph?g0|source 1>" in message["blocks"][3]["elements"][0]["text"]


def test_acknowledged_has_only_resolve_and_resolved_has_no_buttons() -> None:
    acknowledged = incident_message(card(status="acknowledged", commander="alice"))
    assert [b["action_id"] for b in acknowledged["blocks"][-1]["elements"]] == [RESOLVE_ACTION, CLASSIFY_ACTION]
    resolved = incident_message(card(status="resolved"))
    assert all(block["type"] != "actions" for block in resolved["blocks"])


def test_a_thousand_alerts_stay_within_slack_limits() -> None:
    alerts = tuple(AlertLine(f"Alert{n}", "firing", "x" * 500, None) for n in range(1000))
    message = incident_message(card(alerts=alerts[:10], alert_count=1000, title="t" * 400))
    assert len(message["blocks"]) <= 50
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    listing = message["blocks"][2]["text"]["text"]
    assert len(listing) <= 3000
    assert listing.endswith(f"+{1000 - listing.count(':fire:')} more")


def test_untrusted_text_cannot_mention_or_link() -> None:
    message = incident_message(card(service="<!channel> <@U0BOB>", title="<https://evil|click>"))
    mrkdwn = [message["text"]]  # plain_text (the header) is never parsed for mentions or links
    for block in message["blocks"]:
        parts = [block.get("text") or {}, *block.get("fields", []), *block.get("elements", [])]
        mrkdwn += [part["text"] for part in parts if isinstance(part, dict) and part.get("type") == "mrkdwn"]
    rendered = "\n".join(mrkdwn)
    assert "&lt;!channel&gt;" in rendered
    assert "<!channel>" not in rendered and "<@U0BOB>" not in rendered and "<https://evil" not in rendered


@pytest.mark.parametrize("value", ["incident:12", "incident:1"])
def test_button_values_round_trip(value: str) -> None:
    incident_id = parse_button_value(value)
    assert incident_id is not None and button_value(incident_id) == value


@pytest.mark.parametrize("value", ["", "incident:", "incident:-1", "incident:1; DROP", "other:3", "incident:1e3"])
def test_foreign_button_values_are_refused(value: str) -> None:
    assert parse_button_value(value) is None


def parse(text: str) -> grammar.Command:
    return commands.parse(grammar.INCIDENT_COMMAND, text)


def test_grammar_accepts_the_documented_forms() -> None:
    assert parse("") == grammar.Command("help")
    assert parse("  ACK   #42 ") == grammar.Command("ack", 42)
    assert parse("resolve 3 rolled back v1.2") == grammar.Command("resolve", 3, text="rolled back v1.2")
    assert parse("assign 3 <@U0BOB|bob>") == grammar.Command("assign", 3, user_id="U0BOB", user_name="bob")
    assert parse("assign 3 <@U0BOB>") == grammar.Command("assign", 3, user_id="U0BOB")
    assert parse("declare DB primary down") == grammar.Command("declare", text="DB primary down")


BAD_COMMANDS = ["ack 0", "ack 1.5", "show 99999999999999", "resolve", "assign 1 <@U0BOB|bob> extra",
                "declare " + "x" * 201, "resolve 1 " + "n" * 2001, "list 1", "help me", "delete 3"]  # fmt: skip


@pytest.mark.parametrize("text", BAD_COMMANDS)
def test_grammar_refuses_everything_else(text: str) -> None:
    with pytest.raises(UsageError):
        parse(text)


@pytest.mark.parametrize("name", ["slack-manifest.yml", "slack-manifest-socket.yml"])
def test_manifests_declare_the_command_events_and_minimal_scopes(name: str) -> None:
    manifest = yaml.safe_load((ROOT / "deploy" / name).read_text())
    declared = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert declared == list(commands.COMMANDS)  # every command the bot registers
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert set(events) == {"app_mention", "message.im", "message.channels", "message.groups"}  # the agent's too
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"chat:write", "commands"} <= scopes
    assert not scopes & {"admin", "chat:write.customize", "channels:write", "users:read.email"}
    socket = name.endswith("socket.yml")
    assert manifest["settings"]["socket_mode_enabled"] is socket
    if not socket:
        assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")
