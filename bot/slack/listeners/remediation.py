"""Remediation's buttons and modal: "Run…" on the incident post opens the modal (``views.open`` from this click
handler, within the trigger's 3 seconds, never through the outbox); its submission becomes a request, or comes
back with the refused field marked; Approve / Deny / Cancel / Run again decide a request. The service enforces the
rules at click time; every refusal is an ephemeral message to the person who clicked, and nothing else happens."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.remediation.service import RemediationError, RemediationService
from bot.slack.listeners.clicks import clicker, say
from bot.slack.listeners.errors import reported
from bot.slack.mrkdwn import escape
from bot.slack.remediation import OFF, refused_field, requested_answer
from bot.slack.remediation_blocks import (
    APPROVE_ACTION,
    CANCEL_ACTION,
    DENY_ACTION,
    INPUT_ACTION,
    MODAL_CALLBACK,
    PARAM_BLOCK,
    RERUN_ACTION,
    RUN_ACTION,
    modal,
    param_of,
    parse_modal_metadata,
    parse_request_value,
    parse_run_value,
)
from bot.slack.services import SlackServices

NOT_OURS = "That button was not made by incibot; nothing was done."
TRIGGER_LOST = (
    "Slack did not let incibot open the form in time (it must open within 3 seconds of your click): click "
    "the button again, or use `/incident run ID ACTION key=value…`."
)
TRIGGER_ERRORS = frozenset({"expired_trigger_id", "exchanged_trigger_id", "invalid_trigger_id"})
MAX_ERROR_CHARS = 300


def register(app: App, services: SlackServices) -> None:
    @app.action(re.compile(rf"^{RUN_ACTION}-[0-9]+$"))
    def run_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        with reported(body, respond):
            _open_modal(services, client, body, action, respond)

    @app.view(MODAL_CALLBACK)
    def submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        _submit(services, ack, body, view)

    for action_id in (APPROVE_ACTION, DENY_ACTION, CANCEL_ACTION, RERUN_ACTION):

        @app.action(action_id)
        def decide(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
            ack()
            with reported(body, respond):
                _decide(services, body, action, respond)


def _service(services: SlackServices) -> RemediationService | None:
    service = services.remediation
    return service if service is not None and service.enabled else None


def _open_modal(
    services: SlackServices, client: WebClient, body: dict[str, Any], action: dict[str, Any], respond: Respond
) -> None:
    parsed = parse_run_value(str(action.get("value", "")))
    if parsed is None:
        say(respond, NOT_OURS)
        return
    service = _service(services)
    if service is None:
        say(respond, OFF)
        return
    incident_id, name = parsed
    spec = service.catalogue.get(name)
    if spec is None:
        say(respond, f"There is no action named `{name}` in the catalogue any more.")
        return
    try:
        preview = service.preview(incident_id, name, {})
        defaults = {key: str(value) for key, value in preview.run.params.items()}
        text = preview.text
    except RemediationError as exc:
        defaults, text = {}, f"shown once the parameters are filled in ({exc})"
    try:
        client.views_open(
            trigger_id=str(body.get("trigger_id", "")), view=modal(incident_id, spec, defaults, text, service.mode)
        )
    except SlackApiError as exc:
        if exc.response.get("error") not in TRIGGER_ERRORS:
            raise
        say(respond, TRIGGER_LOST)


def _submit(services: SlackServices, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
    service = _service(services)
    parsed = parse_modal_metadata(str(view.get("private_metadata", "")))
    if service is None or parsed is None:
        ack(response_action="update", view=_notice(OFF if service is None else "This form is not incibot's."))
        return
    incident_id, action = parsed
    values: Mapping[str, Any] = (view.get("state") or {}).get("values") or {}
    given: dict[str, str] = {}
    for block_id, entries in values.items():
        name = param_of(str(block_id))
        entry = (entries or {}).get(INPUT_ACTION) or {}
        value = (entry.get("selected_option") or {}).get("value") if "selected_option" in entry else entry.get("value")
        if name is not None and value is not None:
            given[name] = str(value)
    user_id, user_name = clicker(body)
    thread = services.remediation_thread
    assert thread is not None
    try:
        service.request(incident_id, action, given, user_id, thread.requested(service, user_name))
    except RemediationError as exc:
        ack(**_errors(exc, [str(block_id) for block_id in values]))
        return
    ack()  # the thread says what was requested; the modal simply closes
    thread.wake()


def _errors(error: RemediationError, blocks: list[str]) -> dict[str, Any]:
    """The answer that shows ``error`` under the refused field (else the first field, else in the modal)."""
    message = str(error)[:MAX_ERROR_CHARS]
    field = refused_field(error)
    block = f"{PARAM_BLOCK}{field}" if field and f"{PARAM_BLOCK}{field}" in blocks else None
    block = block or next((b for b in blocks if b.startswith(PARAM_BLOCK)), None)
    if block is None:
        return {"response_action": "update", "view": _notice(f"Not requested: {message}")}
    return {"response_action": "errors", "errors": {block: message}}


def _notice(text: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Run an action"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": escape(text, 2900), "verbatim": True}}],
    }


def _decide(services: SlackServices, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
    parsed = parse_request_value(str(action.get("value", "")))
    if parsed is None:
        say(respond, NOT_OURS)
        return
    service = _service(services)
    if service is None:
        say(respond, OFF)
        return
    request_id, fingerprint = parsed
    user_id, user_name = clicker(body)
    thread = services.remediation_thread
    assert thread is not None
    action_id = action.get("action_id")
    try:
        if action_id == APPROVE_ACTION:
            service.approve(request_id, user_id, fingerprint, thread.decided(user_name, "approved"))
            answer = f"You approved request #{request_id}."
        elif service.get(request_id).fingerprint != fingerprint:
            answer = f"That button does not match request #{request_id} as it stands now; nothing was done."
        elif action_id == DENY_ACTION:
            service.deny(request_id, user_id, announce=thread.decided(user_name, "denied"))
            answer = f"You denied request #{request_id}."
        elif action_id == CANCEL_ACTION:
            service.cancel(request_id, user_id, thread.decided(user_name, "cancelled"))
            answer = f"You cancelled request #{request_id}."
        else:
            answer = requested_answer(service.rerun(request_id, user_id, thread.requested(service, user_name)))
    except RemediationError as exc:
        answer = escape(str(exc), 600)
    finally:
        thread.wake()
    say(respond, answer)
