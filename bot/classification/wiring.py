"""Builds the worker's classification from settings: the champion classifier of the model registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.classification.live import LiveClassification
from bot.correlation.wiring import LazyEmbedder, models_dir
from bot.db.database import Database
from bot.settings import Settings
from knowledge.embeddings import Embedder

if TYPE_CHECKING:
    from knowledge.classify.model import TextClassifier


def build_classification(
    settings: Settings, database: Callable[[], Database], embedder: Embedder | None = None
) -> LiveClassification | None:
    """None when ``INCIBOT_CLASSIFICATION=false``; the model is loaded on first use (the worker's start-up)."""
    if not settings.classification:
        return None
    return LiveClassification(lambda: load_champion(settings, database(), embedder))


def load_champion(settings: Settings, database: Database, embedder: Embedder | None = None) -> TextClassifier:
    """The registry's champion classifier; without one, the newest under the models dir, else the shipped one."""
    from knowledge.classify.model import load_classifier  # scikit-learn: imported only where a model is used

    return load_classifier(models_dir(settings), LazyEmbedder(settings.embedding_model, embedder))
