"""What each slash command and button does, independent of how Slack delivered it: the handlers that the
table in :mod:`bot.slack.commands` names."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.classification import picks
from bot.incidents import views
from bot.incidents.errors import IncidentNotFound
from bot.incidents.models import OPEN_STATUSES, Incident
from bot.slack.blocks import runbook_line, similar_line
from bot.slack.errors import UsageError
from bot.slack.grammar import Command, quote
from bot.slack.models import OutboxItem, OutboxKind
from bot.slack.mrkdwn import escape
from bot.slack.services import SlackServices
from knowledge.classify.categories import CATEGORY_KEYS

LIST_LIMIT = 25


@dataclass(frozen=True, slots=True)
class Invocation:
    """A parsed command and who gave it; ``session`` is the write transaction, for commands that write."""

    services: SlackServices
    command: Command
    user_id: str
    user_name: str
    session: Session | None = None

    @property
    def actor(self) -> str:
        return f"slack:{self.user_id}"

    @property
    def incident_id(self) -> int:
        assert self.command.incident_id is not None, "the grammar requires an ID"
        return self.command.incident_id

    @property
    def text(self) -> str:
        assert self.command.text is not None, "the grammar requires the text"
        return self.command.text

    @property
    def writing(self) -> Session:
        assert self.session is not None, "the table runs writing commands in a transaction"
        return self.session


def acknowledge(invocation: Invocation) -> str:
    incidents = invocation.services.incidents
    outcome = incidents.acknowledge(invocation.writing, invocation.incident_id, invocation.actor, invocation.user_name)
    return escape(outcome.message)  # it names people: outside text


def assign(invocation: Invocation) -> str:
    command = invocation.command
    commander = command.user_name or command.user_id or ""
    outcome = invocation.services.incidents.assign(
        invocation.writing, invocation.incident_id, commander, invocation.actor, invocation.user_name
    )
    return escape(outcome.message)


def declare(invocation: Invocation) -> str:
    incident = invocation.services.incidents.declare(
        invocation.writing, invocation.text, invocation.actor, invocation.user_name
    )
    return f"Declared incident {incident.id}: {escape(incident.title)}"


CORRECT = "merge and split incidents"


def merge(invocation: Invocation) -> str:
    merged = invocation.command.other_id
    assert merged is not None, "the grammar requires B"
    outcome = invocation.services.corrections.merge(
        invocation.writing, invocation.incident_id, merged, invocation.actor, invocation.user_name
    )
    return escape(outcome.message)


def split(invocation: Invocation) -> str:
    outcome = invocation.services.corrections.split(
        invocation.writing, invocation.incident_id, invocation.text, invocation.actor, invocation.user_name
    )
    return escape(outcome.message)  # it names the alerts: outside text


def not_related(invocation: Invocation, alert_ids: range) -> str:
    """The "Not related" button of an "alerts joined" reply: those alerts leave the incident."""
    outcome = invocation.services.corrections.not_related(
        invocation.writing, invocation.incident_id, alert_ids, invocation.actor, invocation.user_name
    )
    return escape(outcome.message)


CLASSIFY = "classify incidents"
REPOST = "re-post incidents"
REPOSTED = "reposted"  # the timeline entry: the old thread's last reply, before the post in the new route


def classify(invocation: Invocation) -> str:
    """A person's category (``/incident classify``, the post's menu): stored, and routes the incident."""
    key = invocation.text.lower()
    if key not in CATEGORY_KEYS:
        valid = ", ".join(f"`{k}`" for k in CATEGORY_KEYS)
        raise UsageError(f"`{quote(key)}` is not a category; the categories are {valid}.")
    outcome = picks.pick(
        invocation.services.incidents,
        invocation.writing,
        invocation.incident_id,
        key,
        invocation.actor,
        invocation.user_name,
    )
    return escape(outcome.message)  # it names people: outside text


def repost(invocation: Invocation, route: str) -> str:
    """The "Re-post" button of a category's route note: the incident is posted in ``route`` (a channel name), and
    its updates and replies go there from now on. The post it had stays as it is."""
    services, session = invocation.services, invocation.writing
    if route not in services.route_channels:
        return f"{escape('#' + route, 80, one_line=True)} is not a channel incibot routes incidents to."
    incident = session.get(Incident, invocation.incident_id, with_for_update=True)
    if incident is None:
        raise IncidentNotFound(invocation.incident_id)
    if incident.merged_into is not None:
        return f"Incident {incident.id} was merged into #{incident.merged_into}; re-post that one."
    services.incidents.note(  # first, so this reply lands in the thread it leaves
        session, incident, invocation.actor, REPOSTED, f"{invocation.user_name} re-posted it in #{route}."
    )
    now = services.clock()
    session.add(
        OutboxItem(
            kind=OutboxKind.POST_INCIDENT,
            incident_id=incident.id,
            channel=route,
            payload={},
            not_before=now,
            created_at=now,
        )
    )
    return escape(f"Incident {incident.id} is being re-posted in #{route}; its updates go there from now on.")


def list_open(invocation: Invocation) -> str:
    with invocation.services.database.read() as session:
        incidents = list(
            session.scalars(
                select(Incident)
                .where(Incident.status.in_(OPEN_STATUSES))
                .order_by(Incident.id.desc())
                .limit(LIST_LIMIT + 1)
            )
        )
    if not incidents:
        return "No open incidents. :tada:"
    lines = [
        f"*#{i.id}* [{i.severity}] {escape(i.title, 200, one_line=True)} — {i.status}, {i.alert_count} alerts"
        for i in incidents[:LIST_LIMIT]
    ]
    if len(incidents) > LIST_LIMIT:
        lines.append(f"(showing the newest {LIST_LIMIT}; `incibot incidents list --status open` shows all)")
    return "Open incidents:\n" + "\n".join(lines)


def show(invocation: Invocation) -> str:
    with invocation.services.database.read() as session:  # IncidentNotFound reaches the error handler
        incident = views.get_incident(session, invocation.incident_id)
        data = views.detail(incident, audit=views.audit_of(session, invocation.incident_id))
    lines = [f"*Incident #{data['id']}: {escape(data['title'])}*"]
    lines += [f"{label}: {escape(value)}" for label, value in views.facts(data)]
    lines.append("Timeline:")
    lines += [f"• {entry['at'][:16].replace('T', ' ')} {escape(entry['text'])}" for entry in data["timeline"][-10:]]
    return "\n".join(lines)


SEARCH_OFF = "Search is off on this bot (INCIBOT_KNOWLEDGE=false)."


def similar(invocation: Invocation) -> str:
    services, incident_id = invocation.services, invocation.incident_id
    if services.knowledge is None:
        return SEARCH_OFF
    found = services.knowledge.similar_to(incident_id)  # IncidentNotFound reaches the error handler
    if not found:
        return f"No past incident is similar to #{incident_id}."
    return f"Incidents similar to #{incident_id} (resolved first):\n" + "\n".join(similar_line(s) for s in found)


def runbooks(invocation: Invocation) -> str:
    """The ephemeral answer to ``/runbook QUERY``."""
    services, query = invocation.services, invocation.text
    if services.knowledge is None:
        return SEARCH_OFF
    answer = services.knowledge.search_runbooks(query, limit=3)
    if not answer.fitting:
        head = f"No runbook fits `{escape(query)}` (best match {answer.confidence:.2f})."
        closest = "\n".join(runbook_line(hit) for hit in answer.hits)
        return head + (f"\nClosest, for what it is worth:\n{closest}" if closest else "")
    return f"Runbooks for `{escape(query)}`:\n" + "\n".join(runbook_line(hit) for hit in answer.fitting)
