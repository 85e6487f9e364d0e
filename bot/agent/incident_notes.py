"""Resolved incidents' resolution notes as knowledge documents: ``incident/N``, titled "incident #N: title", the
note the passage, linked to the incident's post. A note is public when its incident was posted to a public channel
(what :class:`~bot.agent.visibility.PublicChannels` says) and internal (responders only) otherwise."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from bot.db.database import Database
from bot.incidents.models import Incident, IncidentStatus
from knowledge.qa import QaDocument
from knowledge.runbooks import parse_runbook

MAX_NOTES = 2000  # the most recently resolved incidents with a note
NOTE_HEADING = "Resolution note"


def note_text(incident: Incident) -> str:
    """The document's Markdown: it starts with a heading, so a note can never pass for front matter."""
    title = " ".join(incident.title.split())
    service = f"Service: {incident.service}\n\n" if incident.service else ""
    note = (incident.resolution_note or "").strip()
    return f"# incident #{incident.id}: {title}\n\n## {NOTE_HEADING}\n\n{service}{note}\n"


class IncidentNotes:
    """Reads the notes' documents (each question, cheaply: :class:`~bot.agent.service.KnowledgeBase` re-indexes only
    when they changed). ``visible``: posted to a public channel; ``link``: the incident's post, if known."""

    def __init__(
        self,
        database: Database,
        visible: Callable[[Incident], bool],
        link: Callable[[Incident], str | None],
    ) -> None:
        self._database = database
        self._visible = visible
        self._link = link

    def documents(self) -> list[QaDocument]:
        with self._database.read() as session:
            incidents = session.scalars(
                select(Incident)
                .where(
                    Incident.status == IncidentStatus.RESOLVED,
                    Incident.merged_into.is_(None),
                    Incident.resolution_note.is_not(None),
                    Incident.resolution_note != "",
                )
                .order_by(Incident.resolved_at.desc(), Incident.id.desc())
                .limit(MAX_NOTES)
            ).all()
            return [
                QaDocument(
                    parse_runbook(f"incident/{incident.id}", note_text(incident)),
                    "public" if self._visible(incident) else "internal",
                    self._link(incident),
                )
                for incident in incidents
                if (incident.resolution_note or "").strip()
            ]
