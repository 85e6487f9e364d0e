"""Builds the configured correlation (``INCIBOT_CORRELATION``) from settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sqlalchemy.exc import SQLAlchemyError

from bot.correlation.live import LearnedCorrelation, ShadowCorrelation
from bot.correlation.prefetch import EmbeddingPrefetch
from bot.correlation.store import ProfileStore
from bot.db.database import Database
from bot.incidents.grouping import Correlation, SourceGrouping
from bot.registry.store import champion_dir
from bot.settings import Settings
from knowledge.correlation.correlator import DEFAULT_THRESHOLD, CorrelationPolicy, Correlator
from knowledge.correlation.topology import Topology
from knowledge.embeddings import Embedder, Precision, load_embedder

if TYPE_CHECKING:
    from knowledge.correlation.model import PairModel

log = logging.getLogger(__name__)


class LazyEmbedder:
    """The configured embedder, loaded on first use (a CLI command that never correlates never loads it)."""

    def __init__(
        self,
        model: str,
        loaded: Embedder | None = None,
        threads: int | None = None,
        precision: Precision = "auto",
    ) -> None:
        self._model = model
        self._embedder = loaded
        self._threads = threads
        self._precision = precision
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    self._embedder = load_embedder(self._model, threads=self._threads, precision=self._precision)
        return self._embedder.embed(texts)


def models_dir(settings: Settings) -> Path:
    return settings.state_dir / "models"


def build_correlator(settings: Settings, embedder: Embedder | None = None) -> Correlator:
    """The learned correlator: the champion pair model, its threshold, the topology file when one is set."""
    model = champion_pair_model(settings)
    topology = Topology.load(settings.topology_file) if settings.topology_file else None
    policy = correlation_policy(settings, model.threshold)
    lazy = LazyEmbedder(settings.embedding_model, embedder, settings.model_threads, settings.embedding_precision)
    return Correlator(model, lazy, topology, policy)


def champion_pair_model(settings: Settings) -> PairModel:
    """The model registry's correlate champion; the packaged default when there is none, when the registry
    cannot be read, or when the champion's card does not match this code (said in one line)."""
    from bot.registry import correlate  # scikit-learn: imported only where a model is used

    database = Database(settings.effective_database_url, lock_timeout=settings.db_lock_timeout)
    try:
        with database.read() as session:
            directory = champion_dir(session, correlate.KIND)
    except SQLAlchemyError as exc:
        log.warning("model registry unreadable (%s): the packaged pair model serves", str(exc).splitlines()[0])
        directory = None
    finally:
        database.dispose()
    try:
        return correlate.load(directory)
    except ValueError as exc:  # the registry's card check or the artefact's own
        log.error("correlate champion refused: %s; the packaged pair model serves", exc)
        return correlate.load(None)


def correlation_policy(settings: Settings, threshold: float = DEFAULT_THRESHOLD) -> CorrelationPolicy:
    """The correlator's policy from settings (what the worker runs, training replays with, ``eval dedup`` runs)."""
    return CorrelationPolicy(
        threshold=threshold,
        reopen_window=settings.reopen_window,
        max_services=settings.correlation_max_services,
        max_age=settings.correlation_max_age,
    )


def build_prefetch(
    database: Database, correlation: Correlation, then: Callable[[list[str]], object] | None = None
) -> EmbeddingPrefetch | None:
    """The embedding prefetch for the worker of ``correlation`` (None: it embeds nothing); ``then`` is given the
    texts of each round once they are embedded."""
    learned = correlation.learned if isinstance(correlation, ShadowCorrelation) else correlation
    if not isinstance(learned, LearnedCorrelation) or learned.correlator.embedder is None:
        return None
    return EmbeddingPrefetch(database, learned.correlator.embedder, then=then)


def build_correlation(settings: Settings, embedder: Embedder | None = None) -> Correlation:
    source = SourceGrouping(settings.reopen_window)
    if settings.correlation == "source":
        return source
    correlator = build_correlator(settings, embedder)
    shadow = settings.correlation == "shadow"  # its decisions are never applied: nothing to plan on
    learned = LearnedCorrelation(correlator, ProfileStore(correlator.policy.horizon), plan=not shadow)
    return ShadowCorrelation(source, learned) if shadow else learned
