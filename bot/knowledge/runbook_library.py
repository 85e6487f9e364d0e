"""The runbook folder, indexed for search, and re-indexed when its files change.

Section vectors are saved under ``<index dir>/runbooks`` with a manifest naming the model and a hash of
every text embedded, so a restart with unchanged runbooks embeds nothing; a changed file, another model or a
damaged index is noticed and the folder is embedded again. The folder is checked for changes (names, sizes,
modification times) at most every ``check_every`` seconds, when search asks for the index.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from knowledge.embeddings import Embedder
from knowledge.index import IndexMismatch, IndexSpec, VectorIndex
from knowledge.retrieval import RunbookIndex
from knowledge.runbooks import corpus_hash, load_corpus, runbook_files

log = logging.getLogger(__name__)

CHECK_EVERY = 30.0  # seconds between checks of the folder for changed files

Signature = tuple[tuple[str, int, int], ...]


def folder_signature(folder: Path) -> Signature:
    """Names, sizes and modification times of the folder's runbooks: cheap to read, changes with any edit."""
    out = []
    for path in runbook_files(folder):
        stat = path.stat()
        out.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


class RunbookLibrary:
    """Gives the current :class:`~knowledge.retrieval.RunbookIndex` of a folder; see the module docstring."""

    def __init__(
        self,
        folder: Path,
        embedder: Embedder,
        index_dir: Path | None,
        *,
        check_every: float = CHECK_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self._embedder = embedder
        self._index_dir = index_dir
        self._check_every = check_every
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._signature: Signature | None = None
        self._checked = -float("inf")
        self._index: RunbookIndex | None = None

    def index(self) -> RunbookIndex:
        """The index of the folder as it is now (re-read if files changed since the last check)."""
        with self._lock:
            now = self._monotonic()
            if self._index is None or now - self._checked >= self._check_every:
                self._checked = now
                signature = folder_signature(self.folder)
                if self._index is None or signature != self._signature:
                    self._index, how = self._load_reporting(save=False)
                    log.info("runbooks %s: %s", self.folder, how)
                    self._signature = signature
            return self._index

    def rebuild(self, *, save: bool = True) -> tuple[RunbookIndex, str]:
        """Read the folder now; reuse saved vectors if they fit, else embed them (and save: only the worker and
        ``incibot knowledge index`` call this, one process per index directory). Says which."""
        with self._lock:
            self._signature = folder_signature(self.folder)
            self._checked = self._monotonic()
            self._index, how = self._load_reporting(save=save)
            return self._index, how

    def _load_reporting(self, *, save: bool) -> tuple[RunbookIndex, str]:
        runbooks = load_corpus(self.folder)
        layout = RunbookIndex(runbooks, None)  # the texts that would be embedded, without embedding them
        spec = IndexSpec(self._embedder.name, self._embedder.dimension, _texts_hash(corpus_hash(runbooks), layout))
        ids = np.arange(len(layout.unit_texts), dtype=np.int64)
        if self._index_dir is not None:
            try:
                saved = VectorIndex.load(self._index_dir / "runbooks", spec)
                if saved.count == len(ids):
                    vectors = saved.vectors(ids) if len(ids) else None
                    index = RunbookIndex(runbooks, self._embedder, vectors=vectors)
                    return index, f"{len(runbooks)} runbooks, {len(ids)} section vectors loaded from the index"
            except IndexMismatch as exc:
                log.info("runbook index not reused: %s", exc)
        started = time.monotonic()
        index = RunbookIndex(runbooks, self._embedder)
        how = f"{len(runbooks)} runbooks, {len(ids)} sections embedded in {time.monotonic() - started:.1f}s"
        if save and self._index_dir is not None and len(ids):
            VectorIndex.build(spec, ids, index.vectors).save(self._index_dir / "runbooks")
            how += ", index saved"
        return index, how


def _texts_hash(files_hash: str, layout: RunbookIndex) -> str:
    digest = hashlib.sha256(files_hash.encode())
    for text in layout.unit_texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()
