"""Builds the knowledge parts from settings (called by the composition root only)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.db.database import Database
from bot.knowledge.incident_index import IncidentIndex
from bot.knowledge.indexer import KnowledgeIndexer
from bot.knowledge.runbook_library import RunbookLibrary
from bot.knowledge.service import KnowledgeService
from bot.settings import Settings
from knowledge.embeddings import Embedder, EmbeddingModelError, load_embedder


class KnowledgeConfigurationError(Exception):
    """Search cannot start as configured (no runbook folder, a model that does not load)."""


@dataclass
class Knowledge:
    service: KnowledgeService
    indexer: KnowledgeIndexer  # started in the worker role only
    embedder: Embedder  # shared with the correlator

    @classmethod
    def build(cls, settings: Settings, database: Database, embedder: Embedder | None = None) -> Knowledge:
        """``embedder``: a loaded model to share (tests load one per session); else the configured one is loaded
        now, at start-up, never on a request path."""
        folder = settings.effective_runbooks_dir
        if not folder.is_dir():
            raise KnowledgeConfigurationError(f"INCIBOT_RUNBOOKS_DIR {folder} is not a directory")
        try:
            embedder = embedder or load_embedder(
                settings.embedding_model, threads=settings.model_threads, precision=settings.embedding_precision
            )
        except EmbeddingModelError as exc:
            raise KnowledgeConfigurationError(f"INCIBOT_EMBEDDING_MODEL: {exc}") from exc
        index_dir = settings.effective_index_dir
        incidents = IncidentIndex(database, embedder.name, embedder.dimension, index_dir / "incidents")
        runbooks = RunbookLibrary(folder, embedder, index_dir)
        indexer = KnowledgeIndexer(database, embedder, incidents, runbooks, save_every=settings.index_save_interval)
        return cls(KnowledgeService(database, embedder, runbooks, incidents), indexer, embedder)

    def start_web(self) -> None:
        """A web-only process searches its own in-memory copy: load the saved indexes (or build them)."""
        self.service.incidents.open()
        self.service.runbooks.index()
