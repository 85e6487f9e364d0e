"""``eval dedup``: replay a stream through the correlator, write its predictions, and score them against truth.

:func:`predict` runs :func:`~knowledge.correlation.stream.correlate` on the stream with ``truth`` removed from
every line, and hands each prediction line over as soon as its line is applied. :func:`score` computes the
metrics of ``../shared/tools/score_grouping.py`` (the same definitions and rounding) over firing lines
(events), their first deliveries (episodes), and both restricted to fault incidents (``kind: cascade``).
The baselines are scored the same way: Alertmanager's grouping and one incident per fingerprint.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from knowledge.alerts import AlertStatus
from knowledge.correlation.correlator import Correlator
from knowledge.correlation.stream import StreamLine, correlate, group_key, occurrence_of
from knowledge.rootcause.replay import ROOT_CANDIDATES, IncidentCauses

SCOPES: tuple[str, ...] = ("events", "episodes", "events_cascade_only", "episodes_cascade_only")
SHOWN_SCOPES: tuple[str, ...] = ("events", "episodes", "episodes_cascade_only")
GROUP_INTERVAL = timedelta(minutes=5)  # Alertmanager's default: how long an emptied group lingers
Metrics = dict[str, float | int]


def predict(
    lines: Sequence[StreamLine], correlator: Correlator, causes: IncidentCauses | None = None
) -> Iterator[dict[str, Any]]:
    """One prediction line per stream line, in order, each as soon as its line is applied. ``truth`` is removed
    before the correlator sees a line. A resolve of an alert never seen firing belongs to no incident: no line.
    With ``causes``, each line carries the root-cause ranking its incident shows right after the line."""
    blind = [replace(line, truth=None) for line in lines]
    by_index = {line.index: line for line in blind}
    for assignment in correlate(blind, correlator):
        if assignment.incident < 0:
            continue
        ranking: list[str] = []
        if causes is not None:
            line = by_index[assignment.index]
            if assignment.decision is not None:
                ranking = causes.joined(assignment.incident, line.alert, line.at)
            else:
                ranking = causes.current(assignment.incident)
        yield {
            "index": assignment.index,
            "incident": str(assignment.incident),
            "root_service": ranking[0] if ranking else None,
            "root_candidates": ranking[:ROOT_CANDIDATES],
        }


def has_truth(lines: Sequence[StreamLine]) -> bool:
    """Whether every firing line says its true incident (what scoring needs)."""
    return all(
        line.truth is not None and line.truth.get("incident") is not None
        for line in lines
        if line.alert.status == AlertStatus.FIRING
    )


def score(lines: Sequence[StreamLine], predicted: Mapping[int, str]) -> dict[str, Metrics]:
    """The metrics per scope; a firing line without a prediction is its own incident."""
    firing = [line for line in lines if line.alert.status == AlertStatus.FIRING]
    seen: set[tuple[str, str]] = set()
    episodes = []
    for line in firing:
        if occurrence_of(line.alert) not in seen:
            seen.add(occurrence_of(line.alert))
            episodes.append(line)
    chosen = {
        "events": firing,
        "episodes": episodes,
        "events_cascade_only": [line for line in firing if _kind(line) == "cascade"],
        "episodes_cascade_only": [line for line in episodes if _kind(line) == "cascade"],
    }
    return {
        scope: cluster_metrics(
            [str(_truth(line)["incident"]) for line in scoped],
            [predicted.get(line.index, f"__missing_{line.index}") for line in scoped],
        )
        for scope, scoped in chosen.items()
    }


def root_cause_metrics(lines: Sequence[StreamLine], predictions: Mapping[int, Mapping[str, Any]]) -> Metrics:
    """Root-cause top-1/top-3 over all and over cascade incidents, as ``score_grouping.py`` computes them: each
    predicted incident's root is the majority ``root_service`` of its firing lines, its candidates ranked by the
    sum of 1/rank over its lines; each true incident is judged by the predicted incident holding most of its
    firing lines."""
    firing = [line for line in lines if line.alert.status == AlertStatus.FIRING]
    incident_of = {
        line.index: str(predictions[line.index]["incident"]) if line.index in predictions else f"__missing_{line.index}"
        for line in firing
    }
    votes: defaultdict[str, Counter[str]] = defaultdict(Counter)
    ranks: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
    for line in firing:
        prediction = predictions.get(line.index, {})
        if prediction.get("root_service") is not None:
            votes[incident_of[line.index]][_norm(prediction["root_service"])] += 1
        for k, name in enumerate(prediction.get("root_candidates") or []):
            ranks[incident_of[line.index]][_norm(name)] += 1.0 / (k + 1)
    by_true: defaultdict[str, list[StreamLine]] = defaultdict(list)
    for line in firing:
        by_true[str(_truth(line)["incident"])].append(line)
    result: Metrics = {}
    for scope in ("all", "cascade"):
        n = top1 = top3 = 0
        for true_lines in by_true.values():
            if scope == "cascade" and _kind(true_lines[0]) != "cascade":
                continue
            n += 1
            held = Counter(incident_of[line.index] for line in true_lines).most_common(1)[0][0]
            root = votes[held].most_common(1)[0][0] if votes[held] else None
            ranked = sorted(ranks[held], key=lambda name: -ranks[held][name])
            if root and root not in ranked:
                ranked = [root, *ranked]
            truth = _norm(_truth(true_lines[0]).get("root_service"))
            top1 += int(root == truth)
            top3 += int(truth in ranked[:3])
        result[f"root_top1_{scope}"] = round(top1 / n, 4) if n else 0.0
        result[f"root_top3_{scope}"] = round(top3 / n, 4) if n else 0.0
        result[f"n_incidents_{scope}"] = n
    return result


def earliest_service_baseline(lines: Sequence[StreamLine], predicted: Mapping[int, str]) -> dict[int, dict[str, Any]]:
    """The root-cause baseline: each predicted incident's root is the ``service`` of its earliest firing alert."""
    first: dict[str, str] = {}
    out: dict[int, dict[str, Any]] = {}
    for line in lines:
        if line.alert.status != AlertStatus.FIRING or line.index not in predicted:
            continue
        incident = predicted[line.index]
        labels = line.alert.labels
        root = first.setdefault(incident, labels.get("service") or labels.get("job") or "")
        out[line.index] = {"incident": incident, "root_service": root, "root_candidates": [root]}
    return out


def format_root_cause(name: str, metrics: Metrics) -> str:
    """One line of root-cause figures."""
    return (
        f"{name}: root top-1/top-3 cascade {metrics['root_top1_cascade']:.3f}/{metrics['root_top3_cascade']:.3f} "
        f"({metrics['n_incidents_cascade']} incidents), all {metrics['root_top1_all']:.3f}/"
        f"{metrics['root_top3_all']:.3f} ({metrics['n_incidents_all']})"
    )


def alertmanager_baseline(lines: Sequence[StreamLine]) -> dict[int, str]:
    """(b) Alertmanager's notification groups (``group_by: [alertname, cluster, namespace]``): alerts with one
    group key share a group until all of them have resolved and a ``group_interval`` has passed."""
    firing: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)
    emptied: dict[str, datetime] = {}
    current: dict[str, str] = {}
    assigned: dict[int, str] = {}
    for line in lines:
        key, occurrence = group_key(line.alert.labels), occurrence_of(line.alert)
        if line.alert.status == AlertStatus.RESOLVED:
            firing[key].discard(occurrence)
            if not firing[key]:
                emptied[key] = line.at
        elif key not in current or (not firing[key] and line.at - emptied[key] > GROUP_INTERVAL):
            current[key] = f"{key}#{line.index}"
        if line.alert.status == AlertStatus.FIRING:
            firing[key].add(occurrence)
        assigned[line.index] = current.get(key, key)
    return assigned


def fingerprint_baseline(lines: Sequence[StreamLine]) -> dict[int, str]:
    """(a) One incident per alert (fingerprint), however far apart its firings are."""
    return {line.index: line.alert.fingerprint for line in lines}


BASELINES: dict[str, Callable[[Sequence[StreamLine]], dict[int, str]]] = {
    "(b) Alertmanager group_by [alertname, cluster, namespace]": alertmanager_baseline,
    "(a) one incident per fingerprint": fingerprint_baseline,
}


def cluster_metrics(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> Metrics:
    """Pairwise and B-cubed precision/recall/F1, adjusted Rand index, noise reduction, over-/under-merge and
    exactly recovered incidents of a predicted clustering against the true one (equal-length label lists)."""
    n = len(truth)
    if n == 0:
        return {}
    both = Counter(zip(truth, predicted, strict=True))
    true_sizes, predicted_sizes = Counter(truth), Counter(predicted)
    together = sum(_pairs(v) for v in both.values())
    true_pairs = sum(_pairs(v) for v in true_sizes.values())
    predicted_pairs = sum(_pairs(v) for v in predicted_sizes.values())
    pairwise_p = together / predicted_pairs if predicted_pairs else 1.0
    pairwise_r = together / true_pairs if true_pairs else 1.0
    bcubed_p = sum(v * v / predicted_sizes[p] for (_, p), v in both.items()) / n
    bcubed_r = sum(v * v / true_sizes[t] for (t, _), v in both.items()) / n
    expected = true_pairs * predicted_pairs / _pairs(n) if _pairs(n) else 0.0
    maximum = (true_pairs + predicted_pairs) / 2
    ari = (together - expected) / (maximum - expected) if maximum != expected else 1.0
    truths_in: defaultdict[Hashable, set[Hashable]] = defaultdict(set)
    predictions_of: defaultdict[Hashable, set[Hashable]] = defaultdict(set)
    for t, p in both:
        truths_in[p].add(t)
        predictions_of[t].add(p)
    over = [len(s) for s in truths_in.values() if len(s) > 1]
    under = [len(s) for s in predictions_of.values() if len(s) > 1]
    exact = sum(1 for ps in predictions_of.values() if len(ps) == 1 and len(truths_in[next(iter(ps))]) == 1)
    return {
        "n": n,
        "true_incidents": len(true_sizes),
        "pred_incidents": len(predicted_sizes),
        "pairwise_precision": round(pairwise_p, 4),
        "pairwise_recall": round(pairwise_r, 4),
        "pairwise_f1": round(_f1(pairwise_p, pairwise_r), 4),
        "bcubed_precision": round(bcubed_p, 4),
        "bcubed_recall": round(bcubed_r, 4),
        "bcubed_f1": round(_f1(bcubed_p, bcubed_r), 4),
        "ari": round(ari, 4),
        "noise_reduction": round(1 - len(predicted_sizes) / n, 4),
        "ideal_noise_reduction": round(1 - len(true_sizes) / n, 4),
        "over_merged_pred_incidents": len(over),
        "over_merge_excess": sum(k - 1 for k in over),
        "under_merged_true_incidents": len(under),
        "under_merge_excess": sum(k - 1 for k in under),
        "exact_incidents": exact,
        "exact_incident_rate": round(exact / len(true_sizes), 4),
    }


def format_scores(name: str, scores: Mapping[str, Metrics]) -> str:
    """The scores of one grouping, one line per shown scope, as the reference scorer prints them."""
    lines = [name]
    for scope in SHOWN_SCOPES:
        m = scores[scope]
        if not m:
            lines.append(f"  [{scope:21s}] no lines")
            continue
        lines.append(
            f"  [{scope:21s}] pairwise P/R/F1 {m['pairwise_precision']:.3f}/{m['pairwise_recall']:.3f}/"
            f"{m['pairwise_f1']:.3f}  B3 P/R/F1 {m['bcubed_precision']:.3f}/{m['bcubed_recall']:.3f}/"
            f"{m['bcubed_f1']:.3f}  ARI {m['ari']:.3f}  pred/true incidents {m['pred_incidents']}/"
            f"{m['true_incidents']}  noise-red {m['noise_reduction']:.3f} (ideal {m['ideal_noise_reduction']:.3f})"
            f"  over-merged {m['over_merged_pred_incidents']} (+{m['over_merge_excess']})  under-merged "
            f"{m['under_merged_true_incidents']} (+{m['under_merge_excess']})  exact {m['exact_incidents']}"
        )
    return "\n".join(lines)


def _truth(line: StreamLine) -> Mapping[str, Any]:
    return line.truth or {}


def _kind(line: StreamLine) -> object:
    return _truth(line).get("kind")


def _norm(name: object) -> str:
    return str(name).strip().lower()


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
