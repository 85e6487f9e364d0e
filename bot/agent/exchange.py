"""Questions in, answers out, in Slack: a question (DM, @-mention, ``/ask``) gets "looking…" in its thread at
once, then that message is edited into the answer: at once, and through the outbox when that edit fails (a rate
limit at Slack: the outbox waits Retry-After) or the process dies before it (the answer is queued with its record,
due :data:`ANSWER_GRACE` later unless the direct edit succeeded). Follow-ups in the thread carry the previous
question and answer as context; each user may ask ``rate`` questions per period; "Notify me when resolved"
subscribes the user to an incident (the DM is sent through the outbox when it resolves, :mod:`bot.agent.notify`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from bot.agent.answers import LOOKING, Answer, Asker, abstain_answer
from bot.agent.models import AgentQuestion, AgentSubscription
from bot.agent.service import AgentService
from bot.db.database import Database
from bot.incidents.models import OPEN_STATUSES, Incident
from bot.settings import Rate
from bot.slack import mrkdwn
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus
from bot.slack.outbox.pacing import retry_after

log = logging.getLogger(__name__)

MAX_QUESTION = 2000
_LEADING_MENTION = re.compile(r"^\s*<@[A-Z0-9]+(\|[^>]*)?>[\s,:]*")
EMPTY = 'Ask me whether something is down ("is checkout slow?") or how to do something ("how do I reset my password?").'
FAILED = "Something went wrong while I was looking."
NOT_FOUND = "I can't tell you about that incident."
ALREADY_RESOLVED = "That incident is already resolved."
ANSWER_GRACE = timedelta(seconds=5)  # the outbox edits the answer in after this unless the direct edit did


def question_text(text: str) -> str:
    """The question in a message: without the leading @-mention of the bot."""
    return _LEADING_MENTION.sub("", text, count=1).strip()


class AgentExchange:
    """The Slack side of the agent; ``responder(user)`` says whether a user is a responder (never, when
    ``INCIBOT_RESPONDERS`` is unset); ``visible(incident)`` whether an end user may see it."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime],
        client: WebClient,
        service: AgentService,
        *,
        responder: Callable[[str], bool],
        visible: Callable[[Incident], bool],
        rate: Rate,
        wake_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._client = client
        self.service = service
        self._responder = responder
        self._visible = visible
        self._rate = rate
        self._wake_outbox = wake_outbox

    def asker(self, user: str) -> Asker:
        return Asker(user, self._responder(user))

    def on_message(self, *, user: str, channel: str, ts: str, thread_ts: str | None, text: str) -> None:
        """A DM or a mention: answered in the message's thread."""
        self.ask(user, channel, thread_ts or ts, question_text(text))

    def ask_in_dm(self, user: str, question: str) -> str:
        """``/ask``: the question, quoted in the user's DM, answered in its thread; returns the DM's id."""
        dm = self.open_dm(user)
        asked = self._client.chat_postMessage(
            channel=dm, text=f"You asked: {mrkdwn.escape(question, MAX_QUESTION, one_line=True)}", unfurl_links=False
        )
        self.ask(user, dm, str(asked["ts"]), question)
        return dm

    def ask(self, user: str, channel: str, thread_ts: str, question: str) -> int | None:
        """Answer ``question`` in ``channel``'s thread ``thread_ts``; the stored question's id (None: not asked,
        the text was empty or the user is over the rate limit)."""
        question = question.strip()[:MAX_QUESTION]
        if not question:
            self._post(channel, thread_ts, EMPTY)
            return None
        question_id, context = self._record(user, channel, thread_ts, question)
        if question_id is None:
            self._post(channel, thread_ts, self._limited())
            return None
        placeholder = self._post(channel, thread_ts, LOOKING)
        try:
            answer = self.service.answer(question, self.asker(user), context, question_id=question_id)
        except Exception:  # the user always gets an answer, and a way to a person
            log.exception("the virtual agent failed on question %d", question_id)
            answer = abstain_answer(question_id, note=FAILED)
        item_id = self._store(question_id, channel, placeholder, answer)  # before its buttons can be clicked
        self._deliver(item_id, channel, placeholder, answer)
        return question_id

    def subscribe(self, user: str, incident_id: int) -> str:
        """ "Notify me when resolved": the text to show the user."""
        with self._database.read() as session:
            incident = session.get(Incident, incident_id)
            if incident is None or not (self._responder(user) or self._visible(incident)):
                return NOT_FOUND
            if incident.status not in OPEN_STATUSES:
                return ALREADY_RESOLVED
        dm = self.open_dm(user)
        try:
            with self._database.write() as session:
                session.add(
                    AgentSubscription(incident_id=incident_id, user_id=user, dm_channel=dm, created_at=self._clock())
                )
        except IntegrityError:
            pass  # subscribed already: one DM is enough
        return f"I'll send you a direct message when #{incident_id} is resolved."

    def open_dm(self, user: str) -> str:
        return str(self._client.conversations_open(users=user)["channel"]["id"])

    def _record(self, user: str, channel: str, thread_ts: str, question: str) -> tuple[int | None, str | None]:
        now = self._clock()
        with self._database.write() as session:
            recent = session.scalar(
                select(func.count())
                .select_from(AgentQuestion)
                .where(AgentQuestion.asker == user, AgentQuestion.asked_at > now - self._rate.per)
            )
            if (recent or 0) >= self._rate.limit:
                return None, None
            previous = session.scalars(
                select(AgentQuestion)
                .where(AgentQuestion.channel == channel, AgentQuestion.thread_ts == thread_ts)
                .order_by(AgentQuestion.id.desc())
                .limit(1)
            ).first()
            context = f"{previous.question}\n{previous.answer or ''}".strip() if previous is not None else None
            row = AgentQuestion(asker=user, channel=channel, thread_ts=thread_ts, question=question, asked_at=now)
            session.add(row)
            session.flush()
            return row.id, context

    def _store(self, question_id: int, channel: str, reply_ts: str, answer: Answer) -> int:
        """Record the answer and queue its edit in the outbox (due after :data:`ANSWER_GRACE`); the item's id."""
        now = self._clock()
        with self._database.write() as session:
            row = session.get(AgentQuestion, question_id)
            if row is not None:
                row.reply_ts = reply_ts
                row.kind = answer.kind
                row.answer = answer.plain
                row.confidence = answer.confidence
                row.sources = answer.sources
                row.answered_at = now
            item = OutboxItem(
                kind=OutboxKind.AGENT_ANSWER,
                incident_id=None,
                channel=channel,
                payload={"ts": reply_ts, "text": answer.text, "blocks": answer.blocks},
                not_before=now + ANSWER_GRACE,
                created_at=now,
            )
            session.add(item)
            session.flush()
            return item.id

    def _deliver(self, item_id: int, channel: str, placeholder: str, answer: Answer) -> None:
        """Edit the answer in now; if Slack refuses (rate limited: after Retry-After) the outbox does it."""
        now = self._clock()
        try:
            self._client.chat_update(channel=channel, ts=placeholder, text=answer.text, blocks=answer.blocks)
        except Exception as exc:  # rate limited, Slack unreachable: the queued edit is sent by the outbox
            wait = retry_after(exc) if isinstance(exc, SlackApiError) else None
            log.warning("answer %d: the edit failed (%s); the outbox sends it", item_id, exc)
            with self._database.write() as session:
                session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.id == item_id, OutboxItem.status == OutboxStatus.PENDING)
                    .values(not_before=now + (wait or timedelta(0)))
                )
            self._wake_outbox()
            return
        with self._database.write() as session:
            session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item_id, OutboxItem.status == OutboxStatus.PENDING)
                .values(status=OutboxStatus.DONE, sent_at=now, attempts=1)
            )

    def _limited(self) -> str:
        seconds = int(self._rate.per.total_seconds())
        period = "minute" if seconds == 60 else "hour" if seconds == 3600 else f"{seconds} seconds"
        return (
            f"You've asked {self._rate.limit} questions in the last {period}. Please give me a moment and ask again"
            " shortly; if it's urgent, tell your team's on-call channel."
        )

    def _post(self, channel: str, thread_ts: str, text: str) -> str:
        posted = self._client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text, unfurl_links=False)
        return str(posted["ts"])
