"""The compiled pair model gives scikit-learn's probabilities, and only compiles the estimator shape it knows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV  # type: ignore[import-untyped]
from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from knowledge.correlation.compiled import compile_estimator
from knowledge.correlation.features import FEATURES
from knowledge.correlation.model import load_pair_model


def _rows(count: int, width: int, seed: int, *, missing: float = 0.0) -> np.ndarray:
    """Rows like the features: many exact zeros and ones, counts and minutes on wide scales."""
    rng = np.random.default_rng(seed)
    rows = rng.random((count, width)) * rng.choice([1.0, 10.0, 100.0, 1000.0], size=(1, width))
    rows[rng.random(rows.shape) < 0.3] = 0.0
    rows[rng.random(rows.shape) < 0.2] = 1.0
    rows[rng.random(rows.shape) < missing] = np.nan
    return rows


def test_the_shipped_model_compiles_to_the_same_probabilities() -> None:
    estimator = load_pair_model(None).estimator
    compiled = compile_estimator(estimator)
    assert compiled is not None
    rows = _rows(3000, len(FEATURES), seed=1)
    expected = estimator.predict_proba(rows)[:, 1]
    assert np.abs(compiled.probabilities(rows) - expected).max() < 1e-9
    assert expected.min() < 0.1 and expected.max() > 0.9  # the rows reach both ends of the model's range


def test_missing_values_take_the_side_the_trees_learned() -> None:
    rng = np.random.default_rng(2)
    features = _rows(2000, 5, seed=3, missing=0.15)
    labels = ((np.nan_to_num(features[:, 0], nan=500.0) > 50) ^ (rng.random(2000) < 0.1)).astype(int)
    fitted = CalibratedClassifierCV(HistGradientBoostingClassifier(max_iter=30), method="isotonic", cv=3)
    fitted.fit(features, labels)
    compiled = compile_estimator(fitted)
    assert compiled is not None
    rows = _rows(500, 5, seed=4, missing=0.3)
    assert np.abs(compiled.probabilities(rows) - fitted.predict_proba(rows)[:, 1]).max() < 1e-9


@pytest.mark.parametrize(
    "estimator",
    [
        CalibratedClassifierCV(HistGradientBoostingClassifier(max_iter=5), method="sigmoid", cv=2),
        CalibratedClassifierCV(LogisticRegression(), method="isotonic", cv=2),
        LogisticRegression(),
    ],
    ids=["sigmoid calibration", "not boosted trees", "not calibrated"],
)
def test_other_estimators_are_not_compiled(estimator: object) -> None:
    features = _rows(300, 4, seed=5)
    estimator.fit(features, (features[:, 0] > np.median(features[:, 0])).astype(int))  # type: ignore[attr-defined]
    assert compile_estimator(estimator) is None
