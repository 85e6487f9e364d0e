"""Keeps each incident's search document up to date, in the transaction that changed the incident.

An incident is indexed when it opens (the canonical text of its first alert, or its title when declared by
hand) and again when what that text is made of changes: a person resolves it (with a note or without), its alerts
are merged or split (its first alert may change), or it reopens or auto-resolves while it has a resolution note
(the note is shown only while it is resolved). A storm's flapping incident reopens and resolves hundreds of times
with nothing to change. The indexer embeds each new revision.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot.incidents.models import Incident, IncidentAlert, TimelineEntry
from bot.ingest.models import Alert
from bot.knowledge.models import IncidentDocument
from knowledge.alerts import NormalizedAlert
from knowledge.text import alert_text

_REINDEX_ON = frozenset({"opened", "resolved", "merged_in", "split", "not_related"})
_NOTE_SHOWN_OR_HIDDEN_ON = frozenset({"auto_resolved", "reopened"})


_FIRST_ALERT = (  # read as incidents open, resolve and reopen (in the worker's write transaction): built once
    select(Alert)
    .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
    .where(IncidentAlert.incident_id == bindparam("incident_id"))
    .order_by(Alert.id)
    .limit(1)
)


def first_alert(session: Session, incident_id: int) -> NormalizedAlert | None:
    alert = session.scalar(_FIRST_ALERT, {"incident_id": incident_id})
    return alert.normalized() if alert is not None else None


def incident_text(session: Session, incident: Incident) -> str:
    """What an incident is about, as search reads it: its first alert's canonical text (else its title)."""
    alert = first_alert(session, incident.id)
    return alert_text(alert) if alert is not None else incident.title


def document_text(session: Session, incident: Incident) -> str:
    """The indexed text: what the incident is about, plus the resolution note people wrote, if any."""
    about = incident_text(session, incident)
    note = (incident.resolution_note or "").strip()
    return f"{about}\nResolution: {note}" if note and not incident.is_open else about


class DocumentRecorder:
    """An :class:`~bot.incidents.service.IncidentListener` that writes ``incident_documents`` rows."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    def on_timeline(self, session: Session, incident: Incident, entry: TimelineEntry) -> None:
        if entry.kind not in _REINDEX_ON and not (
            entry.kind in _NOTE_SHOWN_OR_HIDDEN_ON and (incident.resolution_note or "").strip()
        ):
            return
        document = session.get(IncidentDocument, incident.id)
        text = document_text(session, incident)
        if document is None:
            session.add(
                IncidentDocument(incident_id=incident.id, text=text, rev=1, pending=True, updated_at=self._clock())
            )
        elif document.text != text:
            document.text = text
            document.rev += 1
            document.pending = True
            document.updated_at = self._clock()
