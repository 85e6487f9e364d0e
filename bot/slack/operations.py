"""What each ``/incident`` subcommand and button does, independent of how Slack delivered it."""

from __future__ import annotations

from sqlalchemy import select

from bot.incidents import views
from bot.incidents.models import OPEN_STATUSES, Incident
from bot.slack import grammar
from bot.slack.blocks import escape, runbook_line, similar_line
from bot.slack.grammar import Command
from bot.slack.services import SlackServices

LIST_LIMIT = 25


def run(services: SlackServices, command: Command, user_id: str, user_name: str, request_key: str) -> str:
    """Carry out ``command`` for ``user_id``; returns the ephemeral answer."""
    if command.name == "help":
        return grammar.USAGE
    if command.name == "list":
        return _list(services)
    if command.name == "show":
        assert command.incident_id is not None
        return _show(services, command.incident_id)
    if command.name == "similar":
        assert command.incident_id is not None
        return _similar(services, command.incident_id)
    what = {
        "ack": "acknowledge incidents",
        "resolve": "resolve incidents",
        "assign": "assign commanders",
        "declare": "declare incidents",
    }[command.name]
    services.permissions.check(user_id, what)
    actor = f"slack:{user_id}"
    with services.database.write() as session:
        if not services.first_time(session, request_key):
            return "Already done (this request was received twice)."
        if command.name == "declare":
            assert command.text is not None
            incident = services.incidents.declare(session, command.text, actor, user_name)
            answer = f"Declared incident {incident.id}: {escape(incident.title)}"
        else:
            assert command.incident_id is not None
            if command.name == "ack":
                outcome = services.incidents.acknowledge(session, command.incident_id, actor, user_name)
            elif command.name == "resolve":
                outcome = services.incidents.resolve(session, command.incident_id, actor, command.text, user_name)
            else:
                assert command.user_id is not None
                commander = command.user_name or command.user_id
                outcome = services.incidents.assign(session, command.incident_id, commander, actor, user_name)
            answer = outcome.message
    services.wake_outbox()
    return answer


def _list(services: SlackServices) -> str:
    with services.database.read() as session:
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
        f"*#{i.id}* [{i.severity}] {escape(i.title)} — {i.status}, {i.alert_count} alerts"
        for i in incidents[:LIST_LIMIT]
    ]
    if len(incidents) > LIST_LIMIT:
        lines.append(f"(showing the newest {LIST_LIMIT}; `incibot incidents list --status open` shows all)")
    return "Open incidents:\n" + "\n".join(lines)


def _show(services: SlackServices, incident_id: int) -> str:
    with services.database.read() as session:
        data = views.detail(views.get_incident(session, incident_id))  # IncidentNotFound reaches the error handler
    lines = [f"*Incident #{data['id']}: {escape(data['title'])}*"]
    lines += [f"{label}: {escape(value)}" for label, value in views.facts(data)]
    lines.append("Timeline:")
    lines += [f"• {entry['at'][:16].replace('T', ' ')} {escape(entry['text'])}" for entry in data["timeline"][-10:]]
    return "\n".join(lines)


SEARCH_OFF = "Search is off on this bot (INCIBOT_KNOWLEDGE=false)."


def _similar(services: SlackServices, incident_id: int) -> str:
    if services.knowledge is None:
        return SEARCH_OFF
    found = services.knowledge.similar_to(incident_id)  # IncidentNotFound reaches the error handler
    if not found:
        return f"No past incident is similar to #{incident_id}."
    return f"Incidents similar to #{incident_id} (resolved first):\n" + "\n".join(similar_line(s) for s in found)


def runbooks(services: SlackServices, query: str) -> str:
    """The ephemeral answer to ``/runbook QUERY``."""
    if services.knowledge is None:
        return SEARCH_OFF
    answer = services.knowledge.search_runbooks(query, limit=3)
    if not answer.fitting:
        head = f"No runbook fits `{escape(query)}` (best match {answer.confidence:.2f})."
        closest = "\n".join(runbook_line(hit) for hit in answer.hits)
        return head + (f"\nClosest, for what it is worth:\n{closest}" if closest else "")
    return f"Runbooks for `{escape(query)}`:\n" + "\n".join(runbook_line(hit) for hit in answer.fitting)
