"""The outbox's message kinds in one table: for each, how its Slack call is prepared (rendered from the incident
as it is when sent), what it needs first, how a lost answer is reconciled, which refusals it recovers from, and
what its success records."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.agent.handover import confirmation, confirmation_waits, incident_of
from bot.agent.notify import resolved_text
from bot.incidents.models import Incident
from bot.rootcause.ranking import ranking_fingerprint, stored_ranking
from bot.slack import blocks, mrkdwn
from bot.slack.cards import alert_counts, alert_id_span, alert_lines, join_reasons, stored_suggestions
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus
from bot.slack.remediation_blocks import edited_request, request_message
from bot.slack.status_changes import newest_entry, reported_up_to, status_entries, status_text
from bot.slack.summary_blocks import CAUSE_QUESTION, cause_question

METADATA_EVENT = "incibot_outbox"


@dataclass
class Call:
    """One item's Slack write, prepared."""

    item_id: int
    kind: OutboxKind
    incident_id: int | None  # None: the virtual agent's messages
    channel: str  # an id once resolved; a name until then; "" for a kind outside any channel
    method: str
    args: dict[str, Any]
    ambiguous_before: bool  # an earlier try may have reached Slack
    thread_ts: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reconciled: bool = False  # looked for an earlier try's message and found none

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]


@dataclass
class Render:
    """What preparing a call may read and change (in the worker's first transaction)."""

    session: Session
    item: OutboxItem
    subject: Incident | None  # None: an item of no incident (the virtual agent's)
    card: Callable[[Session, Incident], blocks.IncidentCard]

    @property
    def incident(self) -> Incident:
        """The item's incident (every kind but the agent's has one)."""
        assert self.subject is not None, f"outbox item {self.item.id} has no incident"
        return self.subject

    def call(self, method: str, args: dict[str, Any], **more: Any) -> Call:
        kind, channel = OutboxKind(self.item.kind), str(args.get("channel", ""))
        return Call(self.item.id, kind, self.item.incident_id, channel, method, args, self.item.ambiguous, **more)

    @property
    def metadata(self) -> dict[str, Any]:
        """Carried by every message the outbox creates: how a lost answer is found again."""
        return {
            "event_type": METADATA_EVENT,
            "event_payload": {"outbox_id": self.item.id, "incident_id": self.item.incident_id},
        }

    @property
    def channel(self) -> str:
        return self.incident.slack_channel or self.item.channel


class Recovery(enum.Enum):
    """What to do when Slack refuses an item with a given error."""

    REPOST = "repost"  # the main message is gone: post it again, then retry
    NEXT_NAME = "next_name"  # the channel name is taken: try the next one
    REJOIN = "rejoin"  # the bot is not (or no longer) in the channel: join it, then retry


@dataclass(frozen=True)
class Kind:
    method: str
    prepare: Callable[[Render], Call]
    complete: Callable[[Session, Incident, Call, dict[str, Any]], bool] = lambda *_: False
    """Record a success; True when the main message must be re-rendered."""
    creates_message: bool = False  # a lost answer makes the item ambiguous: look for it before sending again
    needs_post: bool = False  # waits for the incident's main message
    coalesced: bool = False  # later changes queue a fresh item once this one renders
    in_channel: bool = True  # the call targets a channel the bot must be able to read
    invites_responders: bool = False
    recoveries: Mapping[str, Recovery] = field(default_factory=dict)
    waits: Callable[[Session, OutboxItem, datetime], bool] = lambda *_: False  # True: what it needs is not there yet
    ordered: bool = True  # keeps its place among its incident's (conversation's) items: a later one waits for it


def fingerprint(session: Session, incident: Incident) -> list[Any]:
    """What the main message shows that can change."""
    found = stored_suggestions(session, incident.id) is not None
    state = [str(incident.status), incident.alert_count, incident.commander, incident.severity, incident.title]
    return [*state, found, incident.merged_into, incident.category, ranking_fingerprint(session, incident.id)]


def _prepare_post(r: Render) -> Call:
    card = r.card(r.session, r.incident)
    r.incident.alerts_reported = card.alert_count  # the post lists them; "joined" replies start after
    args = {"channel": r.item.channel, **blocks.incident_message(card), "metadata": r.metadata}
    return r.call("chat.postMessage", args, extra={"rendered": fingerprint(r.session, r.incident)})


def _complete_post(session: Session, incident: Incident, call: Call, response: dict[str, Any]) -> bool:
    incident.slack_channel = str(response.get("channel") or call.channel)
    incident.slack_ts = str(response["ts"])
    return bool(call.extra.get("rendered") != fingerprint(session, incident))  # changed while on its way


def _prepare_update(r: Render) -> Call:
    message = blocks.incident_message(r.card(r.session, r.incident))
    return r.call("chat.update", {"channel": r.channel, "ts": r.incident.slack_ts, **message})


def _prepare_reply(r: Render) -> Call:
    text = blocks.thread_text(str(r.item.payload.get("text", "")))
    repost_to = r.item.payload.get("repost_to")  # a person's category moved its route: offer to re-post it there
    message = blocks.route_note(text, r.incident.id, str(repost_to)) if repost_to else {"text": text}
    if "remediation" in r.item.payload:  # a remediation request or outcome (mrkdwn already), with its buttons
        message = request_message(str(r.item.payload.get("text", "")), r.item.payload["remediation"])
    if r.item.payload.get(CAUSE_QUESTION):  # after a resolve: pick the cause among the ranking's candidates
        stored = stored_ranking(r.session, r.incident.id)
        message = cause_question(text, r.incident.id, stored.candidates if stored is not None else ())
    args = {"channel": r.channel, "thread_ts": r.incident.slack_ts, **message, "metadata": r.metadata}
    return r.call("chat.postMessage", args, thread_ts=r.incident.slack_ts)


def _complete_reply(session: Session, incident: Incident, call: Call, response: dict[str, Any]) -> bool:
    item = session.get(OutboxItem, call.item_id)
    if item is not None and "remediation" in item.payload:  # a remediation request's message: its edits need it
        item.payload = {**item.payload, "ts": str(response["ts"])}
    return False


def _request_post(session: Session, item: OutboxItem) -> OutboxItem | None:
    return session.get(OutboxItem, int(item.payload.get("post", 0)))


def _request_not_posted(session: Session, item: OutboxItem, _now: datetime) -> bool:
    post = _request_post(session, item)
    return post is not None and post.status == OutboxStatus.PENDING


def _prepare_request_edit(r: Render) -> Call:
    """The request's message as first posted, its buttons replaced and its state said (a message that never
    went out has no ``ts``: Slack refuses the edit and the item fails, which is all there is to do)."""
    post = _request_post(r.session, r.item)
    original = post.payload if post is not None else {}
    message = edited_request(str(original.get("text", "")), str(r.item.payload.get("status", "")), r.item.payload)
    return r.call("chat.update", {"channel": r.channel, "ts": str(original.get("ts", "")), **message})


def _prepare_joined(r: Render) -> Call:
    start = int(r.item.payload.get("from", r.incident.alerts_reported))
    end = int(r.item.payload.get("to", r.incident.alert_count))
    r.item.payload = {"from": start, "to": end}
    r.incident.alerts_reported = max(r.incident.alerts_reported, end)
    joined = end - start
    lines = alert_lines(r.session, r.incident.id, offset=start)
    counts = alert_counts(r.session, r.incident.id, offset=start, limit=joined) if joined > len(lines) else None
    noun = "alert joined" if joined == 1 else "alerts joined"
    text = f"{joined} {noun}:\n{blocks.alert_list(lines, joined, counts)}"
    reasons = join_reasons(r.session, r.incident.id, offset=start, limit=joined)
    if reasons:
        text += "\n" + "\n".join(f"Why: {mrkdwn.escape(reason, 600, one_line=True)}" for reason in reasons)
    alert_ids = alert_id_span(r.session, r.incident.id, offset=start, limit=joined) if joined > 0 else None
    message = blocks.joined_message(text, r.incident.id, alert_ids)
    args = {"channel": r.channel, "thread_ts": r.incident.slack_ts, **message, "metadata": r.metadata}
    return r.call("chat.postMessage", args, thread_ts=r.incident.slack_ts)


def _prepare_status(r: Render) -> Call:
    after = int(r.item.payload.get("after", reported_up_to(r.session, r.item)))
    upto = int(r.item.payload.get("upto", newest_entry(r.session, r.incident.id)))
    r.item.payload = {"after": after, "upto": upto}  # a retry renders the same reply
    text = status_text(status_entries(r.session, r.incident.id, after, upto))
    args = {"channel": r.channel, "thread_ts": r.incident.slack_ts, "text": text, "metadata": r.metadata}
    return r.call("chat.postMessage", args, thread_ts=r.incident.slack_ts)


def _prepare_pointer(r: Render) -> Call:
    payload = r.item.payload
    where = mrkdwn.channel(r.incident.slack_channel or str(payload.get("incident_channel", "")))
    text = (
        f"{mrkdwn.escape(str(payload.get('alertname', '')), 200, one_line=True)}"
        f" on {mrkdwn.escape(str(payload.get('service') or 'an unnamed service'), 200, one_line=True)}"
        f" joined #{r.incident.id} in {where}: {mrkdwn.escape(str(payload.get('reason', '')), 1500, one_line=True)}"
    )
    args = {"channel": r.item.channel, "text": text, "metadata": r.metadata}
    return r.call("chat.postMessage", args)


def _prepare_agent_dm(r: Render) -> Call:
    return r.call("chat.postMessage", {"channel": r.item.channel, "text": resolved_text(r.incident)})


def _prepare_agent_answer(r: Render) -> Call:
    """The answer as the agent wrote it (escaped already), edited into its placeholder ``ts``."""
    payload = r.item.payload
    message = {"text": str(payload.get("text", "")), "blocks": payload.get("blocks") or []}
    return r.call("chat.update", {"channel": r.item.channel, "ts": str(payload.get("ts", "")), **message})


def _prepare_agent_reply(r: Render) -> Call:
    """A line (mrkdwn, escaped already) in the asker's conversation, in its thread."""
    payload = r.item.payload
    args = {"channel": r.item.channel, "thread_ts": payload.get("thread_ts"), "text": str(payload.get("text", ""))}
    return r.call("chat.postMessage", {**args, "unfurl_links": False})


def _prepare_agent_reported(r: Render) -> Call:
    """The reporter's confirmation: the report's incident, linked to its post (or that the report is stored)."""
    payload = r.item.payload
    alert_id = payload.get("alert_id")
    incident = incident_of(r.session, int(alert_id)) if alert_id is not None else None
    workspace = payload.get("workspace")
    text = confirmation(incident, str(workspace) if workspace else None)
    args = {"channel": r.item.channel, "thread_ts": payload.get("thread_ts") or None, "text": text}
    return r.call("chat.postMessage", {**args, "unfurl_links": False})


def _prepare_channel(r: Render) -> Call:
    suffix = int(r.item.payload.get("suffix", 0))
    return r.call("conversations.create", {"name": channel_name(r.incident, suffix)}, extra={"suffix": suffix})


def _complete_channel(session: Session, incident: Incident, call: Call, response: dict[str, Any]) -> bool:
    incident.incident_channel = str(response["channel"]["id"])
    return True  # the post links the new channel


_GONE = {"message_not_found": Recovery.REPOST, "thread_not_found": Recovery.REPOST}
_IN_CHANNEL = {"not_in_channel": Recovery.REJOIN}

KINDS: Mapping[OutboxKind, Kind] = {
    OutboxKind.POST_INCIDENT: Kind(
        "chat.postMessage", _prepare_post, _complete_post, creates_message=True, recoveries=_IN_CHANNEL
    ),
    OutboxKind.UPDATE_INCIDENT: Kind(
        "chat.update", _prepare_update, needs_post=True, coalesced=True, recoveries={**_GONE, **_IN_CHANNEL}
    ),
    OutboxKind.THREAD_REPLY: Kind(
        "chat.postMessage",
        _prepare_reply,
        _complete_reply,
        creates_message=True,
        needs_post=True,
        recoveries={**_GONE, **_IN_CHANNEL},
    ),
    OutboxKind.REMEDIATION_EDIT: Kind(
        "chat.update",
        _prepare_request_edit,
        needs_post=True,
        coalesced=True,
        recoveries=_IN_CHANNEL,
        waits=_request_not_posted,
    ),
    OutboxKind.ALERTS_JOINED: Kind(
        "chat.postMessage",
        _prepare_joined,
        creates_message=True,
        needs_post=True,
        coalesced=True,
        recoveries={**_GONE, **_IN_CHANNEL},
    ),
    OutboxKind.STATUS_CHANGES: Kind(
        "chat.postMessage",
        _prepare_status,
        creates_message=True,
        needs_post=True,
        coalesced=True,
        recoveries={**_GONE, **_IN_CHANNEL},
    ),
    OutboxKind.POINTER: Kind(
        "chat.postMessage", _prepare_pointer, creates_message=True, needs_post=True, recoveries=_IN_CHANNEL
    ),
    OutboxKind.AGENT_DM: Kind("chat.postMessage", _prepare_agent_dm, in_channel=False),
    OutboxKind.AGENT_ANSWER: Kind("chat.update", _prepare_agent_answer, in_channel=False),
    OutboxKind.AGENT_REPLY: Kind("chat.postMessage", _prepare_agent_reply, in_channel=False),
    OutboxKind.AGENT_REPORTED: Kind(
        "chat.postMessage", _prepare_agent_reported, in_channel=False, waits=confirmation_waits, ordered=False
    ),
    OutboxKind.CREATE_CHANNEL: Kind(
        "conversations.create",
        _prepare_channel,
        _complete_channel,
        in_channel=False,
        invites_responders=True,
        recoveries={"name_taken": Recovery.NEXT_NAME},
    ),
}


def channel_name(incident: Incident, suffix: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", incident.title.lower()).strip("-")[:40].strip("-") or "incident"
    name = f"inc-{incident.id}-{slug}"
    return name if suffix == 0 else f"{name}-{suffix + 1}"
