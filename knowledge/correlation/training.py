"""Training data and fitting for the pair model.

Pairs come from labelled streams (the storm format's ``truth.incident``) replayed with the true incidents as
the state (teacher forcing): at each new occurrence, every candidate the live index would offer becomes a
pair, labelled 1 when it is the alert's true incident. The model is a calibrated gradient-boosted classifier.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from knowledge.alerts import AlertStatus
from knowledge.correlation.correlator import Correlator
from knowledge.correlation.facts import alert_facts
from knowledge.correlation.state import CorrelationState
from knowledge.correlation.stream import StreamLine, group_key, occurrence_of


@dataclass(slots=True)
class Pairs:
    """Feature rows, labels, and the decision each row belongs to (for grouped splits)."""

    rows: list[npt.NDArray[np.float64]] = field(default_factory=list)
    labels: list[npt.NDArray[np.int8]] = field(default_factory=list)
    groups: list[npt.NDArray[np.int64]] = field(default_factory=list)
    decisions: int = 0

    def arrays(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8], npt.NDArray[np.int64]]:
        if not self.rows:
            return np.zeros((0, 0)), np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.int64)
        return np.vstack(self.rows), np.concatenate(self.labels), np.concatenate(self.groups)

    def __len__(self) -> int:
        return sum(len(labels) for labels in self.labels)


def labelled_pairs(lines: Iterable[StreamLine], correlator: Correlator, pairs: Pairs | None = None) -> Pairs:
    """Add the pairs of one labelled stream to ``pairs``."""
    pairs = pairs or Pairs()
    state = CorrelationState(correlator)
    true_ids: dict[str, int] = {}
    for n, line in enumerate(lines):
        if line.truth is None or "incident" not in line.truth:
            raise ValueError(f"line {line.index + 1}: no truth.incident to learn from")
        if n % 500 == 0:
            state.forget_old(line.at)
        occurrence = occurrence_of(line.alert)
        if line.alert.status == AlertStatus.RESOLVED:
            state.resolve(occurrence, line.at)
            continue
        if occurrence in state.occurrences:
            continue
        truth = str(line.truth["incident"])
        facts = alert_facts(line.alert, group_key(line.alert.labels))
        known = true_ids.get(truth)
        candidates = state.candidates(facts, line.at)
        same = correlator.same_alert(facts, candidates)
        eligible = [c for c in candidates if c.firing > 0 or _recent(correlator, c, line.at)]
        if same is None and eligible:
            rows, _ = correlator.score_rows(facts, line.at, eligible)
            pairs.rows.append(rows)
            pairs.labels.append(np.array([c.id == known for c in eligible], dtype=np.int8))
            pairs.groups.append(np.full(len(eligible), pairs.decisions, dtype=np.int64))
            pairs.decisions += 1
        if known is None or known not in state.profiles:
            incident = state.apply(facts, line.at, occurrence, None)
            true_ids[truth] = incident
        else:
            state.apply(facts, line.at, occurrence, known)
    return pairs


def _recent(correlator: Correlator, candidate: object, at: object) -> bool:
    from knowledge.correlation.profile import IncidentProfile

    assert isinstance(candidate, IncidentProfile)
    return bool(candidate.resolved_at is not None and at - candidate.resolved_at <= correlator.policy.reopen_window)  # type: ignore[operator]
