"""The classifier as a versioned artefact: features, an estimator, its temperature, threshold and card.

An artefact is a directory holding ``model.joblib`` (the fitted :class:`~knowledge.classify.features.FeatureSpace`,
the estimator (:class:`~knowledge.classify.experts.TwoExperts`) and the temperature) and ``card.json``
(:class:`ClassifierCard`). The shipped default lives in ``knowledge/classify/models/default/`` (trained on the seed
set); retrained ones in ``<models dir>/classify/<version>/``.
Loading checks the card (kind, feature version, scikit-learn version) and refuses a mismatch in one line.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
import sklearn  # type: ignore[import-untyped]

from knowledge.artefacts import artefact_dirs
from knowledge.classify.features import FEATURE_VERSION, FeatureSpace, mean_vectors, technology_vectors
from knowledge.classify.inputs import incident_text
from knowledge.correlation.correlator import TextEmbedder
from knowledge.embeddings import load_embedder

log = logging.getLogger(__name__)

KIND = "classify"
MODEL_FILE = "model.joblib"
CARD_FILE = "card.json"
DEFAULT_DIR = Path(__file__).with_name("models") / "default"

__all__ = [
    "ClassifierCard",
    "ClassifierError",
    "DataSource",
    "HeldOutScores",
    "Prediction",
    "TextClassifier",
    "incident_text",
    "load_classifier",
]


class ClassifierError(ValueError):
    """An artefact cannot be used; the message (one line) names the directory and what is wrong."""


@dataclass(frozen=True)
class Prediction:
    label: str  # always the most probable class
    confidence: float  # its calibrated probability
    abstain: bool  # below the threshold: the product says "unclassified"


@dataclass(frozen=True, slots=True)
class DataSource:
    """One body of training examples: what it is, the sha256 of its ``text\\tlabel`` lines and how many."""

    description: str
    sha256: str
    examples: int


@dataclass(frozen=True, slots=True)
class HeldOutScores:
    """Scores of out-of-fold predictions on the training examples (each predicted by a model that never saw it)."""

    items: int
    folds: int
    accuracy: float
    macro_f1: float
    coverage: float  # share not abstained at the threshold
    covered_accuracy: float
    log_loss: float
    ece: float  # expected calibration error of the confidence, 10 equal-width bins


@dataclass(frozen=True, slots=True)
class ClassifierCard:
    version: str
    created_at: str
    command: str  # reproduces the artefact (up to its version and creation time)
    feature_version: int
    sklearn_version: str
    embedding_model: str
    estimator: str
    labels: list[str]
    threshold: float
    temperature: float
    examples: int
    sources: list[DataSource]
    held_out: HeldOutScores
    threshold_scores: dict[str, list[float]] = field(default_factory=dict)  # threshold: [coverage, covered acc]
    kind: str = KIND
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassifierCard:
        return cls(
            **{
                **data,
                "sources": [DataSource(**source) for source in data["sources"]],
                "held_out": HeldOutScores(**data["held_out"]),
            }
        )

    def summary(self) -> str:
        """A few lines for people: what it is, what it learned from, its held-out scores at its threshold."""
        h = self.held_out
        sources = "; ".join(f"{s.description} ({s.examples})" for s in self.sources)
        return "\n".join(
            [
                f"classifier {self.version} (created {self.created_at}, scikit-learn {self.sklearn_version}, "
                f"features v{self.feature_version}, embeddings {self.embedding_model})",
                f"  {len(self.labels)} labels, trained on {self.examples} examples: {sources}",
                f"  reproduce: {self.command}",
                f"  held out ({h.folds} folds, {h.items} items): accuracy {h.accuracy:.3f}, macro-F1 {h.macro_f1:.3f},"
                f" log loss {h.log_loss:.3f}, ECE {h.ece:.3f}",
                f"  threshold {self.threshold:.3f}: coverage {h.coverage:.3f}, accuracy on covered "
                f"{h.covered_accuracy:.3f}",
            ]
        )


class TextClassifier:
    """Classifier inputs (:func:`incident_text`) → calibrated :class:`Prediction` s; abstains below its threshold.

    ``embedder``: the process's embedder; ``None`` loads the card's embedding model on the first prediction.
    """

    def __init__(
        self,
        features: FeatureSpace,
        estimator: Any,
        temperature: float,
        card: ClassifierCard,
        embedder: TextEmbedder | None = None,
        path: Path | None = None,
    ) -> None:
        self.features = features
        self.estimator = estimator
        self.temperature = temperature
        self.card = card
        self.embedder = embedder
        self.path = path

    @property
    def threshold(self) -> float:
        return self.card.threshold

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(str(label) for label in self.estimator.classes_)

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Calibrated class probabilities, one row per text, columns in :attr:`labels` order."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        if self.embedder is None:
            self.embedder = load_embedder(self.card.embedding_model)
        try:
            vectors = mean_vectors(texts, self.embedder)
            rows = self.features.transform(texts, vectors, technology_vectors(texts, self.embedder))
        except ValueError as exc:
            raise ClassifierError(f"classifier {self.card.version}: {exc}") from exc
        return calibrated(self.estimator.decision_function(rows), self.temperature)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text: the best label, its probability, and whether that is below the threshold."""
        labels = self.labels
        out = []
        for row in self.probabilities(texts):
            best = int(np.argmax(row))
            confidence = float(row[best])
            out.append(Prediction(labels[best], confidence, confidence < self.threshold))
        return out

    def save(self, directory: Path) -> Path:
        """Write ``model.joblib`` and ``card.json`` into ``directory`` (created); returns it."""
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {"features": self.features, "estimator": self.estimator, "temperature": self.temperature},
            directory / MODEL_FILE,
            compress=3,
        )
        (directory / CARD_FILE).write_text(json.dumps(self.card.to_json(), indent=1) + "\n", encoding="utf-8")
        self.path = directory
        return directory

    @classmethod
    def load(cls, directory: Path, embedder: TextEmbedder | None = None) -> TextClassifier:
        """Read an artefact; :class:`ClassifierError` when it is missing, corrupt or made for other code."""
        card = read_card(directory)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parts = joblib.load(directory / MODEL_FILE)
            features, estimator, temperature = parts["features"], parts["estimator"], float(parts["temperature"])
        except Exception as exc:  # a truncated or foreign pickle raises almost anything
            raise ClassifierError(f"{directory / MODEL_FILE}: cannot load the classifier: {exc}") from exc
        if not isinstance(features, FeatureSpace) or not callable(getattr(estimator, "decision_function", None)):
            raise ClassifierError(f"{directory / MODEL_FILE}: not a classifier artefact")
        if [str(label) for label in estimator.classes_] != list(card.labels):
            raise ClassifierError(f"{directory}: the card's labels do not match the estimator's")
        return cls(features, estimator, temperature, card, embedder, directory)


def calibrated(logits: npt.NDArray[np.float64], temperature: float) -> npt.NDArray[np.float64]:
    """Softmax of ``logits / temperature`` (a binary estimator's single logit becomes two columns)."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1:
        logits = np.column_stack([np.zeros_like(logits), logits])
    scaled = logits / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float64)


def read_card(directory: Path) -> ClassifierCard:
    """The card in ``directory``, checked against this code: kind, feature version, scikit-learn version."""
    path = directory / CARD_FILE
    try:
        card = ClassifierCard.from_json(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ClassifierError(f"{path}: cannot read the model card: {exc.strerror or exc}") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise ClassifierError(f"{path}: not a classifier card: {exc!r}") from exc
    if card.kind != KIND:
        raise ClassifierError(f"{directory}: a {card.kind!r} model, not a {KIND!r} one")
    if card.feature_version != FEATURE_VERSION:
        raise ClassifierError(
            f"{directory}: made for classifier features v{card.feature_version}, this code computes v{FEATURE_VERSION}"
        )
    if card.sklearn_version != sklearn.__version__:
        raise ClassifierError(
            f"{directory}: trained with scikit-learn {card.sklearn_version}, this is {sklearn.__version__}; retrain it"
        )
    return card


def load_classifier(models_dir: Path | None, embedder: TextEmbedder | None) -> TextClassifier:
    """The newest valid artefact under ``<models_dir>/classify/``, else the shipped default."""
    for directory in artefact_dirs(models_dir, KIND) if models_dir is not None else []:
        try:
            return TextClassifier.load(directory, embedder)
        except ClassifierError as exc:
            log.warning("skipping classifier: %s", exc)
    return TextClassifier.load(DEFAULT_DIR, embedder)
