"""Two experts behind one estimator: one that memorises the technologies it was trained on, one that generalises.

The memorising expert (a logistic regression on words, character n-grams, the embedding and the prior) is right
about technologies it has labelled examples of, and guesses from a service's name when it has none. The
generalising expert (a strongly regularised logistic regression on the seed prior's family and category
probabilities, the seed families its technology names are nearest to, and the embedding at a low weight) reads no
word of the alert as a token, so a technology never seen in training gets the class its kind of alert, and the seed
technologies its name resembles, map to. Per input, the novelty (the share of its alerts whose technology
words no training input had, :func:`~knowledge.classify.features.novelty`) decides: a known input gets the
memorising expert's probabilities, a novel one the generalising expert's, tempered by the memorising one's raised
to ``memory`` (how much memorisation still says about an unseen technology: chosen at training time on folds that
hold whole technologies out).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from knowledge.classify.features import Rows
from knowledge.classify.model import calibrated

FLOOR = 1e-9  # no probability is taken as exactly 0 (its logarithm is the decision value)


def combine(
    memorised: npt.NDArray[np.float64],
    general: npt.NDArray[np.float64],
    novelty: npt.NDArray[np.float64],
    memory: float,
) -> npt.NDArray[np.float64]:
    """Log-probabilities of the mixture ``(1 - novelty) · memorised + novelty · tempered``, where ``tempered`` is
    ``general · memorised ** memory`` normalised."""
    tempered = general * np.clip(memorised, FLOOR, 1.0) ** memory
    tempered /= tempered.sum(axis=1, keepdims=True)
    share = novelty[:, None]
    return np.asarray(np.log(np.clip((1 - share) * memorised + share * tempered, FLOOR, 1.0)), dtype=np.float64)


class TwoExperts:
    """The fitted experts as one estimator: :meth:`decision_function` gives log-probabilities over ``classes_``."""

    def __init__(self, memorising: Any, generalising: Any, memory: float) -> None:
        if [str(c) for c in memorising.classes_] != [str(c) for c in generalising.classes_]:
            raise ValueError("the two experts were fitted on different labels")
        self.memorising = memorising
        self.generalising = generalising
        self.memory = memory

    @property
    def classes_(self) -> npt.NDArray[Any]:
        return np.asarray(self.memorising.classes_)

    def decision_function(self, rows: Rows) -> npt.NDArray[np.float64]:
        memorised = calibrated(self.memorising.decision_function(rows.memorise), 1.0)
        general = calibrated(self.generalising.decision_function(rows.generalise), 1.0)
        return combine(memorised, general, rows.novelty, self.memory)

    def describe(self) -> str:
        m, g = self.memorising, self.generalising
        return (
            f"LogisticRegression(C={m.C:g}, balanced) memorising + LogisticRegression(C={g.C:g}, balanced) "
            f"generalising for unseen technologies (memory {self.memory:g})"
        )
