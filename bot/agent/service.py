"""The virtual agent's answers: question → status (open incidents), how-to (knowledge passages) or abstention,
within what the asker may see. No Slack here: :mod:`bot.agent.exchange` carries questions and answers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.agent.answers import (
    Answer,
    Asker,
    abstain_answer,
    howto_answer,
    nothing_open,
    nothing_open_answer,
    status_answer,
)
from bot.agent.status import StatusFinder, is_status_question, names_service
from bot.db.database import Database
from knowledge.qa import KbSource, Passage, QaIndex, load_kb
from knowledge.retrieval import TextEmbedder

log = logging.getLogger(__name__)

Rewriter = Callable[[Sequence[Passage], str], str | None]
"""An optional answer writer (passages, question → text citing [1]..[n], or None to keep the extractive one)."""
PASSAGES = 3


class KnowledgeBase:
    """The FAQ articles (public unless they say otherwise) and the runbooks (internal unless they say otherwise),
    indexed once, on first use (after the first question's "looking…": a background start-up thread embedding
    in torch would abort the interpreter at shutdown)."""

    def __init__(
        self, faq_dir: Path | None, runbooks_dir: Path | None, embedder: TextEmbedder | None, threshold: float
    ) -> None:
        self._sources = [
            *([KbSource(faq_dir, "faq/", "public")] if faq_dir is not None else []),
            *([KbSource(runbooks_dir, "runbooks/", "internal")] if runbooks_dir is not None else []),
        ]
        self._embedder = embedder
        self._threshold = threshold
        self._index: QaIndex | None = None
        self._lock = threading.Lock()

    def index(self) -> QaIndex:
        with self._lock:
            if self._index is None:
                self._index = QaIndex(load_kb(*self._sources), self._embedder, threshold=self._threshold)
                log.info("virtual agent: %d knowledge documents indexed", len(self._index))
            return self._index


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
