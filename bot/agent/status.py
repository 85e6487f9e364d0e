"""Live status: the open incidents a question is about (semantic match on the incident's title, service and
category, plus the service named in the question), within what the asker may see, and the last resolved one
for a service when none is open."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.incidents.models import OPEN_STATUSES, Incident, IncidentStatus, TimelineEntry
from knowledge.retrieval import TextEmbedder

MATCH_SIMILARITY = 0.45  # cosine of question and incident text above which an open incident matches
SERVICE_BONUS = 0.35  # the question names the incident's service
MAX_OPEN = 200  # open incidents considered (most recent first)
MAX_MATCHES = 3
GENERIC_TOKENS = frozenset({"api", "app", "service", "svc", "server", "prod", "web", "frontend", "backend", "the"})
PUBLIC_UPDATES = {  # timeline kinds an end user may hear of, and how they are said
    "opened": "reported",
    "acknowledged": "a responder is working on it",
    "reopened": "reopened",
    "resolved": "resolved",
    "auto_resolved": "resolved",
}
_STATUS_QUESTION = re.compile(
    r"\b(down|slow|outage|broken|not working|(is|are)n'?t working|does(n'?t| not) work|unavailable|failing|fails?|"
    r"errors?|timeouts?|timing out|status|problems?|issues?|incidents?|can'?t (reach|connect|access|load|open)|"
    r"cannot (reach|connect|access|load|open)|up\b|working)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident as the asker may see it (``severity``, ``category``, ``channel`` only for responders)."""

    id: int
    title: str
    service: str | None
    status: str
    opened_at: datetime
    resolved_at: datetime | None
    update: str | None  # the latest (public, for end users) update
    update_at: datetime | None
    severity: str | None = None
    category: str | None = None
    channel: str | None = None  # where it was posted (a channel id)
    score: float = 0.0


def is_status_question(question: str) -> bool:
    return _STATUS_QUESTION.search(question) is not None


def incident_text(incident: Incident) -> str:
    parts = [incident.title, f"service {incident.service}" if incident.service else "", incident.category or ""]
    return ". ".join(part.replace("_", " ") for part in parts if part)


def names_service(question: str, service: str | None) -> bool:
    """The question names ``service`` (whole, or a distinctive part of ``checkout-api``)."""
    if not service:
        return False
    words = set(_WORD.findall(question.lower()))
    name = service.lower()
    if name in words or re.search(rf"\b{re.escape(name)}\b", question.lower()):
        return True
    parts = [part for part in _WORD.findall(name) if len(part) >= 3 and part not in GENERIC_TOKENS]
    return bool(parts) and any(part in words for part in parts)


class StatusFinder:
    """Matches questions to incidents; ``visible(incident)`` says whether an end user may see it (posted to a
    public channel); responders see every incident."""

    def __init__(self, embedder: TextEmbedder | None, visible: Callable[[Incident], bool]) -> None:
        self._embedder = embedder
        self._visible = visible

    def open_matches(self, session: Session, question: str, *, responder: bool) -> list[IncidentView]:
        incidents = session.scalars(
            select(Incident)
            .where(Incident.status.in_(OPEN_STATUSES), Incident.merged_into.is_(None))
            .order_by(Incident.opened_at.desc())
            .limit(MAX_OPEN)
        ).all()
        scored = sorted(
            ((self._score(question, incident), incident) for incident in incidents),
            key=lambda pair: -pair[0],
        )
        matches = [
            (score, incident)
            for score, incident in scored
            if score >= MATCH_SIMILARITY and (responder or self._visible(incident))
        ]
        return [view(session, incident, responder=responder, score=score) for score, incident in matches[:MAX_MATCHES]]

    def last_resolved(self, session: Session, question: str, *, responder: bool) -> IncidentView | None:
        """The most recently resolved incident of the service the question names (else the closest match)."""
        resolved = session.scalars(
            select(Incident)
            .where(Incident.status == IncidentStatus.RESOLVED, Incident.merged_into.is_(None))
            .order_by(Incident.resolved_at.desc())
            .limit(MAX_OPEN)
        ).all()
        allowed = [incident for incident in resolved if responder or self._visible(incident)]
        named = [incident for incident in allowed if names_service(question, incident.service)]
        if named:
            return view(session, named[0], responder=responder, score=1.0)
        best = max(
            ((self._score(question, incident), incident) for incident in allowed),
            default=None,
            key=lambda pair: pair[0],
        )
        if best is None or best[0] < MATCH_SIMILARITY:
            return None
        return view(session, best[1], responder=responder, score=best[0])

    def _score(self, question: str, incident: Incident) -> float:
        bonus = SERVICE_BONUS if names_service(question, incident.service) else 0.0
        if self._embedder is None:
            words = set(_WORD.findall(question.lower()))
            overlap = words & set(_WORD.findall(incident_text(incident).lower())) - GENERIC_TOKENS
            return bonus + 0.2 * len(overlap)
        vectors = self._embedder.embed([question, incident_text(incident)])
        return bonus + float(np.dot(vectors[0], vectors[1]))


def view(session: Session, incident: Incident, *, responder: bool, score: float = 0.0) -> IncidentView:
    """What the asker may see of ``incident``."""
    query = select(TimelineEntry).where(TimelineEntry.incident_id == incident.id)
    if not responder:
        query = query.where(TimelineEntry.kind.in_(PUBLIC_UPDATES))
    latest = session.scalars(query.order_by(TimelineEntry.id.desc()).limit(1)).first()
    update = None
    if latest is not None:
        update = latest.text if responder else PUBLIC_UPDATES[latest.kind]
    return IncidentView(
        id=incident.id,
        title=incident.title,
        service=incident.service,
        status=str(incident.status),
        opened_at=incident.opened_at,
        resolved_at=incident.resolved_at,
        update=update,
        update_at=latest.at if latest is not None else None,
        severity=incident.severity if responder else None,
        category=incident.category if responder else None,
        channel=(incident.incident_channel or incident.slack_channel) if responder else None,
        score=score,
    )
