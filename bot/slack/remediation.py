"""Remediation in Slack, whatever the path (modal, buttons, ``/incident actions`` and ``/incident run``): what is
said in the incident's thread, through the outbox like every thread reply, and the slash commands' handlers.

The service (:mod:`bot.remediation.service`) decides everything: who may approve, what runs, once. This module
only words its answers; every refusal the service raises reaches the person as an ephemeral message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.db.database import Database
from bot.incidents.models import Incident, IncidentAlert
from bot.ingest.models import Alert
from bot.remediation.catalogue import NAME, PARAM_NAME
from bot.remediation.models import RequestState
from bot.remediation.parameters import ResolvedRun
from bot.remediation.requests import RequestView
from bot.remediation.runner import Notice
from bot.remediation.service import Announce, RemediationError, RemediationService
from bot.slack.cards import stored_suggestions
from bot.slack.errors import UsageError
from bot.slack.grammar import quote
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus
from bot.slack.mrkdwn import escape
from bot.slack.operations import Invocation
from bot.slack.remediation_blocks import PostActions, action_line, params_text

OFF = "Remediation is off here (INCIBOT_REMEDIATION=off)."
DRY_RUN_PREFIX = "Dry run (nothing was executed): "  # the runner's dry-run notice
DRY_RUN_NOTE = "dry run: nothing is executed (INCIBOT_REMEDIATION=dry-run)"
MAX_RUN_ARGUMENTS = 20
POST_ALERTS_SCANNED = 200  # alerts read to match actions to a post (names and services repeat)
_STATES = {
    RequestState.APPROVED: "*Approved*: it runs again (same idempotency key).",
    RequestState.REQUESTED: "*Waiting for approval* again (the approvals no longer count).",
    RequestState.SUCCEEDED: "*Succeeded* (the result is below).",
    RequestState.FAILED: "*Failed* (the error is below).",
    RequestState.UNKNOWN: "*Outcome unknown*: a person must look (below).",
    RequestState.EXPIRED: "*Expired*: nothing ran.",
    RequestState.CANCELLED: "*Cancelled*: nothing ran.",
    RequestState.DRY_RUN: "*Dry run*: recorded, nothing was executed.",
}
_MARKS = {
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "unknown": ":warning:",
    "refused": ":no_entry:",
    "expired": ":hourglass:",
    "dry-run": ":memo:",
    "rerun": ":repeat:",
    "late": ":warning:",
}


class RemediationThread:
    """Posts remediation's news in incidents' threads (outbox thread replies, with buttons where a person acts),
    and keeps each request's own message current: once a request is decided, its buttons go and it says so."""

    def __init__(self, database: Database, clock: Callable[[], datetime], wake_outbox: Callable[[], None]) -> None:
        self._database = database
        self._clock = clock
        self.wake = wake_outbox

    def post(self, incident_id: int, text: str, buttons: Mapping[str, object] | None = None) -> None:
        """``text`` (mrkdwn) in the incident's thread, in a transaction of its own; ``buttons`` as
        :func:`request_message` takes them."""
        with self._database.write() as session:
            self._reply(session, incident_id, text, buttons)
        self.wake()

    def requested(self, service: RemediationService, requester_name: str) -> Announce:
        """The announcement of a new request (or of a person's re-run): what exactly would run, and Approve /
        Deny / Cancel when it needs approvals; queued in the request's own transaction."""

        def announce(session: Session, request: RequestView) -> None:
            preview = service.executor.preview(ResolvedRun(request.action, request.params, request.target))
            lines = [
                f"*{escape(requester_name, 80, one_line=True)}* requests *{request.action}* (request #{request.id})",
                f"Target: `{escape(request.target, 300, one_line=True)}`",
                f"Parameters: {params_text(request.params)}",
            ]
            if request.approvals_required:
                count = "1 approval" if request.approvals_required == 1 else f"{request.approvals_required} approvals"
                lines.append(
                    f"Needs {count} from the action's approvers (not the requester) by {request.expires_at:%H:%M} UTC."
                )
            else:
                lines.append("Needs no approval: it runs now.")
            word = "dry run: would" if service.mode == "dry-run" else "preview:"
            lines.append(f"{word} {escape(preview.removeprefix('would '), 1500)}")
            self._reply(session, request.incident_id, "\n".join(lines), _buttons(request), key=message_key(request))

        return announce

    def decided(self, who: str, verb: str) -> Announce:
        """A person's approval, denial or cancellation, said in the thread and on the request's message, in the
        decision's transaction (an approval click that found the request expired says that instead)."""
        name = escape(who, 80, one_line=True)

        def announce(session: Session, request: RequestView) -> None:
            number = f"request #{request.id} ({request.action})"
            if request.state == RequestState.EXPIRED:
                text = f":hourglass: {number} expired without enough approvals: nothing runs."
            elif verb == "denied":
                text = f":no_entry_sign: {name} denied {number}: nothing runs."
            elif verb == "cancelled":
                text = f":heavy_multiplication_x: {name} cancelled {number}: nothing runs."
            elif request.state == RequestState.REQUESTED:
                have, need = len(request.approved_by), request.approvals_required
                text = f":ballot_box_with_check: {name} approved request #{request.id} ({have} of {need})"
                text += "; one more needed."
            else:
                text = f":ballot_box_with_check: {name} approved {number}: it runs now."
            self._reply(session, request.incident_id, text)
            self._edit(session, request, text)

        return announce

    def notify(self, notice: Notice) -> None:
        """The runner's hook: a result, a refusal at run time, or an unknown outcome that a person must look at
        (with a button that starts a new round of approvals); the request's message says the state too."""
        request = notice.request
        mark = _MARKS.get(notice.event, ":information_source:")
        head = f"{mark} Request #{request.id} *{request.action}* on `{escape(request.target, 300, one_line=True)}`"
        said = notice.text
        if notice.event == "dry-run":  # the runner says what it did not execute: say it as "would"
            said = "dry run: would " + said.removeprefix(DRY_RUN_PREFIX)
        buttons = None
        if notice.event == "unknown":
            buttons = {"kind": "rerun", "request": request.id, "fingerprint": request.fingerprint}
        with self._database.write() as session:
            self._reply(session, request.incident_id, f"{head}: {escape(said, 2500)}", buttons)
            if notice.event != "late":  # the message already says how it ended
                self._edit(session, request, f"{mark} {_STATES.get(request.state, str(request.state))}")
        self.wake()

    def _reply(
        self,
        session: Session,
        incident_id: int,
        text: str,
        buttons: Mapping[str, object] | None = None,
        key: str | None = None,
    ) -> None:
        incident = session.get(Incident, incident_id)
        if incident is None:
            return
        now = self._clock()
        payload: dict[str, object] = {"text": text}
        if buttons:
            payload["remediation"] = dict(buttons)
        session.add(
            OutboxItem(
                kind=OutboxKind.THREAD_REPLY,
                incident_id=incident_id,
                channel=incident.slack_channel or "",
                payload=payload,
                coalesce_key=key,
                not_before=now,
                created_at=now,
            )
        )
        session.flush()

    def _edit(self, session: Session, request: RequestView, status: str) -> None:
        """Queue the edit of the request's message (one pending edit per message: a later one replaces it)."""
        post = session.scalar(select(OutboxItem.id).where(OutboxItem.coalesce_key == message_key(request)))
        if post is None:  # not announced through here (or its incident was merged away)
            return
        payload: dict[str, object] = {"post": post, "status": status}
        buttons = _buttons(request)
        if buttons:
            payload["remediation"] = buttons
        now = self._clock()
        values = {
            "kind": OutboxKind.REMEDIATION_EDIT,
            "incident_id": request.incident_id,
            "channel": "",
            "payload": payload,
            "status": OutboxStatus.PENDING,
            "coalesce_key": f"remediation-edit:{post}",
            "attempts": 0,
            "not_before": now,
            "created_at": now,
            "ambiguous": False,
        }
        insert_ = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        statement = insert_(OutboxItem).values(**values)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[OutboxItem.coalesce_key], set_={"payload": statement.excluded.payload}
            )
        )


def message_key(request: RequestView) -> str:
    """Names the thread message of a request's round, so that its edits find it (unique while set)."""
    return f"remediation:{request.id}:{request.attempt}"


def _buttons(request: RequestView) -> dict[str, object] | None:
    if request.approvals_required and request.state == RequestState.REQUESTED:
        return {"kind": "decide", "request": request.id, "fingerprint": request.fingerprint}
    return None


def actions_text(service: RemediationService | None, incident_id: int) -> str:
    """``/incident actions ID``: the actions that apply, how to run each, and the requests still open."""
    if service is None or not service.enabled:
        return OFF
    with service.database.read() as session:
        suggested = runbook_actions(session, incident_id)
    try:
        actions = service.actions_for(incident_id, suggested)
    except RemediationError as exc:
        return escape(str(exc))
    if not actions:
        return f"No catalogue action applies to incident #{incident_id}."
    lines = [f"Actions for incident #{incident_id}" + (f" ({DRY_RUN_NOTE})" if service.mode == "dry-run" else "")]
    for action in actions:
        command = " ".join([f"/incident run {incident_id} {action.name}", *(f"{name}=…" for name in action.params)])
        lines.append(f"{action_line(action)}\n   `{command}`")
    pending = service.pending(incident_id)
    if pending:
        lines.append("Open requests:")
        lines += [f"• #{r.id} {r.action} on `{escape(r.target, 200, one_line=True)}` — {r.state}" for r in pending]
    return "\n".join(lines)


def parse_run(text: str) -> tuple[str, dict[str, str]]:
    """``ACTION key=value…`` (the text after the incident ID of ``/incident run``); UsageError naming the
    problem. Values are checked by the service, never here: this only splits the words."""
    words = text.split()
    if not words:
        raise UsageError("`/incident run ID ACTION key=value…` needs an action name.")
    action, *pairs = words
    if not NAME.fullmatch(action):
        raise UsageError(f"`{quote(action)}` is not an action name; `/incident actions ID` lists them.")
    if len(pairs) > MAX_RUN_ARGUMENTS:
        raise UsageError(f"Too many parameters ({len(pairs)}; at most {MAX_RUN_ARGUMENTS}).")
    given: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not PARAM_NAME.fullmatch(key):
            raise UsageError(f"`{quote(pair)}` is not a parameter: write `name=value` (no spaces).")
        if key in given:
            raise UsageError(f"`{key}` is given twice.")
        given[key] = value
    return action, given


def run_request(
    service: RemediationService | None,
    thread: RemediationThread,
    incident_id: int,
    text: str,
    user_id: str,
    user_name: str,
) -> str:
    """``/incident run ID ACTION key=value…``: the same request the modal makes; the ephemeral answer."""
    if service is None or not service.enabled:
        return OFF
    action, given = parse_run(text)
    try:
        request = service.request(incident_id, action, given, user_id, thread.requested(service, user_name))
    except RemediationError as exc:
        return f"Not requested: {escape(str(exc), 600)}"
    thread.wake()
    return requested_answer(request)


def requested_answer(request: RequestView) -> str:
    if request.approvals_required and request.state == RequestState.REQUESTED:
        return f"Requested #{request.id} ({request.action}); its approvers were asked in the incident's thread."
    return f"Requested #{request.id} ({request.action}); it needs no approval and runs now."


PARAM_FIELD = re.compile(rf"({PARAM_NAME.pattern}): ")


def refused_field(error: RemediationError) -> str | None:
    """The parameter a refusal names (the service says ``name: why``), or None."""
    match = PARAM_FIELD.match(str(error))
    return match.group(1) if match else None


def runbook_actions(session: Session, incident_id: int) -> tuple[str, ...]:
    """The actions named by the front matter of the runbooks suggested for the incident (stored with it)."""
    stored = stored_suggestions(session, incident_id)
    return stored.runbook_actions if stored is not None else ()


def post_actions(service: RemediationService | None, session: Session, incident: Incident) -> PostActions | None:
    """The actions an incident's post offers: those its suggested runbooks name, and those that apply to its
    alert names, services and category (in the outbox's transaction); None while remediation is off or for a
    closed incident."""
    if service is None or not service.enabled or incident.status == "resolved" or incident.merged_into is not None:
        return None
    rows = session.execute(
        select(Alert.alertname, Alert.labels)
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident.id)
        .limit(POST_ALERTS_SCANNED)
    ).all()
    services = {str(labels["service"]) for _name, labels in rows if labels.get("service")}
    if incident.service:
        services.add(incident.service)
    names = {str(name) for name, _labels in rows}
    suggested = runbook_actions(session, incident.id)
    actions = service.catalogue.matching(None, incident.category, services, suggested, alertnames=names)
    return PostActions(tuple(actions), service.mode) if actions else None


def actions_command(invocation: Invocation) -> str:
    """``/incident actions ID``."""
    return actions_text(invocation.services.remediation, invocation.incident_id)


def run_command(invocation: Invocation) -> str:
    """``/incident run ID ACTION key=value…``."""
    services = invocation.services
    assert services.remediation_thread is not None
    return run_request(
        services.remediation,
        services.remediation_thread,
        invocation.incident_id,
        invocation.text,
        invocation.user_id,
        invocation.user_name,
    )
