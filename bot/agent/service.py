"""The virtual agent's answers: question → status (open incidents), how-to (knowledge passages) or abstention,
within what the asker may see. No Slack here: :mod:`bot.agent.exchange` carries questions and answers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bot.agent.answers import (
    Answer,
    Asker,
    abstain_answer,
    howto_answer,
    nothing_open,
    nothing_open_answer,
    status_answer,
)
from bot.agent.incident_notes import IncidentNotes
from bot.agent.status import StatusFinder, is_status_question, names_service
from bot.db.database import Database
from knowledge.qa import Audience, KbSource, Passage, QaDocument, QaIndex, load_kb
from knowledge.retrieval import TextEmbedder

log = logging.getLogger(__name__)

Rewriter = Callable[[Sequence[Passage], str], str | None]
"""An optional answer writer (passages, question → text citing [1]..[n], or None to keep the extractive one)."""
PASSAGES = 3


class KnowledgeBase:
    """The FAQ articles (public unless they say otherwise), the runbooks (internal unless they say otherwise) and
    resolved incidents' notes (``notes``), indexed on first use (after the first question's "looking…": a
    background start-up thread embedding in torch would abort the interpreter at shutdown). Each question re-reads
    the notes; when they changed the index is rebuilt, embedding only the sections it had not embedded before."""

    def __init__(
        self,
        faq_dir: Path | None,
        runbooks_dir: Path | None,
        embedder: TextEmbedder | None,
        threshold: float,
        notes: IncidentNotes | None = None,
    ) -> None:
        self._sources = [
            *([KbSource(faq_dir, "faq/", "public")] if faq_dir is not None else []),
            *([KbSource(runbooks_dir, "runbooks/", "internal")] if runbooks_dir is not None else []),
        ]
        self._embedder = embedder
        self._threshold = threshold
        self._notes = notes
        self._articles: list[QaDocument] | None = None
        self._indexed_notes: list[tuple[str, str, Audience, str | None]] | None = None
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}
        self._index: QaIndex | None = None
        self._lock = threading.Lock()

    def index(self) -> QaIndex:
        with self._lock:
            if self._articles is None:
                self._articles = load_kb(*self._sources)
            notes = self._notes.documents() if self._notes is not None else []
            key = [(d.doc_id, d.content.body, d.audience, d.link) for d in notes]
            if self._index is None or key != self._indexed_notes:
                embedder = _Remembering(self._embedder, self._vectors) if self._embedder is not None else None
                self._index = QaIndex([*self._articles, *notes], embedder, threshold=self._threshold)
                self._vectors = embedder.kept() if embedder is not None else {}
                self._indexed_notes = key
                log.info("virtual agent: %d knowledge documents indexed (%d notes)", len(self._index), len(notes))
            return self._index


class _Remembering:
    """An embedder that reuses the vectors of texts the previous index embedded; :meth:`kept` returns those of
    the texts embedded since it was made (an index's sections: call it before any question is asked)."""

    def __init__(self, embedder: TextEmbedder, known: dict[str, npt.NDArray[np.float32]]) -> None:
        self._embedder = embedder
        self._known = known
        self._kept: dict[str, npt.NDArray[np.float32]] | None = {}
        self.dimension = embedder.dimension

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        missing = [text for text in dict.fromkeys(texts) if text not in self._known]
        fresh = dict(zip(missing, self._embedder.embed(missing), strict=True)) if missing else {}
        vectors = [fresh[text] if text in fresh else self._known[text] for text in texts]
        if self._kept is not None:
            self._kept.update(zip(texts, vectors, strict=True))
        if not vectors:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(np.stack(vectors), dtype=np.float32)

    def kept(self) -> dict[str, npt.NDArray[np.float32]]:
        kept, self._kept = self._kept or {}, None
        return kept


class AgentService:
    """``answer`` decides between a status answer, a how-to answer and abstention; ``rewriter`` (the optional
    generated answers) is plugged in by the hand-over."""

    def __init__(
        self, database: Database, knowledge: KnowledgeBase, status: StatusFinder, rewriter: Rewriter | None = None
    ) -> None:
        self._database = database
        self.knowledge = knowledge
        self._status = status
        self.rewriter = rewriter

    def answer(self, question: str, asker: Asker, context: str | None = None, *, question_id: int = 0) -> Answer:
        """The answer to ``question`` for ``asker``; ``context``: the thread's previous question and answer;
        ``question_id``: the stored question (the hand-over buttons carry it)."""
        index = self.knowledge.index()
        found = index.search(question, internal_allowed=asker.responder, context=context, limit=PASSAGES)
        passages = [] if found.abstain else [p for p in found.passages if p.score >= index.threshold]
        note = None
        with self._database.read() as session:
            matches = self._status.open_matches(session, question, responder=asker.responder)
            if matches:
                return status_answer(matches, passages)
            if is_status_question(question):
                last = self._status.last_resolved(session, question, responder=asker.responder)
                service = last.service if last is not None and names_service(question, last.service) else None
                note = nothing_open(last, service)
        if passages:
            return howto_answer(passages, note, self._rewrite(passages, question))
        if note is not None:
            return nothing_open_answer(note, question_id)
        return abstain_answer(question_id, confidence=found.confidence)

    def _rewrite(self, passages: Sequence[Passage], question: str) -> str | None:
        if self.rewriter is None:
            return None
        try:
            return self.rewriter(passages, question)
        except Exception:  # an optional writer never stops the extractive answer
            log.exception("the answer writer failed; answering with the passage")
            return None
