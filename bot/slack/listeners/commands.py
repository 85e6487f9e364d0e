"""``/incident`` and ``/runbook``: parse, ack (with the usage text when it does not parse), then do the work."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.slack import grammar, operations
from bot.slack.errors import UsageError
from bot.slack.listeners.errors import reported
from bot.slack.services import SlackServices

COMMAND = "/incident"
RUNBOOK_COMMAND = "/runbook"


def register(app: App, services: SlackServices) -> None:
    @app.command(COMMAND)
    def incident_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        try:
            parsed = grammar.parse(str(command.get("text", "")))
        except UsageError as exc:
            ack(text=f"{exc.message}\n\n{grammar.USAGE}")
            return
        ack()
        user_id = str(command["user_id"])
        user_name = str(command.get("user_name") or user_id)
        key = f"command:{command.get('trigger_id') or command.get('response_url')}"
        with reported(command, respond):
            respond(text=operations.run(services, parsed, user_id, user_name, key), response_type="ephemeral")

    @app.command(RUNBOOK_COMMAND)
    def runbook_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        try:
            query = grammar.parse_runbook_query(str(command.get("text", "")))
        except UsageError as exc:
            ack(text=exc.message)
            return
        ack()
        with reported(command, respond):
            respond(text=operations.runbooks(services, query), response_type="ephemeral")
