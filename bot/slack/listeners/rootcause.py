"""The 👍/👎 buttons under an incident post's likely cause, and the select of candidates in the thread after a
resolve (it records the confirmed cause). Both are writes: responders only, once per click."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.slack import cause_operations
from bot.slack.grammar import Command
from bot.slack.listeners.actions import write_click
from bot.slack.listeners.errors import reported
from bot.slack.services import SlackServices
from bot.slack.summary_blocks import (
    CONFIRM_ACTION,
    HELPFUL_ACTION,
    WRONG_ACTION,
    parse_cause_value,
    parse_confirm_value,
)

NOT_OURS = "That control does not belong to an incident's likely cause."


def register(app: App, services: SlackServices) -> None:
    @app.action(HELPFUL_ACTION)
    def helpful(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        with reported(body, respond):
            _vote(services, body, action, respond, helpful=True)

    @app.action(WRONG_ACTION)
    def wrong(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        with reported(body, respond):
            _vote(services, body, action, respond, helpful=False)

    @app.action(CONFIRM_ACTION)
    def confirm(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        with reported(body, respond):
            _confirm(services, body, action, respond)


def _vote(
    services: SlackServices, body: dict[str, Any], action: dict[str, Any], respond: Respond, *, helpful: bool
) -> None:
    parsed = parse_cause_value(str(action.get("value", "")))
    if parsed is None:
        respond(text=NOT_OURS, response_type="ephemeral", replace_original=False)
        return
    incident_id, name = parsed
    write_click(
        services,
        body,
        action,
        respond,
        cause_operations.FEEDBACK,
        Command("cause_feedback", incident_id),
        lambda invocation: cause_operations.vote(invocation, name, helpful),
    )


def _confirm(services: SlackServices, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
    parsed = parse_confirm_value(str((action.get("selected_option") or {}).get("value", "")))
    if parsed is None:
        respond(text=NOT_OURS, response_type="ephemeral", replace_original=False)
        return
    incident_id, rank = parsed
    write_click(
        services,
        body,
        action,
        respond,
        cause_operations.RESOLVE,
        Command("cause_confirm", incident_id),
        lambda invocation: cause_operations.confirm_pick(invocation, rank),
    )
