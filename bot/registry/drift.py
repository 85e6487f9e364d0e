"""What the models decided lately, read from the database: for ``/metrics`` and ``incibot models drift``.

The correlator's decisions are the alerts' links (``incident_alerts.decision``, its probability): ``joined`` or
``new`` (a new incident, the guard's refusals included); links that people's corrections moved are not its
decisions. The classifier's are the incidents' categories: ``classified`` by the model or ``abstained``
(unclassified, or picked by a person when the model had abstained). Confidence is the correlator's probability
of the decisions it scored and the classifier's confidence in its class. ``incibot models drift`` compares them
with the champion's held-out evaluation (its registry card).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from bot.incidents.models import CategoryLabel, CorrelationFeedback, Incident, IncidentAlert
from bot.registry.models import ModelVersion
from bot.registry.store import DEFAULT_VERSION, KINDS, champion

JOINED_DECISIONS = ("learned", "same_alert", "source_group")
NEW_DECISIONS = ("new", "guarded")
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
MOVED = 0.05  # an absolute change of the mean confidence or the abstention share that counts as drift
MIN_DECISIONS = 20  # fewer decisions say nothing either way


@dataclass(frozen=True, slots=True)
class Observed:
    """A kind's decisions since some time: how many, by outcome, and their confidence."""

    kind: str
    outcomes: dict[str, int]
    confidences: list[int]  # cumulative counts at or below each of CONFIDENCE_BUCKETS
    confidence_count: int
    confidence_sum: float

    @property
    def decisions(self) -> int:
        return sum(self.outcomes.values())

    @property
    def abstention(self) -> float | None:
        """The share of decisions the model did not commit to (a new incident; unclassified)."""
        abstained = self.outcomes.get("new", 0) + self.outcomes.get("abstained", 0)
        return abstained / self.decisions if self.decisions else None

    @property
    def confidence_mean(self) -> float | None:
        return self.confidence_sum / self.confidence_count if self.confidence_count else None


def observe(session: Session, kind: str, since: datetime) -> Observed:
    """The decisions of ``kind`` made at or after ``since``."""
    if kind == "correlate":
        return _observe(
            session,
            kind,
            {
                "joined": IncidentAlert.decision.in_(JOINED_DECISIONS),
                "new": IncidentAlert.decision.in_(NEW_DECISIONS),
            },
            IncidentAlert.probability,
            IncidentAlert.linked_at >= since,
        )
    abstained_then_picked = (
        select(CategoryLabel.id)
        .where(CategoryLabel.incident_id == Incident.id, CategoryLabel.previous.is_(None))
        .exists()
    )
    return _observe(
        session,
        kind,
        {
            "classified": and_(Incident.category_source == "model", Incident.category.is_not(None)),
            "abstained": or_(
                Incident.category.is_(None), and_(Incident.category_source == "person", abstained_then_picked)
            ),
        },
        Incident.category_confidence,
        Incident.opened_at >= since,
    )


def corrections(session: Session) -> dict[str, int]:
    """People's corrections by kind: merge, split, not_related (their pairs counted once each) and category."""
    counts = {
        kind: int(count)
        for kind, count in session.execute(
            select(CorrelationFeedback.kind, func.count(func.distinct(CorrelationFeedback.at))).group_by(
                CorrelationFeedback.kind
            )
        )
    }
    counts["category"] = int(session.scalar(select(func.count()).select_from(CategoryLabel)) or 0)
    return counts


def champions(session: Session) -> dict[str, str]:
    """Each kind's champion version (``0``: the packaged default)."""
    return {kind: (row.version if (row := champion(session, kind)) else DEFAULT_VERSION) for kind in KINDS}


def baseline(session: Session, kind: str) -> dict[str, Any] | None:
    """The champion's held-out evaluation: its card's metrics, or for the packaged default the scores a training
    run recorded for it as the champion it compared with (``None``: never evaluated)."""
    row = champion(session, kind)
    if row is not None:
        return dict(row.card.get("metrics") or {})
    for version in session.scalars(
        select(ModelVersion).where(ModelVersion.kind == kind).order_by(ModelVersion.id.desc())
    ):
        compared = version.metrics.get("champion") or {}
        if compared.get("version") == DEFAULT_VERSION and len(compared) > 1:
            return {key: value for key, value in compared.items() if key != "version"}
    return None


def compare(kind: str, version: str, observed: Observed, expected: dict[str, Any] | None, days: float) -> str:
    """One line: this period's confidence and abstention beside the champion's evaluation, and whether they
    moved by more than :data:`MOVED`."""
    head = f"{kind} (champion {version}): {observed.decisions} decisions in the last {days:g} days"
    if observed.decisions < MIN_DECISIONS:
        return f"{head}: too few to compare (at least {MIN_DECISIONS})"
    if not expected:
        return f"{head}: no evaluation of the champion to compare with (train a challenger: incibot models train)"
    moved = []
    parts = []
    for name, value in (("confidence_mean", observed.confidence_mean), ("abstention", observed.abstention)):
        reference = expected.get(name)
        if value is None or reference is None:
            continue
        parts.append(f"{name.replace('_', ' ')} {value:.3f} (evaluation {float(reference):.3f})")
        if abs(value - float(reference)) > MOVED:
            moved.append(name.replace("_", " "))
    verdict = f"MOVED: {', '.join(moved)}" if moved else "steady"
    return f"{head}; {'; '.join(parts)}: {verdict}"


def _observe(
    session: Session,
    kind: str,
    outcomes: dict[str, ColumnElement[bool]],
    confidence: Any,
    window: ColumnElement[bool],
) -> Observed:
    table = confidence.class_
    columns = [
        *(func.count().filter(condition) for condition in outcomes.values()),
        func.count(confidence),
        func.sum(confidence),
        *(func.count().filter(confidence <= bucket) for bucket in CONFIDENCE_BUCKETS),
    ]
    row = session.execute(select(*columns).select_from(table).where(window)).one()
    counts = [int(value or 0) for value in row[: len(outcomes)]]
    rest = row[len(outcomes) :]
    return Observed(
        kind,
        dict(zip(outcomes, counts, strict=True)),
        [int(value or 0) for value in rest[2:]],
        int(rest[0] or 0),
        float(rest[1] or 0.0),
    )
