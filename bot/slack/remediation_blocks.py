"""Block Kit for remediation: the incident post's action lines and "Run…" buttons, the modal that asks for an
action's parameters with a dry-run preview, and the request posted in the thread with Approve / Deny / Cancel
(edited once it is decided: the buttons go, its state is said).

Button values are parsed strictly (:func:`parse_run_value`, :func:`parse_request_value`): a value incibot did not
make is refused before anything is looked up. The Approve button carries the request's fingerprint (action +
parameters + target), so an approval of parameters that changed since it was shown is refused by the service.
Like every builder here, nothing pings anyone, and outside text goes through :mod:`bot.slack.mrkdwn`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from bot.remediation.catalogue import NAME, PARAM_NAME, ActionSpec, ParamSpec
from bot.slack.summary_blocks import ActionHint

if TYPE_CHECKING:
    from bot.slack.blocks import IncidentCard
from bot.slack.mrkdwn import escape, plain

RUN_ACTION = "remediation_run"  # "Run…" on the incident post: opens the modal
APPROVE_ACTION = "remediation_approve"
DENY_ACTION = "remediation_deny"
CANCEL_ACTION = "remediation_cancel"  # the requester or an approver withdraws a request still waiting
RERUN_ACTION = "remediation_rerun"  # on a request whose outcome is unknown: a new round of approvals
MODAL_CALLBACK = "remediation_request"
PARAM_BLOCK = "param-"  # an input block's id: PARAM_BLOCK + the parameter's name
INPUT_ACTION = "value"
RUN_VALUE_PREFIX = "run:"
REQUEST_VALUE_PREFIX = "request:"
BUTTONS_SHOWN = 5
MAX_INPUT_CHARS = 256  # the parameters' own limit (bot.remediation.parameters.MAX_VALUE_LENGTH)
MAX_NUMBER_CHARS = 9  # an integer parameter's digits (bot.remediation.parameters)
_RUN_VALUE = re.compile(rf"run:([1-9][0-9]{{0,11}}):({NAME.pattern})")
_REQUEST_VALUE = re.compile(r"request:([1-9][0-9]{0,11}):([0-9a-f]{64})")
_METADATA = re.compile(rf'\{{"incident":([1-9][0-9]{{0,11}}),"action":"({NAME.pattern})"\}}')


def run_value(incident_id: int, action: str) -> str:
    return f"{RUN_VALUE_PREFIX}{incident_id}:{action}"


def parse_run_value(value: str) -> tuple[int, str] | None:
    """The incident and action of a "Run…" button, or None if incibot did not make that value."""
    match = _RUN_VALUE.fullmatch(value)
    return (int(match.group(1)), match.group(2)) if match else None


def request_value(request_id: int, fingerprint: str) -> str:
    return f"{REQUEST_VALUE_PREFIX}{request_id}:{fingerprint}"


def parse_request_value(value: str) -> tuple[int, str] | None:
    """The request id and fingerprint of an Approve / Deny button, or None if incibot did not make that value."""
    match = _REQUEST_VALUE.fullmatch(value)
    return (int(match.group(1)), match.group(2)) if match else None


def modal_metadata(incident_id: int, action: str) -> str:
    return orjson.dumps({"incident": incident_id, "action": action}).decode()


def parse_modal_metadata(metadata: str) -> tuple[int, str] | None:
    match = _METADATA.fullmatch(metadata)
    return (int(match.group(1)), match.group(2)) if match else None


def param_of(block_id: str) -> str | None:
    """The parameter an input block asks for, or None for a block that is not one."""
    name = block_id.removeprefix(PARAM_BLOCK)
    return name if block_id.startswith(PARAM_BLOCK) and PARAM_NAME.fullmatch(name) else None


def action_line(action: ActionSpec) -> str:
    """``• *restart-deployment* Rolling restart — risk medium, 1 approval``."""
    approvals = {0: "no approval", 1: "1 approval"}.get(action.approvals_required, "2 approvals")
    description = escape(action.description, 200, one_line=True)
    return f"• *{action.name}* {description} — risk {action.risk}, {approvals}"


@dataclass(frozen=True, slots=True)
class PostActions:
    """The catalogue actions an incident post offers, and the remediation mode (``dry-run`` says so)."""

    actions: tuple[ActionSpec, ...]
    mode: str


def with_actions(card: IncidentCard, offered: PostActions | None) -> IncidentCard:
    """``card`` offering ``offered`` (its summary's "What to do next" names them too)."""
    if offered is None or not offered.actions:
        return card
    summary = card.summary
    if summary is not None:
        hints = tuple(ActionHint(a.name, a.description, a.risk) for a in offered.actions)
        summary = replace(summary, actions=hints)
    return replace(card, actions=offered, summary=summary)


def action_blocks(incident_id: int, offered: PostActions, *, lines: bool) -> list[dict[str, Any]]:
    """A "Run…" button for each of the first few actions, after a line for each (``lines``: where the post has
    no summary naming them)."""
    buttons = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": plain(f"Run {action.name}…", 75)},
            "action_id": f"{RUN_ACTION}-{number}",
            "value": run_value(incident_id, action.name),
        }
        for number, action in enumerate(offered.actions[:BUTTONS_SHOWN])
    ]
    if not buttons:
        return []
    blocks: list[dict[str, Any]] = []
    if lines:
        head = "*Actions*" + (" (dry run: nothing is executed)" if offered.mode == "dry-run" else "")
        listed = "\n".join(action_line(action) for action in offered.actions)
        blocks.append({"type": "section", "text": _mrkdwn(f"{head}\n{listed}"[:3000])})
    blocks.append({"type": "actions", "block_id": f"remediation-{incident_id}", "elements": buttons})
    return blocks


def modal(incident_id: int, action: ActionSpec, defaults: Mapping[str, str], preview: str, mode: str) -> dict[str, Any]:
    """The "Run…" modal: the action, one input per parameter (a menu for an enum), the dry-run preview."""
    approvals = action_line(action).split(" — ", 1)[1]
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": _mrkdwn(
                f"*{action.name}* on incident #{incident_id}\n{escape(action.description, 500)}\n{approvals}"
            ),
        }
    ]
    blocks += [_input(name, spec, defaults.get(name)) for name, spec in action.params.items()]
    word = "dry run: nothing will be executed" if mode == "dry-run" else "preview"
    blocks.append({"type": "context", "elements": [_mrkdwn(escape(f"{word}: {preview}", 2900))]})
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "private_metadata": modal_metadata(incident_id, action.name),
        "title": {"type": "plain_text", "text": "Run an action"},
        "submit": {"type": "plain_text", "text": "Request"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def _input(name: str, spec: ParamSpec, default: str | None) -> dict[str, Any]:
    element: dict[str, Any]
    if spec.type == "enum":
        options = [{"text": {"type": "plain_text", "text": plain(v, 75)}, "value": v} for v in spec.values]
        element = {"type": "static_select", "action_id": INPUT_ACTION, "options": options}
        chosen = next((option for option in options if option["value"] == default), None)
        if chosen is not None:
            element["initial_option"] = chosen
    else:
        longest = min(spec.max_length, MAX_INPUT_CHARS) if spec.type == "string" else MAX_NUMBER_CHARS
        element = {"type": "plain_text_input", "action_id": INPUT_ACTION, "max_length": longest}
        if default is not None:
            element["initial_value"] = default[:MAX_INPUT_CHARS]
    block: dict[str, Any] = {
        "type": "input",
        "block_id": f"{PARAM_BLOCK}{name}",
        "label": {"type": "plain_text", "text": plain(name, 2000)},
        "element": element,
        "optional": not spec.required,
    }
    hint = spec.description or _hint(spec)
    if hint:
        block["hint"] = {"type": "plain_text", "text": plain(hint, 2000)}
    return block


def _hint(spec: ParamSpec) -> str:
    if spec.type == "integer":
        low, high = spec.min if spec.min is not None else 0, spec.max
        return f"a whole number from {low}" + (f" to {high}" if high is not None else "")
    if spec.pattern:
        return f"must match {spec.pattern}"
    return ""


def params_text(params: Mapping[str, Any]) -> str:
    """``namespace=shop replicas=3`` in code style, or "no parameters"."""
    if not params:
        return "no parameters"
    return " ".join(f"`{escape(str(key), 40)}={escape(str(value), 300)}`" for key, value in sorted(params.items()))


def request_message(text: str, buttons: Mapping[str, Any] | None) -> dict[str, Any]:
    """A remediation message in the thread (``text`` is mrkdwn already). ``buttons``: ``{"request", "fingerprint"}``
    and ``"kind"``: ``decide`` (Approve / Deny / Cancel, while it waits for approvals) or ``rerun`` (its outcome is
    unknown: a person may run it again); None for none."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": _mrkdwn(text[:3000])}]
    if buttons:
        value = request_value(int(buttons["request"]), str(buttons["fingerprint"]))
        shown = [("Approve", APPROVE_ACTION, "primary"), ("Deny", DENY_ACTION, "danger"), ("Cancel", CANCEL_ACTION, "")]
        if buttons.get("kind") == "rerun":
            shown = [("Run again…", RERUN_ACTION, "primary")]
        elements = [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": label},
                "action_id": aid,
                "value": value,
                **({"style": style} if style else {}),
            }
            for label, aid, style in shown
        ]
        blocks.append({"type": "actions", "block_id": f"request-{buttons['request']}", "elements": elements})
    return {"text": text, "blocks": blocks}


def edited_request(original: str, status: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A request's message as first posted (``original``, mrkdwn) with its state now (``status``, mrkdwn) and the
    buttons still useful (``payload["remediation"]`` as :func:`request_message` takes them; absent: none)."""
    return request_message(f"{original[:2400]}\n{status[:500]}", payload.get("remediation"))


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}
