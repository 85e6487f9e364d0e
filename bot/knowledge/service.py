"""Runbook and past-incident search for the bot: what Slack commands, the CLI and incident posts ask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from bot.db.database import Database
from bot.incidents.errors import IncidentNotFound
from bot.incidents.models import Incident, IncidentStatus
from bot.incidents.service import SYSTEM_ACTOR
from bot.knowledge.documents import first_alert, incident_text
from bot.knowledge.incident_index import IncidentIndex, vector_from_bytes
from bot.knowledge.models import IncidentDocument
from bot.knowledge.runbook_library import RunbookLibrary
from bot.knowledge.suggestions import RunbookHit, SimilarIncident, Suggestions
from knowledge.embeddings import Embedder
from knowledge.retrieval import DEFAULT_THRESHOLD, SearchResult

SHOWN = 3  # runbooks and similar incidents in an incident post
# Cosine similarity of two incidents' texts at or above which they are shown as similar. Chosen with
# `incibot eval similar --stream ../shared/data/storm/storm.jsonl.gz`: at 0.75, 98 % of pairs of incidents
# with the same alert (on other services or hosts) are kept and 1.8 % of unrelated pairs pass (0.5: 48 %).
SIMILAR_MIN_SCORE = 0.75
# Free text (`incibot knowledge search --kind incidents`) is short, so its similarities to incident texts run
# lower; below this the hit is noise.
TEXT_MIN_SCORE = 0.4
_CANDIDATES = 25  # nearest neighbours read before ordering resolved incidents first


@dataclass(frozen=True, slots=True)
class RunbookAnswer:
    hits: tuple[RunbookHit, ...]  # best first (up to the limit), whatever their confidence
    fitting: tuple[RunbookHit, ...]  # those at or above the threshold: the answer (empty: no runbook fits)
    confidence: float  # the best hit's


class KnowledgeService:
    """Searches runbooks and past incidents; one per process, sharing the embedder loaded at start-up."""

    def __init__(
        self,
        database: Database,
        embedder: Embedder,
        runbooks: RunbookLibrary,
        incidents: IncidentIndex,
        *,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.database = database
        self.embedder = embedder
        self.runbooks = runbooks
        self.incidents = incidents
        self.threshold = threshold

    def search_runbooks(self, text: str, limit: int = 5) -> RunbookAnswer:
        """Runbooks for free text (``/runbook``)."""
        return self._answer(self.runbooks.index().search(text, limit=limit, threshold=self.threshold), limit)

    def search_incidents(self, text: str, limit: int = 5) -> list[SimilarIncident]:
        """Past incidents whose text is like ``text``: resolved first, then by similarity."""
        return self._similar(self.embedder.embed_one(text), exclude=None, limit=limit, min_score=TEXT_MIN_SCORE)

    def similar_to(self, incident_id: int, limit: int = 5) -> list[SimilarIncident]:
        """Incidents like this one (``/incident similar``); :class:`IncidentNotFound` if there is none."""
        with self.database.read() as session:
            incident = session.get(Incident, incident_id)
            if incident is None:
                raise IncidentNotFound(incident_id)
            document = session.get(IncidentDocument, incident_id)
            stored = document.vector if document is not None and document.model == self.embedder.name else None
            text = incident_text(session, incident)
        vector = vector_from_bytes(stored) if stored is not None else self.embedder.embed_one(text)
        return self._similar(vector, exclude=incident_id, limit=limit)

    def suggest(self, incident_id: int) -> Suggestions:
        """What an incident's first post shows: runbooks for its first alert, and similar past incidents."""
        with self.database.read() as session:
            incident = session.get(Incident, incident_id)
            if incident is None:
                raise IncidentNotFound(incident_id)
            alert = first_alert(session, incident_id)
            text = incident_text(session, incident)
        index = self.runbooks.index()
        if alert is not None:
            result = index.search_alert(alert, limit=SHOWN, threshold=self.threshold)
        else:
            result = index.search(text, limit=SHOWN, threshold=self.threshold)
        answer = self._answer(result, SHOWN)
        similar = self._similar(self.embedder.embed_one(text), exclude=incident_id, limit=SHOWN)
        return Suggestions(answer.fitting, answer.confidence, tuple(similar))

    # -- internals ---------------------------------------------------------------------------------------------

    def _answer(self, result: SearchResult, limit: int) -> RunbookAnswer:
        by_id = {runbook.id: runbook for runbook in self.runbooks.index().runbooks}
        hits = tuple(
            RunbookHit(
                hit.doc, by_id[hit.doc].title, hit.score, hit.section, by_id[hit.doc].source_url, by_id[hit.doc].actions
            )
            for hit in result.hits[:limit]
            if hit.doc in by_id
        )
        fitting = tuple(hit for hit in hits if hit.score >= self.threshold)  # no low-score filler
        return RunbookAnswer(hits, fitting, result.confidence)

    def _similar(
        self, vector: np.ndarray, *, exclude: int | None, limit: int, min_score: float = SIMILAR_MIN_SCORE
    ) -> list[SimilarIncident]:
        self.incidents.catch_up()
        found = {
            incident_id: score
            for incident_id, score in self.incidents.search(vector, _CANDIDATES + 1)
            if incident_id != exclude and score >= min_score
        }
        if not found:
            return []
        with self.database.read() as session:
            rows = session.scalars(select(Incident).where(Incident.id.in_(found)))
            similar = [_similar_incident(incident, found[incident.id]) for incident in rows]
        similar.sort(key=lambda s: (s.status != IncidentStatus.RESOLVED, -s.score, -s.id))
        return similar[:limit]


def _similar_incident(incident: Incident, score: float) -> SimilarIncident:
    return SimilarIncident(
        id=incident.id,
        title=incident.title,
        score=round(score, 3),
        status=str(incident.status),
        opened_at=incident.opened_at,
        resolution=resolution_of(incident),
    )


def resolution_of(incident: Incident) -> str:
    """How an incident ended, in a few words: the note people wrote, else who resolved it and how fast."""
    if incident.status != IncidentStatus.RESOLVED or incident.resolved_at is None:
        return "still open"
    minutes = max(1, round((incident.resolved_at - incident.opened_at).total_seconds() / 60))
    if incident.resolution_note:
        return incident.resolution_note
    if incident.resolved_by in (None, SYSTEM_ACTOR):
        return f"auto-resolved after {minutes} min"
    return f"resolved by {incident.resolved_by} after {minutes} min, no note"
