"""People's corrections as training data: each one exactly once, with who and when, and its digest for the card.

Correlation corrections (merge, split, "not related") are labelled (alert, incident) pairs; a pair corrected
again counts once, with its latest label. Category picks are one per incident already (a later pick replaces
the row). ``incibot models data export`` writes both as JSON Lines (:func:`export_lines`), in the shapes of
``FORMATS.md``: a category line is a classification item (``id``, ``alert``, ``category``) that
``incibot eval classify --label category`` reads; a correlation line is a labelled pair.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.incidents.models import CategoryLabel, CorrelationFeedback, IncidentAlert
from bot.ingest.models import Alert


@dataclass(frozen=True, slots=True)
class Provenance:
    """One body of training data: where it comes from, how many examples, and the digest of their lines."""

    source: str  # "seed set", "generator", "people's labels", "labelled stream"
    description: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "description": self.description, "sha256": self.sha256, "size": self.size}


def pair_corrections(session: Session, width: int | None = None) -> list[CorrelationFeedback]:
    """Stored correlation corrections, oldest first, a pair corrected twice once (its latest label); rows of
    another feature width than ``width`` are left out."""
    latest: dict[tuple[int, int] | int, CorrelationFeedback] = {}
    for row in session.scalars(select(CorrelationFeedback).order_by(CorrelationFeedback.id)):
        if width is not None and len(row.features) != width:
            continue
        key = (row.alert_id, row.incident_id) if row.alert_id and row.incident_id else -row.id
        latest.pop(key, None)  # re-inserted: the dict keeps the latest correction's place
        latest[key] = row
    return list(latest.values())


def category_corrections(session: Session) -> list[CategoryLabel]:
    """People's category picks and corrections, oldest first (one per incident)."""
    return list(session.scalars(select(CategoryLabel).order_by(CategoryLabel.id)))


def pair_line(row: CorrelationFeedback, alert: Alert | None, features: Sequence[str]) -> dict[str, Any]:
    return {
        "id": f"correlation-feedback-{row.id}",
        "alert": _alert_object(alert),
        "incident_id": row.incident_id,
        "related": row.related,
        "kind": row.kind,
        "features": dict(zip(features, row.features, strict=False)),
        "actor": row.actor,
        "at": row.at.isoformat(),
    }


def category_line(row: CategoryLabel, alert: Alert | None) -> dict[str, Any]:
    return {
        "id": f"category-label-{row.id}",
        "alert": _alert_object(alert),
        "category": row.category,
        "texts": row.texts,
        "incident_id": row.incident_id,
        "previous": row.previous,
        "model_confidence": row.model_confidence,
        "actor": row.actor,
        "at": row.at.isoformat(),
    }


def export_lines(session: Session, features: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Every correction as it is trained on: category lines, then correlation pairs (named ``features``)."""
    for label in category_corrections(session):
        yield category_line(label, first_alert(session, label.incident_id))
    for pair in pair_corrections(session, len(features)):
        yield pair_line(pair, session.get(Alert, pair.alert_id) if pair.alert_id else None, features)


def provenance(description: str, lines: Sequence[dict[str, Any]]) -> Provenance:
    """People's labels as a card's data source: the digest of their export lines (the same bytes the export
    writes), so a card names exactly the corrections a model learned from."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(json_line(line).encode())
    return Provenance("people's labels", description, digest.hexdigest(), len(lines))


def json_line(line: dict[str, Any]) -> str:
    return json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n"


def first_alert(session: Session, incident_id: int | None) -> Alert | None:
    """An incident's first alert (the one its exported category line shows; ``None`` once it is gone)."""
    if incident_id is None:
        return None
    return session.scalars(
        select(Alert)
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident_id)
        .order_by(Alert.id)
        .limit(1)
    ).first()


def _alert_object(alert: Alert | None) -> dict[str, Any] | None:
    """The Alertmanager-shaped alert object of FORMATS.md (``None`` once the alert is gone)."""
    if alert is None:
        return None
    return {
        "labels": alert.labels,
        "annotations": alert.annotations,
        "status": alert.status,
        "fingerprint": alert.fingerprint,
    }
