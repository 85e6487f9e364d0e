"""The hand-over when the agent cannot answer: "Report a problem" turns the user's words into an alert of the generic
webhook, stored through the ingest writer like any delivery (so it is classified and correlated like any other);
"Ask a human" posts the question to the help channel and relays people's replies in that thread to the asker.

The buttons (:func:`bot.agent.answers.abstain_answer`) carry the question's id (``agent_questions``): the question,
its asker and its conversation are read from there, never from the button, and only the asker may use them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.orm import Session

from bot.agent.handover_models import HelpRequest
from bot.agent.models import AgentQuestion
from bot.db.database import Database
from bot.incidents.models import Incident, IncidentAlert
from bot.ingest import generic
from bot.ingest.store import StoredDelivery
from bot.ingest.writer import DeliveryWriter
from bot.slack import mrkdwn
from bot.slack.links import message_link
from bot.slack.models import OutboxItem, OutboxKind, OutboxStatus

REPORT_CALLBACK = "agent_report"
REPORT_TEXT_BLOCK = "report-text"
REPORT_SERVICE_BLOCK = "report-service"
INPUT_ACTION = "value"
REPORT_ALERTNAME = "UserReport"
REPORT_SOURCE_LABEL = "user-report"
REPORT_SEVERITY = "warning"
MAX_REPORT_CHARS = 2000
MAX_SERVICE_CHARS = 60
TITLE_CHARS = 120
CONFIRM_WITHIN = timedelta(minutes=2)  # the confirmation waits this long for the report's incident and its post
STORED = ":white_check_mark: Thanks, your report is stored; the on-call team will see it as an incident shortly."


def parse_question_id(value: str) -> int | None:
    """The question id a hand-over button or the report modal carries (:func:`bot.agent.answers.abstain_answer`)."""
    return int(value) if value.isdigit() and len(value) < 12 else None


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where a question was asked: its asker, and the channel and thread the answers go to."""

    question_id: int
    question: str
    asker: str
    channel: str
    thread_ts: str


def conversation(database: Database, question_id: int) -> Conversation | None:
    with database.read() as session:
        row = session.get(AgentQuestion, question_id)
        if row is None:
            return None
        return Conversation(row.id, row.question, row.asker, row.channel, row.thread_ts)


def report_body(text: str, service: str | None, reporter_id: str, reporter_name: str, key: str) -> bytes:
    """A generic-webhook body for a user's report: one firing ``UserReport`` alert, its summary the report's first
    line, labelled with the reporter and ``source: user-report``; ``key`` (the modal's id) makes a replayed
    submission the same occurrence."""
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    labels = {"source": REPORT_SOURCE_LABEL, "reporter": reporter_id, "reporter_name": reporter_name}
    if service:
        labels["service"] = service
    alert = {
        "name": REPORT_ALERTNAME,
        "severity": REPORT_SEVERITY,
        "summary": f"User report: {first_line[:TITLE_CHARS]}",
        "description": text,
        "labels": labels,
        "fingerprint": f"user-report-{key}"[:128],
    }
    return orjson.dumps({"alerts": [alert]})


def incident_of(session: Session, alert_id: int) -> Incident | None:
    """The incident the report's alert is in (after merges: the one it was merged into), once processed."""
    incident = session.scalars(select(Incident).join(IncidentAlert).where(IncidentAlert.alert_id == alert_id)).first()
    while incident is not None and incident.merged_into is not None:
        incident = session.get(Incident, incident.merged_into)
    return incident


def confirmation(incident: Incident | None, workspace: str | None) -> str:
    """What the reporter is told: the incident, linked to its post (under the workspace's address ``workspace``)
    once posted; without an incident, that the report is stored."""
    if incident is None:
        return STORED
    title = mrkdwn.escape(incident.title, 200, one_line=True)
    shown = f"#{incident.id}: {title}"
    if workspace and incident.slack_channel and incident.slack_ts:
        shown = mrkdwn.link(message_link(workspace, incident.slack_channel, incident.slack_ts), shown)
    return f":white_check_mark: Thanks, I reported it to the on-call team as incident {shown}."


def queue_confirmation(
    connection: Connection, stored: StoredDelivery, now: datetime, asked: Conversation, workspace: str | None
) -> None:
    """Queue the reporter's confirmation (the outbox's ``agent_reported``: it waits for the report's incident and its
    post, at most :data:`CONFIRM_WITHIN`) in the transaction that stores the report."""
    alert_id = next((alert for alert, _kind in stored.events), None)
    payload = {
        "alert_id": alert_id,
        "thread_ts": asked.thread_ts,
        "deadline": (now + CONFIRM_WITHIN).isoformat(),
        "workspace": workspace,
    }
    connection.execute(
        insert(OutboxItem).values(
            kind=OutboxKind.AGENT_REPORTED,
            incident_id=None,
            channel=asked.channel,
            payload=payload,
            status=OutboxStatus.PENDING,
            attempts=0,
            ambiguous=False,
            not_before=now,
            created_at=now,
        )
    )


def confirmation_waits(session: Session, item: OutboxItem, now: datetime) -> bool:
    """An ``agent_reported`` item waits while its incident is not made or not posted, until its deadline."""
    if now >= datetime.fromisoformat(str(item.payload["deadline"])):
        return False
    alert_id = item.payload.get("alert_id")
    incident = incident_of(session, int(alert_id)) if alert_id is not None else None
    return incident is None or incident.slack_ts is None


class ProblemReports:
    """Stores users' reports through the ingest writer (the same group commit, worker wake-up and 503 as a webhook),
    with the reporter's confirmation queued in the same transaction."""

    def __init__(self, database: Database, writer: DeliveryWriter) -> None:
        self._database = database
        self._writer = writer

    def report(
        self,
        text: str,
        service: str | None,
        reporter_name: str,
        key: str,
        asked: Conversation,
        workspace: str | None,
    ) -> StoredDelivery:
        """Store the report of ``asked``'s asker and queue their confirmation to ``asked``'s conversation;
        :class:`~bot.db.database.DatabaseUnavailable` when it cannot be now."""
        body = report_body(text, service, asked.asker, reporter_name, key)

        def confirm(connection: Connection, stored: StoredDelivery, now: datetime) -> None:
            queue_confirmation(connection, stored, now, asked, workspace)

        return asyncio.run(self._writer.submit(generic.parse(body), body, then=confirm))


class HelpDesk:
    """Which help-channel thread belongs to which question, and the count of replies relayed."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def asked(self, question_id: int) -> bool:
        with self._database.read() as session:
            return session.scalar(select(HelpRequest.id).where(HelpRequest.question_id == question_id)) is not None

    def record(self, asked: Conversation, help_channel: str, help_ts: str, now: datetime) -> None:
        with self._database.write() as session:
            session.add(
                HelpRequest(
                    question_id=asked.question_id,
                    user_id=asked.asker,
                    help_channel=help_channel,
                    help_ts=help_ts,
                    created_at=now,
                    replies=0,
                )
            )

    def is_help_thread(self, channel: str, thread_ts: str) -> bool:
        with self._database.read() as session:
            found = session.scalar(
                select(HelpRequest.id).where(HelpRequest.help_channel == channel, HelpRequest.help_ts == thread_ts)
            )
            return found is not None

    def relay(self, session: Session, channel: str, thread_ts: str, text: str, now: datetime) -> Conversation | None:
        """Count a reply in the help thread ``channel``/``thread_ts`` and queue ``text`` (mrkdwn, escaped) to the
        asker's conversation in the outbox, in the caller's transaction; that conversation (None: not a help
        thread, or its question is gone)."""
        request = session.scalars(
            select(HelpRequest).where(HelpRequest.help_channel == channel, HelpRequest.help_ts == thread_ts)
        ).first()
        question = session.get(AgentQuestion, request.question_id) if request is not None else None
        if request is None or question is None:
            return None
        session.execute(
            update(HelpRequest)
            .where(HelpRequest.id == request.id)
            .values(replies=HelpRequest.replies + 1, first_reply_at=request.first_reply_at or now)
        )
        session.add(
            OutboxItem(
                kind=OutboxKind.AGENT_REPLY,
                incident_id=None,
                channel=question.channel,
                payload={"thread_ts": question.thread_ts, "text": text},
                not_before=now,
                created_at=now,
            )
        )
        return Conversation(question.id, question.question, question.asker, question.channel, question.thread_ts)


@dataclass(frozen=True, slots=True)
class Handover:
    """What the hand-over's listeners need: the reports, the help desk, and the help channel (None: not set)."""

    reports: ProblemReports
    desk: HelpDesk
    help_channel: str | None
