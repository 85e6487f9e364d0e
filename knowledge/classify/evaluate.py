"""Cross-validated evaluation of the classifier on a labelled alert file, beside baselines.

The file holds one JSON object per line with ``id``, ``alert`` (an Alertmanager alert object) and label fields;
only ``id``, ``alert``, the chosen label field and the group field are read. Folds are stratified and shuffled with
a fixed seed (plain shuffled folds when a label has fewer items than folds); with a group field every value of it
stays inside one fold (``GroupKFold``), which measures generalisation to groups never seen in training.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import f1_score  # type: ignore[import-untyped]
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold  # type: ignore[import-untyped]

from knowledge.classify.model import Prediction
from knowledge.text import alert_from_mapping, alert_text

SPLIT_SEED = 0
Folds = list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]
# A method: (training texts, training labels, test texts) → one prediction per test text
Method = Callable[[list[str], list[str], list[str]], list[Prediction]]


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    text: str  # the alert's canonical text
    label: str
    group: str | None


@dataclass(frozen=True, slots=True)
class Scores:
    items: int
    accuracy: float
    macro_f1: float
    coverage: float
    covered_accuracy: float


def read_items(path: Path, label: str, group_by: str | None = None) -> list[Item]:
    """The file's items; ``ValueError`` naming the line and the field for anything missing or malformed."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    items: list[Item] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not JSON ({exc.msg})") from exc
            if not isinstance(data, dict):
                raise ValueError(f"{where}: not a JSON object")
            items.append(_item(data, where, label, group_by))
    if not items:
        raise ValueError(f"{path}: no items")
    duplicates = [key for key, count in Counter(item.id for item in items).items() if count > 1]
    if duplicates:
        raise ValueError(f"{path}: field 'id' repeats: {duplicates[:3]}")
    return items


def _item(data: dict[str, Any], where: str, label: str, group_by: str | None) -> Item:
    for field in ("id", "alert", label, *([group_by] if group_by else [])):
        if data.get(field) in (None, ""):
            raise ValueError(f"{where}: field {field!r} is missing or empty")
    alert = data["alert"]
    if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
        raise ValueError(f"{where}: field 'alert' is not an alert object with labels")
    if not isinstance(data[label], str | int | bool):
        raise ValueError(f"{where}: field {label!r} is not a single value")
    try:
        text = alert_text(alert_from_mapping(alert))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: field 'alert': {exc}") from exc
    group = str(data[group_by]) if group_by else None
    return Item(str(data["id"]), text, str(data[label]), group)


def make_folds(items: Sequence[Item], folds: int, grouped: bool) -> Folds:
    """Deterministic folds (see the module's docstring); ``ValueError`` when there are too few items or groups."""
    labels = [item.label for item in items]
    if folds < 2:
        raise ValueError("--folds must be 2 or more")
    if len(items) < folds:
        raise ValueError(f"{len(items)} items cannot make {folds} folds")
    if grouped:
        groups = [item.group for item in items]
        if len(set(groups)) < folds:
            raise ValueError(f"{len(set(groups))} distinct groups cannot make {folds} folds")
        splitter: Any = GroupKFold(folds)
        return list(splitter.split(labels, labels, groups))
    if min(Counter(labels).values()) >= folds:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=SPLIT_SEED)
    else:
        splitter = KFold(folds, shuffle=True, random_state=SPLIT_SEED)
    return list(splitter.split(labels, labels))


def cross_predict(items: Sequence[Item], folds: Folds, method: Method) -> list[Prediction]:
    """Each item predicted by ``method`` trained on the other folds (a fold with one label: that label)."""
    out: list[Prediction | None] = [None] * len(items)
    for train, test in folds:
        texts = [items[i].text for i in train]
        labels = [items[i].label for i in train]
        tests = [items[i].text for i in test]
        if len(set(labels)) < 2:
            predictions = [Prediction(labels[0], 1.0, False)] * len(tests)
        else:
            predictions = method(texts, labels, tests)
        for i, prediction in zip(test, predictions, strict=True):
            out[i] = prediction
    return [prediction for prediction in out if prediction is not None]


def score(items: Sequence[Item], predictions: Sequence[Prediction]) -> Scores:
    truth = [item.label for item in items]
    predicted = [p.label for p in predictions]
    right = np.asarray([t == p for t, p in zip(truth, predicted, strict=True)])
    covered = np.asarray([not p.abstain for p in predictions])
    return Scores(
        items=len(items),
        accuracy=float(right.mean()),
        macro_f1=float(f1_score(truth, predicted, average="macro", zero_division=0)),
        coverage=float(covered.mean()),
        covered_accuracy=float(right[covered].mean()) if covered.any() else 0.0,
    )


def tfidf_logistic_regression(texts: list[str], labels: list[str], tests: list[str]) -> list[Prediction]:
    """Baseline: TF-IDF of words and logistic regression (scikit-learn defaults), never abstains."""
    vectorizer = TfidfVectorizer()
    model = LogisticRegression(max_iter=2000).fit(vectorizer.fit_transform(texts), labels)
    probabilities = model.predict_proba(vectorizer.transform(tests))
    return [Prediction(str(model.classes_[row.argmax()]), float(row.max()), False) for row in probabilities]


def majority_class(texts: list[str], labels: list[str], tests: list[str]) -> list[Prediction]:
    """Baseline: the training folds' most frequent label (ties: the first in sorted order)."""
    counts = Counter(labels)
    best = min(counts, key=lambda label: (-counts[label], label))
    return [Prediction(best, counts[best] / len(labels), False) for _ in tests]


BASELINES: dict[str, Method] = {
    "TF-IDF + logistic regression": tfidf_logistic_regression,
    "majority class": majority_class,
}


def format_scores(name: str, scores: Scores, *, abstains: bool) -> str:
    line = f"{name:<32} accuracy {scores.accuracy:.4f}  macro-F1 {scores.macro_f1:.4f}"
    if abstains:
        line += f"  coverage {scores.coverage:.4f}  accuracy on covered {scores.covered_accuracy:.4f}"
    return line
