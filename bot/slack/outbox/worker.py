"""The outbox worker: sends queued Slack writes, paced, retried, and never twice.

Each item is handled in three steps: a short transaction prepares the call (rendering the incident as it
is now) and marks message-creating items *ambiguous*; the Slack calls run outside any transaction; a
second transaction records the result. An item left ambiguous (the connection dropped after Slack may
have accepted the post, or the process died mid-call) is reconciled before any re-post: every message
carries ``metadata`` with its outbox id, and the worker looks for it with ``conversations.history``
(or ``.replies``) first. So people see each message exactly once.

Every Slack call an item needs (resolving and joining its channel, reconciling, the write itself) goes
through one gateway, and every failure through one path: a rate limit waits ``Retry-After`` without
counting an attempt; a 5xx or a dropped connection counts one and backs off; a refusal fails the item
unless its kind (:mod:`bot.slack.outbox.kinds`) recovers from it. After ``max_attempts`` the item fails.
A failing item holds back only later items of its own incident, never other incidents or channels (the virtual
agent's items, of no incident, hold back only later ones of their conversation).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.background import BackgroundLoop
from bot.db.database import Database
from bot.incidents.models import Incident
from bot.slack import blocks
from bot.slack.cards import load_card, stored_suggestions
from bot.slack.channels import ChannelDirectory
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus
from bot.slack.outbox.channels import OutboxChannels, backoff
from bot.slack.outbox.gateway import SlackFailure, SlackGateway
from bot.slack.outbox.kinds import KINDS, METADATA_EVENT, Call, Recovery, Render
from bot.slack.outbox.pacing import POST, UPDATE, Pacing
from bot.slack.outbox.reconcile import find_sent
from bot.slack.remediation_blocks import PostActions, with_actions
from bot.slack.suggester import Suggester

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(minutes=1)
WAIT_FOR_POST = timedelta(seconds=1)  # an edit or reply whose main message is not posted yet


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
        channels: Sequence[str] = (),
        echo: bool = False,
        suggester: Suggester | None = None,
        actions: Callable[[Session, Incident], PostActions | None] = lambda _session, _incident: None,
    ) -> None:
        """``channels``: the configured ones (alerts channel, routes), resolved and joined at start-up;
        ``actions``: the remediation actions a post offers (None: none)."""
        super().__init__("slack-outbox", idle_poll)
        self._database = database
        self._clock = clock
        self._max_attempts = max_attempts
        self._responders = responders
        self._echo = echo  # log every message sent, readably (the stand-in's console view)
        self._suggester = suggester  # runbooks and similar incidents for first posts (None: search is off)
        self._actions = actions
        self._gateway = SlackGateway(client, Pacing(post_interval, update_interval), clock)
        self._channels = OutboxChannels(ChannelDirectory(client), self._gateway, channels, max_backoff=MAX_BACKOFF)

    @property
    def suggester(self) -> Suggester | None:
        return self._suggester

    def start(self) -> None:
        if self._suggester is not None:
            self._suggester.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        if self._suggester is not None:
            self._suggester.stop()

    # --- one pass ----------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Send every due item that pacing allows, first posts first; returns how many were attempted."""
        now = self._clock()
        self._channels.set_up(now)
        with self._database.read() as session:
            due = session.execute(
                select(OutboxItem.id, OutboxItem.kind, OutboxItem.channel, OutboxItem.incident_id)
                .outerjoin(Incident, Incident.id == OutboxItem.incident_id)
                .where(OutboxItem.status == OutboxStatus.PENDING, OutboxItem.not_before <= now)
                # New incidents' first posts before the rest: in a storm, replies to the incidents already
                # posted would otherwise take every post a channel allows (one a second) while new ones wait.
                # A posted incident's items (a re-post in another route included) keep their order.
                .order_by(~((OutboxItem.kind == OutboxKind.POST_INCIDENT) & Incident.slack_ts.is_(None)), OutboxItem.id)
                .limit(200)
            ).all()
        attempted = 0
        waiting: set[int | str] = set()  # incidents (conversations) with an earlier item waiting: keep their order
        for item_id, kind, channel, incident_id in due:
            if self.stopping:
                break
            order = incident_id if incident_id is not None else f"conversation:{channel}"
            if not KINDS[OutboxKind(kind)].ordered:
                order = f"item:{item_id}"
            if order in waiting or self._paced(OutboxKind(kind), channel, incident_id, now):
                waiting.add(order)
                continue
            if self._handle(item_id, now):
                attempted += 1
            else:
                waiting.add(order)
        return attempted

    def _paced(self, kind: OutboxKind, channel: str, incident_id: int | None, now: datetime) -> bool:
        method = KINDS[kind].method
        key = self._channels.key(channel) if channel else None
        return self._gateway.pacing.ready_at(method, now, channel=key, message=incident_id) > now

    def _handle(self, item_id: int, now: datetime) -> bool:
        """Prepare, send and record one item; False if it was not its turn yet (nothing was sent)."""
        with self._database.write() as session:
            item = session.get(OutboxItem, item_id)
            if item is None or item.status != OutboxStatus.PENDING:
                return True
            incident = session.get(Incident, item.incident_id) if item.incident_id is not None else None
            spec = KINDS[OutboxKind(item.kind)]
            wait_until = self._not_ready_until(session, item, incident, now)
            if wait_until is not None:
                item.not_before = wait_until
                if item.kind == OutboxKind.POST_INCIDENT:  # waiting for suggestions: not a poll longer
                    self._wake_at(wait_until - now)
                return False
            call = spec.prepare(Render(session, item, incident, self._card))
            item.attempts += 1
            if spec.coalesced:
                item.coalesce_key = None  # later changes queue a fresh item; this one renders now
            if spec.creates_message:
                item.ambiguous = True  # from here on, a retry must look before it posts
        try:
            response = self._send(call)
        except SlackFailure as failure:
            self._on_failure(call, failure, now)
        except Exception as exc:  # a bug, not Slack: count the attempt, keep the pass going
            log.exception("outbox item %d (%s) failed unexpectedly", call.item_id, call.kind)
            self._retry(call, now, f"{type(exc).__name__}: {exc}", ambiguous=call.spec.creates_message)
        else:
            self._complete(call, response, now)
        return True

    def _not_ready_until(
        self, session: Session, item: OutboxItem, incident: Incident | None, now: datetime
    ) -> datetime | None:
        """When ``item`` may be sent, if not now: after its main message; a first post after its suggestions,
        or when they have had their time (``Suggester.budget`` after the incident opened)."""
        spec = KINDS[OutboxKind(item.kind)]
        if (spec.needs_post and incident is not None and incident.slack_ts is None) or spec.waits(session, item, now):
            return now + WAIT_FOR_POST
        if item.kind == OutboxKind.POST_INCIDENT and incident is not None and self._suggester is not None:
            deadline = item.created_at + timedelta(seconds=self._suggester.budget)
            if deadline > now and stored_suggestions(session, incident.id) is None:
                return deadline  # the suggester makes the post due as soon as it stores them
        return None

    def _wake_at(self, delay: timedelta) -> None:
        timer = threading.Timer(delay.total_seconds(), self.wake)
        timer.daemon = True
        timer.start()

    def _card(self, session: Session, incident: Incident) -> blocks.IncidentCard:
        """The incident as its main message shows it (with suggestions when search is on)."""
        card = load_card(session, incident, knowledge=self._suggester is not None)
        return with_actions(card, self._actions(session, incident))

    # --- sending -----------------------------------------------------------------------------------

    def _send(self, call: Call) -> dict[str, Any]:
        """Every Slack call ``call`` needs: its channel, a look for an earlier try's message, the write."""
        spec = call.spec
        if spec.in_channel and call.channel:
            if call.ambiguous_before and spec.creates_message:
                call.channel = call.args["channel"] = self._channels.readable(call.channel)
                found = find_sent(self._gateway, call, call.channel)
                if found is not None:
                    log.info("outbox item %d was already posted (ts %s); not posting again", call.item_id, found)
                    return {"channel": call.channel, "ts": found}
                call.reconciled = True
            else:
                call.channel = call.args["channel"] = self._channels.resolved(call.channel)
        return self._gateway.call(
            call.method,
            call.args,
            channel=call.channel if call.method == POST else None,
            message=call.incident_id if call.method == UPDATE else None,
            write=spec.creates_message,
        )

    # --- results -----------------------------------------------------------------------------------

    def _complete(self, call: Call, response: dict[str, Any], now: datetime) -> None:
        if self._echo and "text" in call.args:
            where = f"#{call.channel}" + (" (thread)" if call.thread_ts else "")
            verb = "edited" if call.method == UPDATE else "posted"
            log.info("slack %s %s: %s", where, verb, str(call.args["text"]).replace("\n", " | "))
        with self._database.write() as session:
            item = session.get(OutboxItem, call.item_id)
            incident = session.get(Incident, call.incident_id) if call.incident_id is not None else None
            assert item is not None
            item.status = OutboxStatus.DONE
            item.sent_at = now
            item.ambiguous = False
            item.last_error = None
            if call.channel and call.spec.in_channel:
                item.channel = str(response.get("channel") or call.channel)  # the id, once Slack said it
            if incident is not None and call.spec.complete(session, incident, call, response):
                self._refresh(session, incident, now)
        if call.spec.invites_responders:
            self._invite(str(response["channel"]["id"]))

    def _on_failure(self, call: Call, failure: SlackFailure, now: datetime, *, recover: bool = True) -> None:
        """The one path for every failed Slack call of an item (``recover``: try its kind's recovery)."""
        # Still ambiguous: a write whose answer was lost, or an earlier try not yet looked for.
        ambiguous = call.spec.creates_message and (
            failure.maybe_done or (call.ambiguous_before and not call.reconciled)
        )
        recovery = call.spec.recoveries.get(failure.error) if recover else None
        if failure.retry_after is not None:
            self._retry(call, now, str(failure), ambiguous=ambiguous, delay=failure.retry_after, count=False)
        elif failure.transient:
            self._retry(call, now, str(failure), ambiguous=ambiguous)
        elif recovery is Recovery.REPOST:
            self._repost(call, now)
        elif recovery is Recovery.NEXT_NAME:
            payload = {"suffix": int(call.extra["suffix"]) + 1}
            self._retry(call, now, failure.error, ambiguous=False, delay=timedelta(0), count=False, payload=payload)
        elif recovery is Recovery.REJOIN:
            try:
                call.channel = self._channels.rejoin(call.channel)
            except SlackFailure as again:
                self._on_failure(call, again, now, recover=False)
            else:
                self._retry(call, now, failure.error, ambiguous=ambiguous, delay=timedelta(0))
        else:
            self._fail(call, failure)

    def _retry(
        self,
        call: Call,
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
            if call.channel and call.spec.in_channel:
                item.channel = call.channel  # keep what was resolved
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
            item.not_before = now + (delay if delay is not None else backoff(item.attempts, MAX_BACKOFF))
            log.warning("Slack write %d (%s) will be retried: %s", item.id, item.kind, reason)

    def _fail(self, call: Call, failure: SlackFailure) -> None:
        with self._database.write() as session:
            item = session.get(OutboxItem, call.item_id)
            assert item is not None
            item.status = OutboxStatus.FAILED
            item.ambiguous = False
            item.last_error = str(failure)[:2000]
        log.error("Slack refused write %d (%s): %s", call.item_id, call.kind, failure)

    def _repost(self, call: Call, now: datetime) -> None:
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
        args = {"channel": channel, **message, "metadata": metadata}
        try:
            response = self._gateway.call(POST, args, channel=self._channels.key(channel))
        except SlackFailure as failure:
            self._on_failure(call, failure, now, recover=False)
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

    def _invite(self, channel_id: str) -> None:
        """Invite the responders; ``force``: one unknown or deactivated user must not keep the others out."""
        users = sorted(user for user in self._responders if user.startswith(("U", "W")))
        if not users:
            return
        try:
            answer = self._gateway.call(
                "conversations.invite", {"channel": channel_id, "users": ",".join(users), "force": True}
            )
        except SlackFailure as failure:
            log.warning("could not invite responders to %s: %s", channel_id, failure)
            return
        for refused in answer.get("errors") or []:
            log.warning("could not invite %s to %s: %s", refused.get("user"), channel_id, refused.get("error"))

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
