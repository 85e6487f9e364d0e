"""The outbox worker: sends queued Slack writes, paced, retried, and never twice.

Each item is handled in three steps: a short transaction prepares the call (rendering the incident as it
is now) and marks message-creating items *ambiguous*; the Slack call runs outside any transaction; a
second transaction records the result. An item left ambiguous (the connection dropped after Slack may
have accepted the post, or the process died mid-call) is reconciled before any re-post: every message
carries ``metadata`` with its outbox id, and the worker looks for it with ``conversations.history``
(or ``.replies``) first. So people see each message exactly once.

Pacing: about one message per second per channel and one edit per message every two seconds; a 429
pauses only its channel for ``Retry-After``; 5xx and connection errors back off and retry. The module
stays whole because the three steps share this state machine.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.background import BackgroundLoop
from bot.db.database import Database
from bot.incidents.models import Incident
from bot.slack import blocks
from bot.slack.cards import alert_lines, load_card, stored_suggestions
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus
from bot.slack.suggester import Suggester

log = logging.getLogger(__name__)

METADATA_EVENT = "incibot_outbox"
MAX_BACKOFF = timedelta(minutes=1)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_CREATES_MESSAGE = {OutboxKind.POST_INCIDENT, OutboxKind.THREAD_REPLY, OutboxKind.ALERTS_JOINED}
_NEEDS_POST = {OutboxKind.UPDATE_INCIDENT, OutboxKind.THREAD_REPLY, OutboxKind.ALERTS_JOINED}


@dataclass
class _Call:
    item_id: int
    kind: OutboxKind
    incident_id: int
    channel: str
    method: str
    args: dict[str, Any]
    ambiguous_before: bool
    thread_ts: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class OutboxWorker(BackgroundLoop):
    def __init__(
        self,
        database: Database,
        client: WebClient,
        clock: Callable[[], datetime],
        *,
        post_interval: timedelta = timedelta(seconds=1),
        update_interval: timedelta = timedelta(seconds=2),
        max_attempts: int = 10,
        idle_poll: float = 0.25,
        responders: frozenset[str] = frozenset(),
        echo: bool = False,
        suggester: Suggester | None = None,
    ) -> None:
        self._database = database
        self._client = client
        self._clock = clock
        self._post_interval = post_interval
        self._update_interval = update_interval
        self._max_attempts = max_attempts
        super().__init__("slack-outbox", idle_poll)
        self._responders = responders
        self._echo = echo  # log every message sent, readably (the stand-in's console view)
        self._suggester = suggester  # runbooks and similar incidents for first posts (None: search is off)
        self._paused_until: dict[str, datetime] = {}
        self._last_post: dict[str, datetime] = {}
        self._last_update: dict[int, datetime] = {}
        self._channel_ids: dict[str, str] = {}

    def stop(self) -> None:
        super().stop()
        if self._suggester is not None:
            self._suggester.stop()

    def step(self) -> int:
        try:
            return self.run_once()
        except Exception:
            log.exception("outbox pass failed")
            return 0

    # --- one pass ----------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Send every due item that pacing allows; returns how many were attempted."""
        now = self._clock()
        with self._database.read() as session:
            due = session.execute(
                select(OutboxItem.id, OutboxItem.kind, OutboxItem.channel, OutboxItem.incident_id)
                .where(OutboxItem.status == OutboxStatus.PENDING, OutboxItem.not_before <= now)
                .order_by(OutboxItem.id)
                .limit(200)
            ).all()
        attempted = 0
        waiting: set[int] = set()  # incidents with an earlier item still waiting: keep their order
        for item_id, kind, channel, incident_id in due:
            if self.stopping:
                break
            if incident_id in waiting or self._paced(OutboxKind(kind), channel, incident_id, now):
                waiting.add(incident_id)
                continue
            if kind == OutboxKind.POST_INCIDENT and self._suggester is not None:
                self._suggester.ensure(incident_id)  # waits a second at most; else they come as an edit
            if not self._handle(item_id, now):
                waiting.add(incident_id)
            attempted += 1
        return attempted

    def _pace_key(self, channel: str) -> str:
        """One key per channel, whether it was given by name or by id."""
        name = channel.lstrip("#")
        return self._channel_ids.get(name, name)

    def _paced(self, kind: OutboxKind, channel: str, incident_id: int, now: datetime) -> bool:
        key = self._pace_key(channel)
        if self._paused_until.get(key, now) > now:
            return True
        if kind is OutboxKind.UPDATE_INCIDENT:
            last = self._last_update.get(incident_id)
            return last is not None and now - last < self._update_interval
        last = self._last_post.get(key)
        return last is not None and now - last < self._post_interval

    def _handle(self, item_id: int, now: datetime) -> bool:
        """Prepare, send and record one item; False if it had to wait."""
        with self._database.write() as session:
            item = session.get(OutboxItem, item_id)
            if item is None or item.status != OutboxStatus.PENDING:
                return True
            incident = session.get(Incident, item.incident_id)
            assert incident is not None
            call = self._prepare(session, item, incident)
            if call is None:
                item.not_before = now + timedelta(seconds=1)
                return False
            item.attempts += 1
            if item.kind in (OutboxKind.UPDATE_INCIDENT, OutboxKind.ALERTS_JOINED):
                item.coalesce_key = None  # later changes queue a fresh item; this one renders now
            if item.kind in _CREATES_MESSAGE:
                item.ambiguous = True  # from here on, a retry must look before it posts
        if call.ambiguous_before and call.kind in _CREATES_MESSAGE:
            found = self._find_sent(call)
            if found is not None:
                log.info("outbox item %d was already posted (ts %s); not posting again", call.item_id, found)
                self._complete(call, {"channel": self._channel_id(call.channel), "ts": found}, now)
                return True
        try:
            response = getattr(self._client, call.method)(**call.args)
        except SlackApiError as exc:
            self._on_api_error(call, exc, now)
        except Exception as exc:  # connection dropped, timeout: Slack may have done it
            self._retry(call, now, f"{type(exc).__name__}: {exc}", ambiguous=True)
        else:
            self._complete(call, dict(response.data) if isinstance(response.data, dict) else {}, now)
        return True

    # --- preparing calls ---------------------------------------------------------------------------

    def _prepare(self, session: Session, item: OutboxItem, incident: Incident) -> _Call | None:
        """The Slack call for ``item``, rendered from the incident as it is now; None to wait."""
        kind = OutboxKind(item.kind)
        if kind in _NEEDS_POST and incident.slack_ts is None:
            return None  # the main message is not there yet
        metadata = {"event_type": METADATA_EVENT, "event_payload": {"outbox_id": item.id, "incident_id": incident.id}}
        channel = incident.slack_channel or item.channel

        def call(method: str, args: dict[str, Any], **more: Any) -> _Call:
            return _Call(
                item.id, kind, incident.id, args.get("channel", item.channel), method, args, item.ambiguous, **more
            )

        if kind is OutboxKind.POST_INCIDENT:
            card = self._card(session, incident)
            incident.alerts_reported = card.alert_count  # the post lists them; "joined" replies start after
            args = {"channel": item.channel, **blocks.incident_message(card), "metadata": metadata}
            return call("chat_postMessage", args, extra={"rendered": _fingerprint(session, incident)})
        if kind is OutboxKind.UPDATE_INCIDENT:
            message = blocks.incident_message(self._card(session, incident))
            return call("chat_update", {"channel": channel, "ts": incident.slack_ts, **message})
        if kind is OutboxKind.THREAD_REPLY:
            text = blocks.thread_text(str(item.payload.get("text", "")))
            args = {"channel": channel, "thread_ts": incident.slack_ts, "text": text, "metadata": metadata}
            return call("chat_postMessage", args, thread_ts=incident.slack_ts)
        if kind is OutboxKind.ALERTS_JOINED:
            start = int(item.payload.get("from", incident.alerts_reported))
            end = int(item.payload.get("to", incident.alert_count))
            item.payload = {"from": start, "to": end}
            incident.alerts_reported = max(incident.alerts_reported, end)
            joined = end - start
            lines = alert_lines(session, incident.id, offset=start)
            noun = "alert joined" if joined == 1 else "alerts joined"
            text = f"{joined} {noun}:\n{blocks.alert_list(lines, joined)}"
            args = {"channel": channel, "thread_ts": incident.slack_ts, "text": text, "metadata": metadata}
            return call("chat_postMessage", args, thread_ts=incident.slack_ts)
        suffix = int(item.payload.get("suffix", 0))
        return call("conversations_create", {"name": _channel_name(incident, suffix)}, extra={"suffix": suffix})

    def _card(self, session: Session, incident: Incident) -> blocks.IncidentCard:
        """The incident as its main message shows it (with suggestions when search is on)."""
        return load_card(session, incident, knowledge=self._suggester is not None)

    # --- results -----------------------------------------------------------------------------------

    def _complete(self, call: _Call, response: dict[str, Any], now: datetime) -> None:
        self._note_pacing(call, now)
        if self._echo and "text" in call.args:
            where = f"#{call.channel}" + (" (thread)" if call.thread_ts else "")
            verb = "edited" if call.method == "chat_update" else "posted"
            log.info("slack %s %s: %s", where, verb, str(call.args["text"]).replace("\n", " | "))
        with self._database.write() as session:
            item = session.get(OutboxItem, call.item_id)
            incident = session.get(Incident, call.incident_id)
            assert item is not None and incident is not None
            item.status = OutboxStatus.DONE
            item.sent_at = now
            item.ambiguous = False
            item.last_error = None
            if call.kind is OutboxKind.POST_INCIDENT:
                incident.slack_channel = str(response.get("channel") or call.channel)
                incident.slack_ts = str(response["ts"])
                self._channel_ids[call.channel] = incident.slack_channel
                if call.extra.get("rendered") != _fingerprint(session, incident):
                    self._refresh(session, incident, now)  # it changed while the post was on its way
            elif call.kind is OutboxKind.CREATE_CHANNEL:
                channel_id = str(response["channel"]["id"])
                incident.incident_channel = channel_id
                self._invite(channel_id)
                self._refresh(session, incident, now)

    def _on_api_error(self, call: _Call, exc: SlackApiError, now: datetime) -> None:
        status = exc.response.status_code
        error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
        self._note_pacing(call, now)
        if status == 429 or error == "ratelimited":
            retry_after = int(exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1)))
            self._paused_until[self._pace_key(call.channel)] = now + timedelta(seconds=retry_after)
            log.warning("Slack rate limit on %s: pausing that channel for %d s", call.channel, retry_after)
            self._retry(call, now, "ratelimited", ambiguous=False, delay=timedelta(seconds=retry_after), count=False)
        elif status >= 500:
            self._retry(call, now, f"HTTP {status}", ambiguous=call.kind in _CREATES_MESSAGE)
        elif error in ("message_not_found", "thread_not_found") and call.kind in _NEEDS_POST:
            self._repost(call, now)
        elif error == "name_taken" and call.kind is OutboxKind.CREATE_CHANNEL:
            self._retry(
                call,
                now,
                error,
                ambiguous=False,
                delay=timedelta(0),
                count=False,
                payload={"suffix": int(call.extra["suffix"]) + 1},
            )
        elif error in ("not_in_channel", "channel_not_found") and call.kind is OutboxKind.POST_INCIDENT:
            if self._join(call.channel):
                self._retry(call, now, error, ambiguous=False, delay=timedelta(0), count=False)
            else:
                self._fail(call, error)
        else:
            self._fail(call, error or f"HTTP {status}")

    def _retry(
        self,
        call: _Call,
        now: datetime,
        reason: str,
        *,
        ambiguous: bool,
        delay: timedelta | None = None,
        count: bool = True,
        payload: dict[str, Any] | None = None,
    ) -> None:
        with self._database.write() as session:
            item = session.get(OutboxItem, call.item_id)
            assert item is not None
            item.ambiguous = ambiguous
            item.last_error = reason[:2000]
            if not count:
                item.attempts -= 1
            if payload is not None:
                item.payload = {**item.payload, **payload}
            if item.attempts >= self._max_attempts:
                item.status = OutboxStatus.FAILED
                log.error(
                    "giving up on Slack write %d (%s) after %d attempts: %s", item.id, item.kind, item.attempts, reason
                )
                return
            item.not_before = now + (
                delay if delay is not None else min(MAX_BACKOFF, timedelta(seconds=2**item.attempts))
            )
            log.warning("Slack write %d (%s) will be retried: %s", item.id, item.kind, reason)

    def _fail(self, call: _Call, error: str) -> None:
        with self._database.write() as session:
            item = session.get(OutboxItem, call.item_id)
            assert item is not None
            item.status = OutboxStatus.FAILED
            item.ambiguous = False
            item.last_error = error[:2000]
        log.error("Slack refused write %d (%s): %s", call.item_id, call.kind, error)

    def _repost(self, call: _Call, now: datetime) -> None:
        """The main message is gone: post it again, re-link the incident, then retry this item."""
        with self._database.write() as session:
            incident = session.get(Incident, call.incident_id)
            assert incident is not None
            channel = incident.slack_channel or call.channel
            message = blocks.incident_message(self._card(session, incident))
        metadata = {
            "event_type": METADATA_EVENT,
            "event_payload": {"repost_of": call.item_id, "incident_id": call.incident_id},
        }
        try:
            response = self._client.chat_postMessage(channel=channel, **message, metadata=metadata)
        except Exception as exc:
            self._retry(call, now, f"re-post failed: {exc}", ambiguous=False)
            return
        with self._database.write() as session:
            incident = session.get(Incident, call.incident_id)
            assert incident is not None
            incident.slack_channel = str(response["channel"])
            incident.slack_ts = str(response["ts"])
        log.warning("incident %d's message was gone; re-posted it as %s", call.incident_id, response["ts"])
        if call.kind is OutboxKind.UPDATE_INCIDENT:
            self._complete(call, {}, now)  # the new post already shows the current state
        else:
            self._retry(call, now, "message_not_found; re-posted", ambiguous=False, delay=timedelta(0), count=False)

    # --- helpers -----------------------------------------------------------------------------------

    def _find_sent(self, call: _Call) -> str | None:
        """The ts of the message this item already posted, if Slack has it."""
        channel = self._channel_id(call.channel)
        if channel is None:
            return None
        if call.thread_ts:
            response = self._client.conversations_replies(
                channel=channel, ts=call.thread_ts, limit=200, include_all_metadata=True
            )
        else:
            response = self._client.conversations_history(channel=channel, limit=200, include_all_metadata=True)
        for message in response.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("outbox_id") == call.item_id:
                return str(message["ts"])
        return None

    def _channel_id(self, channel: str) -> str | None:
        name = channel.lstrip("#")
        if _CHANNEL_ID.match(name):
            return name
        if name not in self._channel_ids:
            cursor = None
            while True:
                page = self._client.conversations_list(
                    types="public_channel,private_channel", limit=200, exclude_archived=True, cursor=cursor
                )
                for found in page.get("channels") or []:
                    self._channel_ids[str(found["name"])] = str(found["id"])
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor or name in self._channel_ids:
                    break
        return self._channel_ids.get(name)

    def _join(self, channel: str) -> bool:
        channel_id = self._channel_id(channel)
        if channel_id is None:
            return False
        try:
            self._client.conversations_join(channel=channel_id)
        except SlackApiError as exc:
            log.error("cannot join #%s: %s", channel, exc.response.get("error"))
            return False
        return True

    def _invite(self, channel_id: str) -> None:
        users = sorted(user for user in self._responders if user.startswith(("U", "W")))
        if users:
            try:
                self._client.conversations_invite(channel=channel_id, users=",".join(users))
            except SlackApiError as exc:
                log.warning("could not invite responders to %s: %s", channel_id, exc.response.get("error"))

    def _refresh(self, session: Session, incident: Incident, now: datetime) -> None:
        session.add(
            OutboxItem(
                kind=OutboxKind.UPDATE_INCIDENT,
                incident_id=incident.id,
                channel=incident.slack_channel or "",
                payload={},
                not_before=now,
                created_at=now,
            )
        )

    def _note_pacing(self, call: _Call, now: datetime) -> None:
        if call.kind is OutboxKind.UPDATE_INCIDENT:
            self._last_update[call.incident_id] = now
        elif call.kind in _CREATES_MESSAGE:
            self._last_post[self._pace_key(call.channel)] = now


def _fingerprint(session: Session, incident: Incident) -> list[Any]:
    """What the main message shows that can change."""
    found = stored_suggestions(session, incident.id) is not None
    return [str(incident.status), incident.alert_count, incident.commander, incident.severity, incident.title, found]


def _channel_name(incident: Incident, suffix: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", incident.title.lower()).strip("-")[:40].strip("-") or "incident"
    name = f"inc-{incident.id}-{slug}"
    return name if suffix == 0 else f"{name}-{suffix + 1}"
