"""What the first incident post suggests: runbooks and similar past incidents (stored as JSON with the incident)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class RunbookHit:
    doc: str  # the runbook's id: its path in the runbook folder without .md
    title: str
    score: float  # confidence, 0..1, comparable across queries
    section: str | None
    url: str | None  # the runbook's source URL, when its front matter names one
    actions: tuple[str, ...] = ()  # remediation actions its front matter names (``actions: [...]``)


@dataclass(frozen=True, slots=True)
class SimilarIncident:
    id: int
    title: str
    score: float  # cosine similarity of the incidents' texts
    status: str
    opened_at: datetime
    resolution: str  # the note people wrote, "auto-resolved after N min", or "still open"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "opened_at": self.opened_at.isoformat()}


@dataclass(frozen=True, slots=True)
class Suggestions:
    runbooks: tuple[RunbookHit, ...]  # best first; empty when none fits
    runbook_confidence: float  # the best runbook's confidence, even when below the threshold
    similar: tuple[SimilarIncident, ...]  # resolved ones first, then by similarity
    failed: bool = False  # the search raised: the post says so rather than "looking for…" forever

    @property
    def runbook_actions(self) -> tuple[str, ...]:
        """The actions the fitting runbooks name, best runbook first, each once."""
        return tuple(dict.fromkeys(action for hit in self.runbooks for action in hit.actions))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "similar": [item.to_json() for item in self.similar]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Suggestions:
        return cls(
            runbooks=tuple(
                RunbookHit(**{**item, "actions": tuple(item.get("actions", ()))}) for item in data.get("runbooks", ())
            ),
            runbook_confidence=float(data.get("runbook_confidence", 0.0)),
            similar=tuple(
                SimilarIncident(**{**item, "opened_at": datetime.fromisoformat(item["opened_at"])})
                for item in data.get("similar", ())
            ),
            failed=bool(data.get("failed", False)),
        )
