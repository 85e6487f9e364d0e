"""An incident's stored ranking: candidates to and from JSON, and reading it back for posts, commands and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.rootcause.models import ConfirmedCause, RootCauseRanking
from knowledge.rootcause.model import CauseCandidate, Evidence

SHOWN = 3  # candidates a post shows (the top with its evidence, the next two on one line each)


@dataclass(frozen=True, slots=True)
class StoredRanking:
    """What is known of an incident's cause: its ranking (empty until first ranked), whether its alerts changed
    since, and the cause people confirmed, if any."""

    candidates: tuple[CauseCandidate, ...]
    stale: bool
    ranked_at: datetime | None
    confirmed: str | None = None

    @property
    def top(self) -> CauseCandidate | None:
        return self.candidates[0] if self.candidates else None

    def rank_of(self, name: str) -> int | None:
        """1 for the top candidate; None when ``name`` is not in the ranking."""
        return next((n for n, c in enumerate(self.candidates, start=1) if c.name == name), None)


def to_json(candidates: Sequence[CauseCandidate]) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "kind": c.kind,
            "confidence": round(c.confidence, 4),
            "evidence": [{"source": e.source, "text": e.text, "weight": round(e.weight, 4)} for e in c.evidence],
        }
        for c in candidates
    ]


def from_json(data: Sequence[dict[str, Any]]) -> tuple[CauseCandidate, ...]:
    return tuple(
        CauseCandidate(
            name=str(item["name"]),
            kind=str(item["kind"]),
            confidence=float(item["confidence"]),
            evidence=tuple(
                Evidence(str(e["source"]), str(e["text"]), float(e["weight"])) for e in item.get("evidence", ())
            ),
        )
        for item in data
    )


def shown_part(candidates: Sequence[CauseCandidate]) -> list[Any]:
    """What a post shows of a ranking (an edit is due only when this changes)."""
    return [[c.name, f"{c.confidence:.2f}", [e.text for e in c.evidence]] for c in candidates[:SHOWN]]


def stored_ranking(session: Session, incident_id: int) -> StoredRanking | None:
    """The incident's ranking as stored; None when the ranker never saw the incident."""
    row = session.get(RootCauseRanking, incident_id)
    confirmed = session.get(ConfirmedCause, incident_id)
    if row is None and confirmed is None:
        return None
    return StoredRanking(
        candidates=from_json(row.candidates) if row is not None else (),
        stale=row.stale if row is not None else False,
        ranked_at=row.ranked_at if row is not None else None,
        confirmed=confirmed.name if confirmed is not None else None,
    )


def ranking_fingerprint(session: Session, incident_id: int) -> list[Any]:
    """What the post shows of the incident's cause (the outbox re-renders a post that changed on its way)."""
    stored = stored_ranking(session, incident_id)
    return [] if stored is None else [stored.confirmed, *shown_part(stored.candidates)]


def ranking_json(stored: StoredRanking | None) -> dict[str, Any] | None:
    """The ranking as ``incibot incidents show --json`` gives it."""
    if stored is None:
        return None
    return {
        "candidates": to_json(stored.candidates),
        "stale": stored.stale,
        "ranked_at": stored.ranked_at.isoformat() if stored.ranked_at is not None else None,
        "confirmed": stored.confirmed,
    }


def ranking_lines(stored: StoredRanking | None) -> list[str]:
    """The ranking in plain text, each candidate with its evidence (``incibot incidents show``)."""
    if stored is None:
        return ["not ranked yet"]
    lines = [f"confirmed by a person: {stored.confirmed}"] if stored.confirmed is not None else []
    for rank, candidate in enumerate(stored.candidates, start=1):
        lines.append(f"{rank}. {candidate.name} ({candidate.kind}) {candidate.confidence:.2f}")
        lines += [f"     {evidence.source}: {evidence.text}" for evidence in candidate.evidence]
    if not stored.candidates:
        lines.append("no candidate" + (" yet (being ranked)" if stored.stale else ""))
    elif stored.stale:
        lines.append("(alerts joined since: being ranked again)")
    return lines
