"""Training a :class:`~knowledge.classify.model.TextClassifier` on labelled inputs, with its card.

Steps: the seed prior (the shipped default's), the feature space on the training texts, how much the
memorising expert still counts for an unseen technology (:func:`choose_memory`: folds holding whole technologies
out), out-of-fold predictions of the two experts (:mod:`~knowledge.classify.experts`; stratified folds), a
temperature fitted on them (calibration), the threshold chosen on them (the lowest at which accuracy on covered
items reaches the target, never under :data:`MIN_THRESHOLD`), then the final fit on everything. The card's
held-out scores are those out-of-fold ones.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn  # type: ignore[import-untyped]
from scipy.optimize import minimize_scalar  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import f1_score  # type: ignore[import-untyped]
from sklearn.model_selection import (  # type: ignore[import-untyped]
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
)

from knowledge.classify.experts import TwoExperts, combine
from knowledge.classify.features import (
    FEATURE_VERSION,
    FeatureSpace,
    Rows,
    SeedPrior,
    fit_seed_prior,
    known_words,
    mean_vectors,
    novelty,
    technology_vectors,
    technology_words,
)
from knowledge.classify.model import (
    DEFAULT_DIR,
    KIND,
    ClassifierCard,
    ClassifierError,
    DataSource,
    HeldOutScores,
    TextClassifier,
    calibrated,
)
from knowledge.correlation.correlator import TextEmbedder

FEATURE_VERSION_NOTE = (
    "memorising: TF-IDF words 1-2 + chars 3-5, mean alert embedding, description similarity, seed prior categories;"
    " generalising (inputs of unseen technologies): seed prior families and categories, the seed families and"
    " categories nearest by technology name (embedded words, softmax at 0.2), embedding at 0.3"
)
FOLDS = 3
TARGET_ACCURACY = 0.95  # accuracy on covered items the threshold is chosen for
MIN_THRESHOLD = 0.5  # below an even chance the classifier never claims a class
THRESHOLDS = tuple(round(0.5 + 0.025 * i, 3) for i in range(19))  # 0.50 … 0.95
C = 30.0
GENERAL_C = 0.3  # the generalising expert: few features, strongly regularised
MEMORIES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)  # exponents of the memorising expert for novel inputs, tried in order
DEFAULT_MEMORY = 0.1  # when the training set has too few technologies or labels to choose
MEMORY_FOLDS = 3


def data_source(description: str, texts: Sequence[str], labels: Sequence[str]) -> DataSource:
    """A :class:`DataSource` for examples: sha256 of their ``text<TAB>label`` lines (newlines escaped)."""
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(f"{text.replace(chr(10), chr(92) + 'n')}\t{label}\n".encode())
    return DataSource(description, digest.hexdigest(), len(texts))


def shipped_prior() -> SeedPrior | None:
    """The seed prior inside the shipped default artefact (``None`` when it cannot be loaded)."""
    try:
        return TextClassifier.load(DEFAULT_DIR).features.prior
    except ClassifierError:
        return None


def train_classifier(
    texts: Sequence[str],
    labels: Sequence[str],
    embedder: TextEmbedder,
    *,
    seed: int = 1,
    prior: SeedPrior | None = None,
    groups: Sequence[str] | None = None,
    command: str = "",
    sources: Sequence[DataSource] = (),
    embedding_model: str = "",
    folds: int = FOLDS,
    target_accuracy: float = TARGET_ACCURACY,
) -> TextClassifier:
    """Fit the product's classifier on ``texts`` (classifier inputs) and ``labels`` (any label set, 2 or more).

    ``prior``: the seed prior to use; ``None`` takes the shipped default's, or fits one when that is unusable or
    made with embeddings of another size. ``groups``: keep each group's examples in one held-out fold.
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    y = np.asarray([str(label) for label in labels])
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise ValueError(f"training needs at least 2 labels, got {classes}")
    vectors = mean_vectors(texts, embedder)
    prior = prior or shipped_prior()
    if prior is None or prior.dimension != vectors.shape[1]:
        prior = fit_seed_prior(embedder, seed)
    features = FeatureSpace(prior).fit(texts)
    rows = features.transform(texts, vectors, technology_vectors(texts, embedder))
    memory = choose_memory(texts, rows, y, classes, seed)

    splitter = _splitter(y, folds, seed, groups is not None)
    logits = np.zeros((len(y), len(classes)), dtype=np.float64)
    for train, test in splitter.split(np.zeros((len(y), 1)), y, groups):
        logits[test] = combine(*_fold_predictions(texts, rows, y, train, test, classes, seed), memory)
    temperature = fit_temperature(logits, np.searchsorted(classes, y))
    probabilities = calibrated(logits, temperature)
    scores = threshold_scores(probabilities, y, classes)
    threshold = choose_threshold(scores, target_accuracy)
    held_out = held_out_scores(probabilities, y, classes, threshold, splitter.get_n_splits())

    estimator = TwoExperts(_estimator(seed).fit(rows.memorise, y), _general(seed).fit(rows.generalise, y), memory)
    created = datetime.now(UTC).replace(microsecond=0)
    card = ClassifierCard(
        version=f"{KIND}-{created.strftime('%Y%m%d-%H%M%S')}",
        created_at=created.isoformat(),
        command=command,
        feature_version=FEATURE_VERSION,
        sklearn_version=sklearn.__version__,
        embedding_model=embedding_model or str(getattr(embedder, "name", "") or "all-MiniLM-L6-v2"),
        estimator=f"{estimator.describe()} + temperature {temperature:.3f} on {held_out.folds} folds",
        labels=classes,
        threshold=threshold,
        temperature=temperature,
        examples=len(y),
        sources=list(sources) or [data_source("given examples", texts, y.tolist())],
        held_out=held_out,
        threshold_scores={f"{t:.3f}": [round(c, 4), round(a, 4)] for t, (c, a) in scores.items()},
        notes=[FEATURE_VERSION_NOTE],
    )
    return TextClassifier(features, estimator, temperature, card, embedder)


def _estimator(seed: int) -> Any:
    return LogisticRegression(C=C, class_weight="balanced", max_iter=3000, random_state=seed)


def _general(seed: int) -> Any:
    return LogisticRegression(C=GENERAL_C, class_weight="balanced", max_iter=3000, random_state=seed)


def _fold_predictions(
    texts: Sequence[str],
    rows: Rows,
    y: npt.NDArray[Any],
    train: npt.NDArray[np.intp],
    test: npt.NDArray[np.intp],
    classes: list[str],
    seed: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Both experts fitted on ``train``: their probabilities on ``test`` and its novelty against ``train``."""
    memorising = _estimator(seed).fit(rows.memorise[train], y[train])
    generalising = _general(seed).fit(rows.generalise[train], y[train])
    memorised = calibrated(_logits_for(memorising, rows.memorise[test], classes), 1.0)
    general = calibrated(_logits_for(generalising, rows.generalise[test], classes), 1.0)
    known = known_words([texts[i] for i in train])
    return memorised, general, novelty([texts[i] for i in test], known)


def choose_memory(texts: Sequence[str], rows: Rows, y: npt.NDArray[Any], classes: list[str], seed: int) -> float:
    """The exponent of :data:`MEMORIES` whose mixture has the best macro-F1 on folds that each hold whole
    technologies out (inputs grouped by their technology words): how much memorisation says about a technology
    the classifier has no label of, learned from the training set itself, whatever its labels are."""
    technologies = [" ".join(sorted(technology_words(text))) for text in texts]
    if len(set(technologies)) < 2:
        return DEFAULT_MEMORY
    parts: list[tuple[npt.NDArray[np.intp], tuple[Any, Any, Any]]] = []
    for train, test in GroupKFold(min(MEMORY_FOLDS, len(set(technologies)))).split(texts, y, technologies):
        if len(set(y[train].tolist())) >= 2:
            parts.append((test, _fold_predictions(texts, rows, y, train, test, classes, seed)))
    if not parts:
        return DEFAULT_MEMORY
    truth = np.concatenate([y[test] for test, _ in parts])

    def macro_f1(memory: float) -> float:
        best = np.concatenate([combine(*predictions, memory).argmax(axis=1) for _, predictions in parts])
        return float(f1_score(truth, np.asarray(classes)[best], average="macro", zero_division=0))

    return max(MEMORIES, key=macro_f1)


def _splitter(y: npt.NDArray[Any], folds: int, seed: int, grouped: bool) -> Any:
    """Stratified folds when every class can be in each (of whole groups when grouped); plain shuffled ones else."""
    smallest = min(Counter(y.tolist()).values())
    n = max(2, min(folds, len(y)))
    if grouped:
        return StratifiedGroupKFold(n, shuffle=True, random_state=seed)
    if smallest >= n:
        return StratifiedKFold(n, shuffle=True, random_state=seed)
    return KFold(n, shuffle=True, random_state=seed)


def _logits_for(model: Any, rows: Any, classes: list[str]) -> npt.NDArray[np.float64]:
    """Decision values in ``classes`` order; classes the fold's model never saw get a very low value."""
    raw = np.asarray(model.decision_function(rows), dtype=np.float64)
    seen = [str(c) for c in model.classes_]
    if raw.ndim == 1:
        raw = np.column_stack([np.zeros_like(raw), raw])
    out = np.full((raw.shape[0], len(classes)), -30.0)
    for column, label in enumerate(seen):
        out[:, classes.index(label)] = raw[:, column]
    return out


def fit_temperature(logits: npt.NDArray[np.float64], truth: npt.NDArray[np.intp]) -> float:
    """The temperature that minimises the log loss of ``softmax(logits / T)`` (T in 0.05 … 20)."""

    def loss(log_t: float) -> float:
        p = calibrated(logits, math.exp(log_t))[np.arange(len(truth)), truth]
        return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))

    result = minimize_scalar(loss, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return round(math.exp(float(result.x)), 4)


def threshold_scores(
    probabilities: npt.NDArray[np.float64], y: npt.NDArray[Any], classes: list[str]
) -> dict[float, tuple[float, float]]:
    """``threshold → (coverage, accuracy on covered)`` over :data:`THRESHOLDS`."""
    best = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    right = np.asarray(classes)[best] == y
    out = {}
    for threshold in THRESHOLDS:
        covered = confidence >= threshold
        accuracy = float(right[covered].mean()) if covered.any() else 1.0
        out[threshold] = (float(covered.mean()), accuracy)
    return out


def choose_threshold(scores: dict[float, tuple[float, float]], target_accuracy: float) -> float:
    """The lowest threshold whose accuracy on covered items reaches the target; else the most accurate one."""
    for threshold in sorted(scores):
        if scores[threshold][1] >= target_accuracy:
            return max(threshold, MIN_THRESHOLD)
    return max(sorted(scores), key=lambda t: (scores[t][1], -t))


def held_out_scores(
    probabilities: npt.NDArray[np.float64], y: npt.NDArray[Any], classes: list[str], threshold: float, folds: int
) -> HeldOutScores:
    best = probabilities.argmax(axis=1)
    predicted = np.asarray(classes)[best]
    confidence = probabilities.max(axis=1)
    right = predicted == y
    covered = confidence >= threshold
    truth = np.searchsorted(classes, y)
    log_loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y)), truth], 1e-12, 1.0))))
    return HeldOutScores(
        items=len(y),
        folds=folds,
        accuracy=round(float(right.mean()), 4),
        macro_f1=round(float(f1_score(y, predicted, average="macro", zero_division=0)), 4),
        coverage=round(float(covered.mean()), 4),
        covered_accuracy=round(float(right[covered].mean()) if covered.any() else 1.0, 4),
        log_loss=round(log_loss, 4),
        ece=round(expected_calibration_error(confidence, right), 4),
    )


def expected_calibration_error(confidence: npt.NDArray[np.float64], right: npt.NDArray[np.bool_]) -> float:
    """Mean |accuracy - confidence| over 10 equal-width confidence bins, weighted by their sizes."""
    bins = np.minimum((confidence * 10).astype(int), 9)
    total = 0.0
    for b in range(10):
        inside = bins == b
        if inside.any():
            total += inside.sum() * abs(float(right[inside].mean()) - float(confidence[inside].mean()))
    return total / max(len(confidence), 1)
