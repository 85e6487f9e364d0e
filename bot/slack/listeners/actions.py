"""The Acknowledge and Resolve buttons and the category menu (the same operations as the matching subcommands),
the "Not related" button of "alerts joined" replies (its alerts leave the incident, like ``/incident split``), and
the "Re-post" button of a category's route note."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.slack import commands, operations
from bot.slack.blocks import (
    ACK_ACTION,
    CLASSIFY_ACTION,
    NOT_RELATED_ACTION,
    REPOST_ACTION,
    RESOLVE_ACTION,
    parse_button_value,
    parse_category_value,
    parse_joined_value,
    parse_repost_value,
)
from bot.slack.grammar import Command
from bot.slack.listeners.clicks import clicker
from bot.slack.listeners.errors import reported
from bot.slack.operations import Invocation
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

    @app.action(NOT_RELATED_ACTION)
    def not_related_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        with reported(body, respond):
            _not_related(services, body, action, respond)

    @app.action(CLASSIFY_ACTION)
    def category_menu(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        with reported(body, respond):
            _classify(services, body, action, respond)

    @app.action(REPOST_ACTION)
    def repost_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        with reported(body, respond):
            _repost(services, body, action, respond)


def _classify(services: SlackServices, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
    """A pick from a post's category menu: ``/incident classify`` with the option's category."""
    parsed = parse_category_value(str((action.get("selected_option") or {}).get("value", "")))
    if parsed is None:
        respond(text="That menu does not belong to an incident.", response_type="ephemeral", replace_original=False)
        return
    incident_id, key = parsed
    user_id, user_name = clicker(body)
    command = Command("classify", incident_id, text=key)
    answer = commands.run(services, command, user_id, user_name, _request_key(user_id, action))
    if body.get("response_url"):
        respond(text=answer, response_type="ephemeral", replace_original=False)


def _repost(services: SlackServices, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
    parsed = parse_repost_value(str(action.get("value", "")))
    if parsed is None:
        respond(text="That button does not belong to an incident.", response_type="ephemeral", replace_original=False)
        return
    incident_id, route = parsed
    write_click(
        services,
        body,
        action,
        respond,
        operations.REPOST,
        Command("repost", incident_id),
        lambda invocation: operations.repost(invocation, route),
    )


def _not_related(services: SlackServices, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
    parsed = parse_joined_value(str(action.get("value", "")))
    if parsed is None:
        respond(
            text="That button does not belong to an incident's alerts.",
            response_type="ephemeral",
            replace_original=False,
        )
        return
    incident_id, alert_ids = parsed
    write_click(
        services,
        body,
        action,
        respond,
        operations.CORRECT,
        Command("not_related", incident_id),
        lambda invocation: operations.not_related(invocation, alert_ids),
    )


def write_click(
    services: SlackServices,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: Respond,
    permission: str,
    command: Command,
    operation: Callable[[Invocation], str],
) -> None:
    """A click that writes: the clicker must hold ``permission``; ``operation`` runs once per click (a replayed
    click is answered, not run again) in a write transaction; its answer goes to the clicker alone."""
    user_id, user_name = clicker(body)
    services.permissions.check(user_id, permission)
    invocation = Invocation(services, command, user_id, user_name)
    answer = commands.write_once(
        services, _request_key(user_id, action), lambda session: operation(replace(invocation, session=session))
    )
    if body.get("response_url"):
        respond(text=answer, response_type="ephemeral", replace_original=False)


def _request_key(user_id: str, action: dict[str, Any]) -> str:
    return f"action:{user_id}:{action.get('action_ts')}:{action.get('action_id')}"


def _press(services: SlackServices, name: str, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
    incident_id = parse_button_value(str(action.get("value", "")))
    if incident_id is None:
        respond(text="That button does not belong to an incident.", response_type="ephemeral", replace_original=False)
        return
    user_id, user_name = clicker(body)
    answer = commands.run(services, Command(name, incident_id), user_id, user_name, _request_key(user_id, action))
    if body.get("response_url"):
        respond(text=answer, response_type="ephemeral", replace_original=False)
