"""How well cosine similarity of canonical texts tells similar incidents apart (``incibot eval similar``).

Reads an alert stream in the storm format (``at``, ``alert``, ``truth``); each ground-truth incident is
represented by its first firing alert, as a live incident is by its first alert. Two incidents count as
similar when those alerts have the same alert name (the same failure, on another service, host or day),
and as unrelated otherwise. For each threshold it reports the share of similar pairs kept, the share of
unrelated pairs let through, and the precision of the top 3 neighbours an incident post would show.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from knowledge.evaluation import open_text
from knowledge.retrieval import TextEmbedder
from knowledge.text import alert_from_mapping, alert_text

THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
SHOWN = 3


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    threshold: float
    similar_kept: float  # share of same-alert pairs at or above the threshold
    unrelated_passed: float  # share of other pairs at or above it
    top3_precision: float  # of the neighbours shown (up to 3 per incident, above the threshold), same alert
    shown_per_incident: float


def first_alerts(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The first firing alert of each ground-truth incident, in order of appearance."""
    first: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            incident = str(item["truth"]["incident"])
            alert = dict(item["alert"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"line {number}: not a stream line with truth: {exc}") from exc
        if alert.get("status", "firing") == "firing" and incident not in first:
            first[incident] = alert
    return list(first.values())


def similarity_table(
    alerts: Sequence[dict[str, Any]], embedder: TextEmbedder, thresholds: Sequence[float] = THRESHOLDS
) -> list[ThresholdRow]:
    texts = [alert_text(alert_from_mapping(a)) for a in alerts]
    names = [str((a.get("labels") or {}).get("alertname", "")) for a in alerts]
    vectors = embedder.embed(texts)
    sims: npt.NDArray[np.float32] = vectors @ vectors.T
    pairs = list(itertools.combinations(range(len(alerts)), 2))
    same = np.array([sims[i, j] for i, j in pairs if names[i] == names[j]], dtype=np.float64)
    other = np.array([sims[i, j] for i, j in pairs if names[i] != names[j]], dtype=np.float64)
    order = np.argsort(-sims, axis=1)
    rows = []
    for threshold in thresholds:
        shown = right = 0
        for i in range(len(alerts)):
            neighbours = [j for j in order[i] if j != i and sims[i, j] >= threshold][:SHOWN]
            shown += len(neighbours)
            right += sum(names[j] == names[i] for j in neighbours)
        rows.append(
            ThresholdRow(
                threshold=threshold,
                similar_kept=float((same >= threshold).mean()) if len(same) else float("nan"),
                unrelated_passed=float((other >= threshold).mean()) if len(other) else float("nan"),
                top3_precision=right / shown if shown else float("nan"),
                shown_per_incident=shown / len(alerts) if alerts else 0.0,
            )
        )
    return rows


def read_stream(path: str | Path) -> list[dict[str, Any]]:
    return first_alerts(open_text(path))


def format_rows(rows: Sequence[ThresholdRow]) -> str:
    lines = [f"{'threshold':>9} {'similar kept':>12} {'unrelated in':>12} {'top-3 precision':>15} {'shown':>6}"]
    lines += [
        f"{r.threshold:9.2f} {r.similar_kept:12.3f} {r.unrelated_passed:12.4f} {r.top3_precision:15.3f} "
        f"{r.shown_per_incident:6.2f}"
        for r in rows
    ]
    return "\n".join(lines)
