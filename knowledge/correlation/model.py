"""The pair model as a versioned artefact: a calibrated scikit-learn estimator, its threshold and its model card.

An artefact is a directory holding ``model.joblib`` (the estimator) and ``card.json`` (:class:`ModelCard`: what
it was trained on, how to reproduce it, how well it did on held-out pairs). The shipped default lives in
``knowledge/correlation/models/default/``; retrained ones in ``<models dir>/correlate/<version>/``
(``<state dir>/models/`` in production). :func:`load_pair_model` takes the newest valid retrained one, else
the default; an artefact that does not load, or was trained on other features, is skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
import sklearn  # type: ignore[import-untyped]
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from knowledge.artefacts import artefact_dirs
from knowledge.correlation.compiled import compile_estimator
from knowledge.correlation.features import FEATURES

log = logging.getLogger(__name__)

KIND = "correlate"  # the artefacts' folder under a models dir
MODEL_FILE = "model.joblib"
CARD_FILE = "card.json"
DEFAULT_DIR = Path(__file__).with_name("models") / "default"


class ModelError(ValueError):
    """An artefact cannot be used; the message names the directory and what is wrong."""


@dataclass(frozen=True, slots=True)
class DataSource:
    """One body of training data: a labelled stream (replayed with and without its topology) or corrections."""

    description: str
    sha256: str
    lines: int
    pairs: int


@dataclass(frozen=True, slots=True)
class RuleScores:
    """The best single-feature rule (``feature >= threshold`` or ``<=``), chosen on the training split."""

    feature: str
    direction: str
    threshold: float
    accuracy: float
    f1: float


@dataclass(frozen=True, slots=True)
class HeldOut:
    """Scores on the held-out split (whole decisions held out).

    Pair scores (``accuracy``, ``f1``) read one pair at a time at the threshold, like ``rule``; the join scores
    read decisions as the correlator makes them: the most probable candidate joined when it reaches the
    threshold (precision: joins into the right incident / joins; recall: / decisions with a right incident).
    """

    pairs: int
    decisions: int
    brier: float
    ece: float  # expected calibration error, 10 equal-width bins
    accuracy: float
    f1: float
    join_precision: float
    join_recall: float
    rule: RuleScores


@dataclass(frozen=True, slots=True)
class ThresholdChoice:
    """How the threshold was chosen: the method, the streams it replayed, the score of each threshold tried."""

    method: str
    sources: list[DataSource]
    scores: dict[str, float]


@dataclass(frozen=True, slots=True)
class ModelCard:
    version: str
    created_at: str
    command: str  # reproduces the artefact (up to its version and creation time)
    features: list[str]
    sklearn_version: str
    estimator: str
    threshold: float
    pairs: int
    sources: list[DataSource]
    held_out: HeldOut
    threshold_choice: ThresholdChoice | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        held = dict(data["held_out"])
        held["rule"] = RuleScores(**held["rule"])
        choice = data.get("threshold_choice")
        if choice is not None:
            choice = ThresholdChoice(
                choice["method"], [DataSource(**source) for source in choice["sources"]], dict(choice["scores"])
            )
        return cls(
            **{
                **data,
                "sources": [DataSource(**source) for source in data["sources"]],
                "held_out": HeldOut(**held),
                "threshold_choice": choice,
            }
        )

    def summary(self) -> str:
        """A few lines for people: what it is, its threshold, its held-out scores beside the best rule's."""
        h = self.held_out
        rule = h.rule
        choice = self.threshold_choice
        tried = ", ".join(f"{t}: {v:.3f}" for t, v in choice.scores.items()) if choice else ""
        return "\n".join(
            [
                f"model {self.version} (created {self.created_at}, scikit-learn {self.sklearn_version})",
                f"  trained on {self.pairs} pairs from {len(self.sources)} sources; reproduce: {self.command}",
                f"  held out {h.pairs} pairs ({h.decisions} decisions): Brier {h.brier:.4f}, ECE {h.ece:.4f}",
                f"  threshold {self.threshold:.2f}: join precision {h.join_precision:.3f} recall "
                f"{h.join_recall:.3f}; pairs accuracy {h.accuracy:.4f} F1 {h.f1:.3f}",
                f"  best single-feature rule ({rule.feature} {rule.direction} {rule.threshold:.3g}): "
                f"accuracy {rule.accuracy:.4f} F1 {rule.f1:.3f}",
                *([f"  threshold chosen by {choice.method}: {tried}"] if choice else []),
            ]
        )


class PairModel:
    """A fitted calibrated estimator with its card; a :class:`~knowledge.correlation.correlator.PairScorer`."""

    def __init__(self, estimator: Any, card: ModelCard, path: Path | None = None) -> None:
        self.estimator = estimator
        self.card = card
        self.path = path
        self._compiled = compile_estimator(estimator)  # the same probabilities, without the per-call overhead
        # Made after the estimator's libraries are loaded, so that it sees their OpenMP runtime.
        self._threads = ThreadpoolController()

    @property
    def threshold(self) -> float:
        return self.card.threshold

    def probabilities(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The probability that each (alert, incident) row is a right join."""
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float64)
        if self._compiled is not None:
            return self._compiled.probabilities(rows)
        # One OpenMP thread: a decision scores a few dozen rows through hundreds of trees, and threads that
        # wait for a core busy elsewhere (the ingest, the embedder) made each call a hundred times slower.
        with self._threads.limit(limits=1, user_api="openmp"):
            return np.asarray(self.estimator.predict_proba(rows)[:, 1], dtype=np.float64)

    def save(self, directory: Path) -> Path:
        """Write ``model.joblib`` and ``card.json`` into ``directory`` (created); returns it."""
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.estimator, directory / MODEL_FILE, compress=3)
        (directory / CARD_FILE).write_text(json.dumps(self.card.to_json(), indent=1) + "\n", encoding="utf-8")
        self.path = directory
        return directory

    @classmethod
    def load(cls, directory: Path) -> PairModel:
        """Read an artefact; :class:`ModelError` when it is missing, corrupt, or made for other features."""
        card = read_card(directory)
        if card.sklearn_version != sklearn.__version__:
            log.warning(
                "pair model %s was trained with scikit-learn %s, this is %s",
                directory,
                card.sklearn_version,
                sklearn.__version__,
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a version mismatch, logged above
                estimator = joblib.load(directory / MODEL_FILE)
        except Exception as exc:  # a truncated or foreign pickle raises almost anything
            raise ModelError(f"{directory / MODEL_FILE}: cannot load the estimator: {exc}") from exc
        if not callable(getattr(estimator, "predict_proba", None)):
            raise ModelError(f"{directory / MODEL_FILE}: not a probabilistic classifier ({type(estimator).__name__})")
        width = getattr(estimator, "n_features_in_", len(FEATURES))
        if width != len(FEATURES):
            raise ModelError(f"{directory / MODEL_FILE}: expects {width} features, the correlator has {len(FEATURES)}")
        return cls(estimator, card, directory)


def read_card(directory: Path) -> ModelCard:
    """The card of the artefact in ``directory``, checked against the features this code computes."""
    path = directory / CARD_FILE
    try:
        card = ModelCard.from_json(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model card: {exc.strerror or exc}") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{path}: not a model card: {exc!r}") from exc
    if tuple(card.features) != FEATURES:
        missing = [name for name in FEATURES if name not in card.features]
        extra = [name for name in card.features if name not in FEATURES]
        detail = f"missing {missing}, unknown {extra}" if missing or extra else "same names in another order"
        raise ModelError(f"{directory}: trained on other features than the correlator computes ({detail})")
    return card


def new_version(created_at: datetime) -> str:
    return f"{KIND}-{created_at.strftime('%Y%m%d-%H%M%S')}"


def load_pair_model(models_dir: Path | None = None) -> PairModel:
    """The newest valid retrained model under ``<models_dir>/correlate/``, else the shipped default."""
    for directory in artefact_dirs(models_dir, KIND) if models_dir is not None else []:
        try:
            return PairModel.load(directory)
        except ModelError as exc:
            log.warning("skipping pair model: %s", exc)
    return PairModel.load(DEFAULT_DIR)
