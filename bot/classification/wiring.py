"""Builds the worker's classification from settings: the model registry's champion classifier."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.classification.live import LiveClassification
from bot.correlation.wiring import LazyEmbedder
from bot.db.database import Database
from bot.registry.store import champion_dir
from bot.settings import Settings
from knowledge.embeddings import Embedder

if TYPE_CHECKING:
    from knowledge.classify.model import TextClassifier

log = logging.getLogger(__name__)


def build_classification(
    settings: Settings, database: Callable[[], Database], embedder: Embedder | None = None
) -> LiveClassification | None:
    """None when ``INCIBOT_CLASSIFICATION=false``; the model is loaded once, at the worker's start-up (or by its
    first prediction), never by a process that does not predict."""
    if not settings.classification:
        return None
    return LiveClassification(lambda: load_champion(settings, database(), embedder))


def load_champion(settings: Settings, database: Database, embedder: Embedder | None = None) -> TextClassifier:
    """The registry's classify champion; the packaged default (version 0) when there is none, or when the
    champion's card does not match this code (said in one line)."""
    from bot.registry import classify  # scikit-learn: only where a model is used

    lazy = LazyEmbedder(settings.embedding_model, embedder, settings.model_threads, settings.embedding_precision)
    with database.read() as session:
        directory = champion_dir(session, classify.KIND)
    if directory is not None:
        try:
            return classify.load(directory, lazy)
        except ValueError as exc:  # the registry's card check or the artefact's own
            log.error("classify champion refused: %s; the packaged classifier serves", exc)
    return classify.load(None, lazy)
