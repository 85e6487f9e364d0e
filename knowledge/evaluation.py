"""Measure alert → runbook retrieval on a query file (format: ``docs``/FORMATS.md of the evaluation data).

Queries go through :meth:`RunbookIndex.search_alert`, the path live alerts take. Metrics: top-1, recall@3/5/10
and MRR over answerable queries; abstention AUROC of the best score (answerable = positive); an abstention
threshold chosen by k-fold cross-validation, with the precision/recall it gives on held-out folds.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from knowledge.retrieval import Ranker, RunbookIndex, SearchResult
from knowledge.text import alert_from_mapping

T = TypeVar("T")


class Judged(Protocol):
    """An item to score: its id and the documents that answer it (none: the right behaviour is to abstain)."""

    @property
    def id(self) -> str: ...

    @property
    def expected(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Query:
    id: str
    alert: dict[str, Any]
    expected: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RetrievalMetrics:
    queries: int
    answerable: int
    top1: float
    recall3: float
    recall5: float
    recall10: float
    mrr: float
    auroc: float
    threshold: float  # chosen on all queries
    cv_abstain_precision: float  # of the abstentions made on held-out folds, share that were right
    cv_abstain_recall: float  # of the unanswerable queries, share abstained on (held-out folds)
    cv_accuracy: float  # right runbook first and answered, or abstained when none fits (held-out folds)


def open_text(path: str | Path) -> Iterator[str]:
    p = Path(path)
    if p.suffix == ".gz":
        with gzip.open(p, "rt", encoding="utf-8") as handle:
            yield from handle
    else:
        with p.open(encoding="utf-8") as handle:
            yield from handle


def read_lines(path: str | Path, parse: Callable[[dict[str, Any]], T], what: str) -> list[T]:
    """Every non-blank JSON line of ``path`` through ``parse``; ``ValueError`` naming the line when one is not
    ``what`` (a missing key, a wrong type)."""
    items = []
    for number, line in enumerate(open_text(path), 1):
        if not line.strip():
            continue
        try:
            items.append(parse(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not {what}: {exc}") from exc
    return items


def read_queries(path: str | Path) -> list[Query]:
    return read_lines(
        path,
        lambda item: Query(str(item["id"]), dict(item["alert"]), tuple(str(d) for d in item["expected"])),
        "a retrieval query",
    )


def without_alertname(alert: Mapping[str, Any]) -> dict[str, Any]:
    labels = {k: v for k, v in (alert.get("labels") or {}).items() if k != "alertname"}
    return {**alert, "labels": labels}


def run_queries(
    index: RunbookIndex,
    queries: Sequence[Query],
    *,
    ranker: Ranker = Ranker.HYBRID,
    drop_alertname: bool = False,
    name_rule: bool = True,
) -> list[SearchResult]:
    results = []
    for query in queries:
        alert = without_alertname(query.alert) if drop_alertname else query.alert
        results.append(index.search_alert(alert_from_mapping(alert), ranker=ranker, name_rule=name_rule))
    return results


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    wins = 0.0
    for p in positives:
        for n in negatives:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(positives) * len(negatives))


def _correct(query: Judged, result: SearchResult, threshold: float) -> bool:
    answered = result.confidence >= threshold
    if not query.expected:
        return not answered
    return answered and bool(result.hits) and result.hits[0].doc in query.expected


def choose_threshold(queries: Sequence[Judged], results: Sequence[SearchResult]) -> float:
    """The threshold that maximises accuracy (right first answer, or abstention when none fits); ties → the
    midpoint of the best interval between observed confidences."""
    scores = sorted({r.confidence for r in results})
    candidates = [0.0] + [(a + b) / 2 for a, b in itertools.pairwise(scores)] + [scores[-1] + 1e-6]
    accuracy = [sum(_correct(q, r, t) for q, r in zip(queries, results, strict=True)) for t in candidates]
    best = max(accuracy)
    good = [t for t, a in zip(candidates, accuracy, strict=True) if a == best]
    return round((good[0] + good[-1]) / 2, 4) if good else 0.0


def cross_validated_abstention(
    queries: Sequence[Judged], results: Sequence[SearchResult], *, folds: int = 5
) -> tuple[float, float, float]:
    """(abstention precision, abstention recall, accuracy) with thresholds chosen on the other folds."""
    abstained = right_abstained = correct = 0
    unanswerable = sum(1 for q in queries if not q.expected)
    for fold in range(folds):
        train = [i for i in range(len(queries)) if i % folds != fold]
        test = [i for i in range(len(queries)) if i % folds == fold]
        if not train or not test:
            continue
        threshold = choose_threshold([queries[i] for i in train], [results[i] for i in train])
        for i in test:
            abstain = results[i].confidence < threshold
            abstained += abstain
            right_abstained += abstain and not queries[i].expected
            correct += _correct(queries[i], results[i], threshold)
    precision = right_abstained / abstained if abstained else float("nan")
    recall = right_abstained / unanswerable if unanswerable else float("nan")
    return precision, recall, correct / len(queries) if queries else float("nan")


def measure(queries: Sequence[Judged], results: Sequence[SearchResult]) -> RetrievalMetrics:
    answerable = [(q, r) for q, r in zip(queries, results, strict=True) if q.expected]
    ranks = []
    for query, result in answerable:
        docs = [hit.doc for hit in result.hits]
        rank = next((i + 1 for i, d in enumerate(docs) if d in query.expected), None)
        ranks.append(rank)
    n = len(answerable) or 1

    def recall(k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / n

    positives = [r.confidence for q, r in zip(queries, results, strict=True) if q.expected]
    negatives = [r.confidence for q, r in zip(queries, results, strict=True) if not q.expected]
    precision, abstain_recall, accuracy = cross_validated_abstention(queries, results)
    return RetrievalMetrics(
        queries=len(queries),
        answerable=len(answerable),
        top1=recall(1),
        recall3=recall(3),
        recall5=recall(5),
        recall10=recall(10),
        mrr=sum(1 / r for r in ranks if r is not None) / n,
        auroc=auroc(positives, negatives),
        threshold=choose_threshold(queries, results),
        cv_abstain_precision=precision,
        cv_abstain_recall=abstain_recall,
        cv_accuracy=accuracy,
    )


def write_predictions(path: Path, queries: Sequence[Judged], results: Sequence[SearchResult], threshold: float) -> None:
    """:func:`prediction_lines` into ``path``, one line each."""
    with path.open("w", encoding="utf-8") as out:
        for line in prediction_lines(queries, results, threshold):
            out.write(line + "\n")


def prediction_lines(queries: Sequence[Judged], results: Sequence[SearchResult], threshold: float) -> Iterator[str]:
    """One JSON line per query as FORMATS.md specifies (``abstain`` at ``threshold``)."""
    for query, result in zip(queries, results, strict=True):
        hits = []
        for hit in result.hits[:10]:
            item: dict[str, Any] = {"doc": hit.doc, "score": hit.score}
            if hit.section:
                item["section"] = hit.section
            hits.append(item)
        yield json.dumps({"id": query.id, "results": hits, "abstain": result.confidence < threshold})


def abstention_at(
    queries: Sequence[Judged], results: Sequence[SearchResult], threshold: float
) -> tuple[float, float, float]:
    """At ``threshold``: (abstention precision, abstention recall, false abstention: the share of answerable
    items abstained on)."""
    abstained = [r.confidence < threshold for r in results]
    unanswerable = [not q.expected for q in queries]
    right = sum(a and u for a, u in zip(abstained, unanswerable, strict=True))
    wrong = sum(a and not u for a, u in zip(abstained, unanswerable, strict=True))
    answerable = len(queries) - sum(unanswerable)
    precision = right / sum(abstained) if any(abstained) else float("nan")
    recall = right / sum(unanswerable) if any(unanswerable) else float("nan")
    return precision, recall, wrong / answerable if answerable else float("nan")


@dataclass(frozen=True, slots=True)
class Setting:
    label: str
    drop_alertname: bool
    name_rule: bool


SETTINGS: tuple[Setting, ...] = (
    Setting("name + rule", False, True),
    Setting("name, no rule", False, False),
    Setting("no name", True, True),
)


def evaluate_all(index: RunbookIndex, queries: Sequence[Query]) -> dict[tuple[Ranker, Setting], RetrievalMetrics]:
    """Every ranker in every setting (with the alert name and the rule, without the rule, without the name)."""
    return {
        (ranker, setting): measure(
            queries,
            run_queries(
                index, queries, ranker=ranker, drop_alertname=setting.drop_alertname, name_rule=setting.name_rule
            ),
        )
        for setting in SETTINGS
        for ranker in (Ranker.DENSE, Ranker.LEXICAL, Ranker.HYBRID)
    }


def format_table(table: Mapping[tuple[Ranker, Setting], RetrievalMetrics]) -> str:
    header = (
        f"{'setting':<14} {'ranker':<8} {'top1':>6} {'R@3':>6} {'R@5':>6} {'R@10':>6} {'MRR':>6} {'AUROC':>6} "
        f"{'thr':>6} {'cvAbP':>6} {'cvAbR':>6} {'cvAcc':>6}"
    )
    rows = [header]
    for (ranker, setting), m in table.items():
        rows.append(
            f"{setting.label:<14} {ranker.value:<8} {m.top1:6.3f} {m.recall3:6.3f} {m.recall5:6.3f} {m.recall10:6.3f} "
            f"{m.mrr:6.3f} {m.auroc:6.3f} {m.threshold:6.3f} {m.cv_abstain_precision:6.3f} "
            f"{m.cv_abstain_recall:6.3f} {m.cv_accuracy:6.3f}"
        )
    return "\n".join(rows)
