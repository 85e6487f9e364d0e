"""What ``/incident cause``, ``/incident resolve … cause=…``, the 👍/👎 buttons and the cause select do (the
handlers the command table and the listeners name)."""

from __future__ import annotations

from bot.incidents import views
from bot.incidents.models import Incident
from bot.rootcause import feedback
from bot.rootcause.ranking import StoredRanking, stored_ranking
from bot.slack.models import OutboxItem, OutboxKind
from bot.slack.mrkdwn import escape
from bot.slack.operations import Invocation
from bot.slack.summary_blocks import CAUSE_QUESTION, candidate_name, evidence_line

RESOLVE = "resolve incidents"  # confirming a cause is part of resolving
FEEDBACK = "rate likely causes"


def cause(invocation: Invocation) -> str:
    """``/incident cause ID``: the ranking with every candidate's evidence, and the confirmed cause."""
    with invocation.services.database.read() as session:
        incident = views.get_incident(session, invocation.incident_id)  # IncidentNotFound reaches the handler
        stored = stored_ranking(session, incident.id)
    return ranking_text(incident.id, stored)


def ranking_text(incident_id: int, stored: StoredRanking | None) -> str:
    """The ranking as ``/incident cause`` and ``incibot incidents show`` say it (mrkdwn, outside text escaped)."""
    lines = [f"*Likely causes of incident #{incident_id}*"]
    if stored is not None and stored.confirmed is not None:
        lines.append(f"Confirmed by a person: *{escape(stored.confirmed, 200, one_line=True)}*")
    if stored is None or not stored.candidates:
        lines.append("Still working it out." if stored is None or stored.stale else "No candidate yet.")
        return "\n".join(lines)
    for rank, candidate in enumerate(stored.candidates, start=1):
        lines.append(f"{rank}. {candidate_name(candidate)} — {candidate.confidence:.0%}")
        lines += [f"    {evidence_line(e.source, e.text)}" for e in candidate.evidence]
    if stored.stale:
        lines.append("_(new alerts joined since: it is being ranked again)_")
    return "\n".join(lines)


def resolve(invocation: Invocation) -> str:
    """``/incident resolve ID [note]`` (and the Resolve button): resolve as before; ``cause=NAME`` in the note
    records the confirmed cause (also on an incident already resolved); without it, the thread is asked for the
    cause with a select of the ranking's candidates."""
    session, incident_id = invocation.writing, invocation.incident_id
    name, note = feedback.split_cause(invocation.command.text)
    outcome = invocation.services.incidents.resolve(session, incident_id, invocation.actor, note, invocation.user_name)
    answer = escape(outcome.message)
    if name is not None:
        confirmed = feedback.confirm(
            invocation.services.incidents, session, incident_id, name, invocation.actor, invocation.user_name, note
        )
        return f"{answer} Cause recorded: {escape(confirmed.name, 200, one_line=True)}."
    stored = stored_ranking(session, incident_id)
    if outcome.changed and stored is not None and stored.candidates and stored.confirmed is None:
        _ask_for_cause(invocation, incident_id)
    return answer


def _ask_for_cause(invocation: Invocation, incident_id: int) -> None:
    session, now = invocation.writing, invocation.services.clock()
    incident = session.get(Incident, incident_id)
    assert incident is not None, "resolved just now"
    text = f"What caused incident #{incident_id}? Pick it below, or `/incident resolve {incident_id} cause=NAME`."
    session.add(
        OutboxItem(
            kind=OutboxKind.THREAD_REPLY,
            incident_id=incident_id,
            channel=incident.slack_channel or "",
            payload={"text": text, CAUSE_QUESTION: True},
            not_before=now,
            created_at=now,
        )
    )


def vote(invocation: Invocation, name: str, helpful: bool) -> str:
    """A 👍 (``helpful``) or 👎 on candidate ``name`` of the incident's ranking."""
    rank = feedback.record_vote(
        invocation.writing, invocation.incident_id, name, helpful, invocation.actor, invocation.services.clock()
    )
    shown = escape(name, 200, one_line=True)
    if rank is None:
        return f"Recorded, though {shown} is no longer among the likely causes of incident {invocation.incident_id}."
    mark = ":+1:" if helpful else ":-1:"
    return f"Thanks: {mark} recorded for {shown} as the cause of incident {invocation.incident_id}."


def confirm_pick(invocation: Invocation, rank: int) -> str:
    """A pick in the cause select: the candidate at ``rank`` of the incident's ranking becomes its confirmed cause."""
    session, incident_id = invocation.writing, invocation.incident_id
    stored = stored_ranking(session, incident_id)
    if stored is None or not 0 < rank <= len(stored.candidates):
        return f"Incident {incident_id}'s ranking changed; use `/incident resolve {incident_id} cause=NAME`."
    name = stored.candidates[rank - 1].name
    feedback.confirm(invocation.services.incidents, session, incident_id, name, invocation.actor, invocation.user_name)
    return f"Recorded the cause of incident {incident_id}: {escape(name, 200, one_line=True)}."
