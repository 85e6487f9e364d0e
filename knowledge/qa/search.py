"""Question → passages over a knowledge base, with a confidence comparable across questions and abstention.

Every document is indexed once; :meth:`QaIndex.search` ranks them all and drops those the asker may not see
(``internal_allowed=False``: public documents only) before taking the best ``limit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from knowledge.qa.documents import QaDocument
from knowledge.retrieval import RunbookIndex, TextEmbedder

# Confidence below which a question is not answered (the caller hands over to a human).
DEFAULT_QA_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Passage:
    doc_id: str
    title: str
    link: str | None
    section: str | None  # the best section's heading
    text: str  # that section's text (the passage to quote)
    score: float  # confidence that this document answers the question, 0..1, comparable across questions


@dataclass(frozen=True, slots=True)
class QaResult:
    passages: list[Passage]  # best first, one per document
    confidence: float  # the best passage's score (0 without passages)
    abstain: bool


class QaIndex:
    """Documents ready to search. Build once (embedding every section), then :meth:`search` per question."""

    def __init__(
        self, documents: Sequence[QaDocument], embedder: TextEmbedder | None, *, threshold: float = DEFAULT_QA_THRESHOLD
    ) -> None:
        self.documents = list(documents)
        self.threshold = threshold
        self._by_id = {d.doc_id: d for d in self.documents}
        self._index = RunbookIndex([d.content for d in self.documents], embedder)

    def __len__(self) -> int:
        return len(self.documents)

    def search(self, question: str, *, internal_allowed: bool, context: str | None = None, limit: int = 5) -> QaResult:
        """The documents that best answer ``question``; ``context``: the previous question and answer of the
        thread, a soft expansion of the query."""
        text = f"{context}\n{question}" if context else question
        found = self._index.search(text, limit=len(self.documents))
        passages: list[Passage] = []
        for hit in found.hits:
            document = self._by_id[hit.doc]
            if not internal_allowed and not document.public:
                continue
            passages.append(_passage(document, hit.section, hit.score))
            if len(passages) >= limit:
                break
        confidence = passages[0].score if passages else 0.0
        return QaResult(passages, confidence, confidence < self.threshold)


def _passage(document: QaDocument, section: str | None, score: float) -> Passage:
    chosen = next((s for s in document.sections if s.heading == section), None)
    if chosen is None and document.sections:
        chosen = document.sections[0]
    return Passage(
        doc_id=document.doc_id,
        title=document.title,
        link=document.link,
        section=chosen.heading if chosen else None,
        text=chosen.text if chosen else "",
        score=score,
    )
