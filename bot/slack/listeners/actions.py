"""The Acknowledge and Resolve buttons: the same operations as the matching subcommands."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.slack import commands
from bot.slack.blocks import ACK_ACTION, RESOLVE_ACTION, parse_button_value
from bot.slack.grammar import Command
from bot.slack.listeners.errors import reported
from bot.slack.services import SlackServices


def register(app: App, services: SlackServices) -> None:
    @app.action(ACK_ACTION)
    def acknowledge_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        with reported(body, respond):
            _press(services, "ack", body, action, respond)

    @app.action(RESOLVE_ACTION)
    def resolve_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        with reported(body, respond):
            _press(services, "resolve", body, action, respond)


def _press(services: SlackServices, name: str, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
    incident_id = parse_button_value(str(action.get("value", "")))
    if incident_id is None:
        respond(text="That button does not belong to an incident.", response_type="ephemeral", replace_original=False)
        return
    user = body.get("user") or {}
    user_id = str(user.get("id", ""))
    user_name = str(user.get("username") or user.get("name") or user_id)
    key = f"action:{user_id}:{action.get('action_ts')}:{action.get('action_id')}"
    answer = commands.run(services, Command(name, incident_id), user_id, user_name, key)
    if body.get("response_url"):
        respond(text=answer, response_type="ephemeral", replace_original=False)
