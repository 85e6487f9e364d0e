"""Every slash command in the table (:mod:`bot.slack.commands`): parse, ack (with the usage when it does not
parse), then do the work and answer ephemerally."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.slack import commands
from bot.slack.errors import UsageError
from bot.slack.listeners.errors import reported
from bot.slack.services import SlackServices


def register(app: App, services: SlackServices) -> None:
    for name in commands.COMMANDS:
        app.command(name)(_listener(services, name))


def _listener(services: SlackServices, name: str) -> Any:
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        try:
            parsed = commands.parse(name, str(command.get("text", "")))
        except UsageError as exc:
            usage = commands.usage(name)
            ack(text=exc.message if exc.message == usage else f"{exc.message}\n\n{usage}")
            return
        ack()
        user_id = str(command["user_id"])
        user_name = str(command.get("user_name") or user_id)
        key = f"command:{command.get('trigger_id') or command.get('response_url')}"
        with reported(command, respond):
            respond(text=commands.run(services, parsed, user_id, user_name, key), response_type="ephemeral")

    return on_command
