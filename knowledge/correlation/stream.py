"""Alert streams in the storm format (``{"at", "alert", "truth"?}`` per line), replayed in simulated time.

:func:`correlate` runs a stream through :class:`CorrelationState` and the given correlator, reading only
``at`` and ``alert`` of each line, one decision per new occurrence, in order, with no look-ahead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from knowledge.alerts import AlertStatus, NormalizedAlert
from knowledge.correlation.correlator import Correlator, Decision
from knowledge.correlation.facts import alert_facts
from knowledge.correlation.state import CorrelationState
from knowledge.evaluation import open_text
from knowledge.text import alert_from_mapping

# How Alertmanager is most often told to group (and how `incibot replay` delivers a stream).
DEFAULT_GROUP_BY: tuple[str, ...] = ("alertname", "cluster", "namespace")
_FORGET_EVERY = 500  # lines between clean-ups of long-resolved incidents


@dataclass(frozen=True, slots=True)
class StreamLine:
    index: int
    at: datetime
    alert: NormalizedAlert
    truth: Mapping[str, Any] | None  # never read by the correlator


@dataclass(frozen=True, slots=True)
class Assignment:
    """The incident a line was assigned to when it was applied (never revised)."""

    index: int
    incident: int
    decision: Decision | None  # None for re-sends and resolves of a known occurrence


def group_key(labels: Mapping[str, str], group_by: Iterable[str] = DEFAULT_GROUP_BY) -> str:
    """Alertmanager's group key for a route that groups by ``group_by`` (``{}:{a="x",b="y"}``)."""
    pairs = ",".join(f'{name}="{labels.get(name, "")}"' for name in sorted(group_by) if labels.get(name))
    return "{}:{" + pairs + "}"


def read_stream(path: str | Path) -> Iterator[StreamLine]:
    """The lines of a stream file (``.jsonl`` or ``.jsonl.gz``); a bad line raises ``ValueError`` naming it."""
    for number, raw in enumerate(open_text(path)):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
            at = _time(item["at"])
            alert = alert_from_mapping(item["alert"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: line {number + 1}: not a stream line ({exc})") from exc
        yield StreamLine(number, at, alert, item.get("truth"))


def occurrence_of(alert: NormalizedAlert) -> tuple[str, str]:
    return alert.fingerprint, alert.starts_at.isoformat() if alert.starts_at else ""


def correlate(lines: Iterable[StreamLine], correlator: Correlator) -> Iterator[Assignment]:
    """Assign every line to an incident, in order, as the worker would have when it arrived."""
    state = CorrelationState(correlator)
    for n, line in enumerate(lines):
        if n % _FORGET_EVERY == 0:
            state.forget_old(line.at)
        occurrence = occurrence_of(line.alert)
        known = state.occurrences.get(occurrence)
        if line.alert.status == AlertStatus.RESOLVED:
            resolved = state.resolve(occurrence, line.at)
            yield Assignment(line.index, resolved if resolved is not None else -1, None)
            continue
        if known is not None:
            yield Assignment(line.index, known, None)
            continue
        facts = alert_facts(line.alert, group_key(line.alert.labels))
        decision = state.decide(facts, line.at)
        incident = state.apply(facts, line.at, occurrence, decision.incident)
        yield Assignment(line.index, incident, decision)


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"'at' must be a string, not {value!r}")
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"'at' has no time zone: {value!r}")
    return at
