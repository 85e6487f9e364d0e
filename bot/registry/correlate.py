"""The pair model in the registry: loading a version through its card, its score on held-out pairs, its challenger.

The primary metric is the log loss on the pairs of a held-out labelled stream (a generated world no training run
uses, by default), which rewards calibrated probabilities; the Brier score, the mean probability of the
decisions and the share of them below the threshold (new incidents) are kept beside it for drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from bot.registry.data import Provenance
from bot.registry.lifecycle import Challenger, Score
from bot.registry.store import check_card, read_card

if TYPE_CHECKING:
    from knowledge.correlation.correlator import CorrelationPolicy, TextEmbedder
    from knowledge.correlation.model import PairModel
    from knowledge.correlation.training import LabelledStream

KIND = "correlate"
EVAL_SEED = 1000  # the held-out generated world: training seeds are small numbers
LABELS = ("related", "unrelated")
_EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class HeldOutPairs:
    rows: npt.NDArray[np.float64]
    labels: npt.NDArray[np.int8]
    groups: npt.NDArray[np.int64]
    description: str


def load(directory: Path | None) -> PairModel:
    """A registered version (its registry card checked first), or with ``None`` the packaged default."""
    from knowledge.correlation.model import DEFAULT_DIR, PairModel

    if directory is None:
        return PairModel.load(DEFAULT_DIR)
    check_card(read_card(directory), KIND)
    return PairModel.load(directory)


def held_out_pairs(stream: LabelledStream, embedder: TextEmbedder | None, policy: CorrelationPolicy) -> HeldOutPairs:
    """The teacher-forced pairs of ``stream`` (with its topology and without), as training makes them."""
    from knowledge.correlation.training import collect

    found = collect([stream], embedder, policy)
    rows, labels, groups = found.pairs.arrays()
    source = found.sources[0]
    return HeldOutPairs(rows, labels, groups, f"{source.description} (sha256 {source.sha256}, {len(labels)} pairs)")


def score(model: PairModel, held: HeldOutPairs) -> Score:
    """Log loss (primary), Brier score, and per decision the best candidate's probability and whether it is
    below the threshold (the correlator opens a new incident)."""
    p = np.clip(model.probabilities(held.rows), _EPSILON, 1 - _EPSILON)
    y = held.labels.astype(np.float64)
    log_loss = -float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    order = np.argsort(held.groups, kind="stable")
    starts = np.flatnonzero(np.append(True, held.groups[order][1:] != held.groups[order][:-1]))
    top = np.maximum.reduceat(p[order], starts)
    details = {
        "brier": round(float(np.mean((p - y) ** 2)), 5),
        "confidence_mean": round(float(top.mean()), 5),
        "abstention": round(float(np.mean(top < model.threshold)), 5),
        "pairs": float(len(y)),
        "decisions": float(len(top)),
    }
    return Score("log_loss", round(log_loss, 5), False, details)


def challenger(model: PairModel, people: Mapping[str, Provenance]) -> Challenger:
    """The registry's view of a trained, saved pair model; ``people`` maps the card's descriptions of people's
    corrections to their provenance."""
    card = model.card
    if model.path is None:
        raise ValueError("save the pair model before registering it")
    data = [
        people.get(source.description)
        or Provenance(
            "generator" if source.description.startswith("knowledge.correlation.generator") else "labelled stream",
            source.description,
            source.sha256,
            source.pairs,
        )
        for source in card.sources
    ]
    return Challenger(
        KIND,
        card.version,
        model.path,
        card.created_at,
        card.command,
        data,
        LABELS,
        {"threshold": card.threshold, "estimator": card.estimator},
    )
