"""The vector index of incident documents: a FAISS cache of ``incident_documents``, kept in step with it.

The database holds every document's vector and a ``seq`` that grows with each stored vector. The index
remembers the largest ``seq`` it holds (its *watermark*, saved in the manifest). So:

* a process catches up by applying the rows with a larger ``seq`` (:meth:`IncidentIndex.catch_up`), which is
  how the web process sees what the worker embedded, and how a restart heals a crash that came between a
  database commit and the index save: the saved index is older, never wrong;
* on start-up (:meth:`IncidentIndex.open`) a saved index built for another model or dimension, a corrupt
  file, one that claims more than the database holds (restored backup, another database), or one whose count
  disagrees with the database after catching up, is rebuilt from the stored vectors (no model calls).

Only the worker saves (:meth:`IncidentIndex.save`); other processes keep their copy in memory.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text

from bot.db.database import Database
from bot.knowledge.models import IncidentDocument
from knowledge.index import IndexMismatch, IndexSpec, VectorIndex

log = logging.getLogger(__name__)

CORPUS = "incident-documents"
_CATCH_UP_BATCH = 5_000
_SEQ_LOCK = 0x1D0C5E9  # PostgreSQL advisory lock: one transaction stamps seqs at a time, in commit order


@dataclass(frozen=True, slots=True)
class StoredVector:
    incident_id: int
    rev: int
    vector: np.ndarray


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def store_vectors(database: Database, model: str, vectors: list[StoredVector]) -> int:
    """Store embedded revisions, stamping each with the next ``seq``; a row changed since it was read keeps
    ``pending`` (its newer text is embedded next round). Returns how many were stored."""
    stored = 0
    with database.write() as session:
        if database.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SEQ_LOCK})
        seq = int(session.scalar(select(func.coalesce(func.max(IncidentDocument.seq), 0))) or 0)
        for item in vectors:
            result = session.execute(
                text(
                    "UPDATE incident_documents SET vector = :vector, model = :model, seq = :seq, pending = false"
                    " WHERE incident_id = :id AND rev = :rev"
                ),
                {
                    "vector": vector_bytes(item.vector),
                    "model": model,
                    "seq": seq + 1,
                    "id": item.incident_id,
                    "rev": item.rev,
                },
            )
            if result.rowcount:  # type: ignore[attr-defined]
                seq += 1
                stored += 1
    return stored


class IncidentIndex:
    """Incident id → document vector, searched by cosine similarity; see the module docstring."""

    def __init__(self, database: Database, model: str, dimension: int, directory: Path | None) -> None:
        self._database = database
        self._spec = IndexSpec(model, dimension, CORPUS)
        self._directory = directory
        self._lock = threading.Lock()
        self._index = VectorIndex(self._spec)
        self._saved_watermark = -1

    @property
    def count(self) -> int:
        return self._index.count

    @property
    def watermark(self) -> int:
        return self._index.watermark

    @property
    def model(self) -> str:
        return self._spec.model

    def open(self) -> str:
        """Load the saved index and catch it up, or rebuild it from the database; says which, and why."""
        with self._lock:
            reason = self._load()
            if reason is None:
                how = f"loaded {self._index.count} saved incident vectors (watermark {self._index.watermark})"
                applied = self._catch_up()
                held = self._stored_count()
                if held == self._index.count:
                    return how + (f", caught up {applied} newer from the database" if applied else "")
                reason = f"it holds {self._index.count} vectors after catching up, the database {held}"
            self._rebuild()
            return f"rebuilt from the database ({self._index.count} incident vectors): {reason}"

    def catch_up(self) -> int:
        """Apply vectors stored since the watermark; returns how many."""
        with self._lock:
            return self._catch_up()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest incidents: ``(incident id, cosine similarity)``, best first."""
        scores, ids = self._index.search(vector, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True)]

    def save(self, *, force: bool = False) -> bool:
        """Save atomically if anything changed since the last save (or ``force``); False without a directory."""
        if self._directory is None:
            return False
        with self._lock:
            if not force and self._index.watermark == self._saved_watermark:
                return False
            self._index.save(self._directory)
            self._saved_watermark = self._index.watermark
        return True

    # -- internals (called with the lock held) -----------------------------------------------------------------

    def _load(self) -> str | None:
        """None when the saved index was loaded; else why it cannot be used."""
        if self._directory is None:
            return "no index directory"
        try:
            loaded = VectorIndex.load(self._directory, self._spec)
        except IndexMismatch as exc:
            return str(exc)
        high = self._max_seq()
        if loaded.watermark > high:
            return f"it holds changes up to {loaded.watermark}, the database only up to {high}"
        self._index = loaded
        self._saved_watermark = loaded.watermark
        return None

    def _catch_up(self) -> int:
        applied = 0
        while True:
            with self._database.read() as session:
                rows = session.execute(
                    select(IncidentDocument.incident_id, IncidentDocument.vector, IncidentDocument.seq)
                    .where(IncidentDocument.seq > self._index.watermark, IncidentDocument.model == self._spec.model)
                    .order_by(IncidentDocument.seq)
                    .limit(_CATCH_UP_BATCH)
                ).all()
            if not rows:
                return applied
            usable = [(i, v) for i, v, _ in rows if v is not None]
            if usable:
                ids = np.array([i for i, _ in usable], dtype=np.int64)
                self._index.add(ids, np.vstack([vector_from_bytes(v) for _, v in usable]))
            self._index.watermark = int(rows[-1][2])
            applied += len(rows)

    def _rebuild(self) -> None:
        ids: list[int] = []
        vectors: list[np.ndarray] = []
        high = 0
        with self._database.read() as session:
            for incident_id, raw, seq in session.execute(
                select(IncidentDocument.incident_id, IncidentDocument.vector, IncidentDocument.seq).where(
                    IncidentDocument.vector.is_not(None), IncidentDocument.model == self._spec.model
                )
            ):
                ids.append(incident_id)
                vectors.append(vector_from_bytes(raw))
                high = max(high, int(seq or 0))
        matrix = np.vstack(vectors) if vectors else np.zeros((0, self._spec.dimension), dtype=np.float32)
        self._index = VectorIndex.build(self._spec, np.array(ids, dtype=np.int64), matrix)
        self._index.watermark = high
        self._saved_watermark = -1  # not saved yet

    def _stored_count(self) -> int:
        with self._database.read() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(IncidentDocument)
                    .where(IncidentDocument.vector.is_not(None), IncidentDocument.model == self._spec.model)
                )
                or 0
            )

    def _max_seq(self) -> int:
        with self._database.read() as session:
            return int(session.scalar(select(func.coalesce(func.max(IncidentDocument.seq), 0))) or 0)
