"""Question → passages over a knowledge base, with a calibrated confidence comparable across questions.

Questions written by people name no alert, so the ranking leans on meaning: the dense similarity fused with a
smaller share of BM25 (:data:`QA_LEXICAL_WEIGHT`, where alerts use 0.4) and with the confidence. The confidence
that a document answers is a logistic fit (:data:`CALIBRATION`) of three absolute measures, none of which depends
on the documents' order: the dense similarity, the share of the question's IDF-weighted words the document
contains, and how far the similarity stands above the nearest other documents' (a z-score against them: a question
close to many, such as one about some other Prometheus alert, fits none in particular).
Fitted (logistic regression, C=10, on each question's top document: answerable or not) on the two development
sets, people's questions over the sample FAQ and runbooks with 66 distractor runbooks and alert summaries over
those 66 runbooks; fitted on either set alone it gives an AUROC of 0.944-0.958 on the other. ``incibot eval qa``
measures it.

Every document is indexed once, whatever its audience; :meth:`QaIndex.search` ranks them all and drops those the
asker may not see before taking the best ``limit`` (``internal_allowed=False``: public documents only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from knowledge.qa.documents import QaDocument
from knowledge.retrieval import Evidence, Hit, RunbookIndex, SearchResult, TextEmbedder

# Weight of BM25 (scaled to the question's best document) in the ranking; the dense similarity has the rest.
QA_LEXICAL_WEIGHT = 0.2
# Logistic calibration: intercept, then the weights of dense similarity, lexical coverage and dense z-score.
CALIBRATION = (-6.38, 2.91, 4.59, 1.13)
# The z-score compares a document's similarity with that of the other documents closest to the question, this many,
# with a floor on their spread (near-identical neighbours would inflate it).
Z_NEIGHBOURS = 20
Z_SPREAD_FLOOR = 0.05
# Confidence below which the question is not answered (the caller offers a human instead): under the highest
# that abstains on at most 5% of either development set's answerable questions with the calibration fitted on the
# other folds (5-fold cross-validation: 0.335 on people's questions, 0.69 on alert summaries, whose answerable ones
# score higher), with a margin for new questions. There it abstains on 3.7% and 0% of the answerable questions
# (2.5% without the distractors), 75% of the unanswerable people's questions and 24% of the alert summaries.
DEFAULT_QA_THRESHOLD = 0.3
# Weight of the confidence in the ranking score (a document that fits in absolute terms moves up).
CONFIDENCE_IN_RANKING = 0.2
# A follow-up is searched twice, alone and after its thread's context (the previous question, and the answer's
# title if wanted); the second search counts at this share in the ranking and in the confidence: what the
# context alone supports scores at most this much (a vague "and on my phone?" after a password question reaches
# about 0.37, over the threshold; a new question on another topic can reach it too, and then gets the earlier
# topic's document at that modest confidence).
CONTEXT_WEIGHT = 0.4


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


def confidence(found: Evidence) -> npt.NDArray[np.float64]:
    """Every document's calibrated confidence, 0..1, that it answers the text ``found`` was gathered for."""
    dense = found.dense
    intercept, w_dense, w_coverage, w_z = CALIBRATION
    logit = intercept + w_dense * dense + w_coverage * found.coverage + w_z * _z_against_neighbours(dense)
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)


def _z_against_neighbours(dense: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each similarity's z-score against the :data:`Z_NEIGHBOURS` highest of the other documents: the documents
    far from the question (distractors on other subjects) do not move it, nor does the knowledge base's size."""
    count = len(dense)
    if count < 2:
        return np.zeros_like(dense)
    order = np.argsort(-dense, kind="stable")
    rank = np.empty(count, dtype=np.int64)
    rank[order] = np.arange(count)
    top = dense[order[: Z_NEIGHBOURS + 1]]
    inside = rank < len(top)  # among the top: its neighbours are the top without itself
    own = np.where(inside, top[np.minimum(rank, len(top) - 1)], 0.0)
    size = np.where(inside, len(top) - 1, min(Z_NEIGHBOURS, count - 1))
    outside = top[:Z_NEIGHBOURS] if len(top) > Z_NEIGHBOURS else top[:-1]
    total = np.where(inside, top.sum() - own, outside.sum())
    squares = np.where(inside, np.square(top).sum() - np.square(own), np.square(outside).sum())
    mean = total / size
    spread = np.sqrt(np.maximum(squares / size - np.square(mean), 0.0))
    return np.asarray((dense - mean) / np.maximum(spread, Z_SPREAD_FLOOR), dtype=np.float64)


def ranking(found: Evidence, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Every document's ranking score (meaningful within one question only), given its confidence ``scores``."""
    fused = (1 - QA_LEXICAL_WEIGHT) * found.dense + QA_LEXICAL_WEIGHT * found.lexical_relative
    return np.asarray(fused + CONFIDENCE_IN_RANKING * scores)


class QaIndex:
    """Documents ready to search. Build once (embedding every section), then :meth:`search` per question."""

    def __init__(
        self,
        documents: Sequence[QaDocument],
        embedder: TextEmbedder | None,
        *,
        threshold: float = DEFAULT_QA_THRESHOLD,
    ) -> None:
        self.documents = list(documents)
        self.threshold = threshold
        self._by_id = {d.doc_id: d for d in self.documents}
        self._index = RunbookIndex([d.content for d in self.documents], embedder)

    def __len__(self) -> int:
        return len(self.documents)

    def rank(
        self, question: str, *, internal_allowed: bool, context: str | None = None, limit: int = 10
    ) -> SearchResult:
        """The best ``limit`` documents the asker may see, as hits (doc id, confidence, best section), and
        whether to abstain. ``context``: the thread's previous question (and answer), a soft expansion."""
        if not self.documents:
            return SearchResult([], 0.0, True)
        found = self._index.evidence(question)
        scores = confidence(found)
        rank_score = ranking(found, scores)
        if context and context.strip():
            # One line (one embedding), the question first: a long context is what the model's window cuts off.
            expanded = self._index.evidence(" ".join(f"{question} {context}".split()))
            expanded_scores = confidence(expanded)
            rank_score = rank_score + CONTEXT_WEIGHT * ranking(expanded, expanded_scores)
            scores = np.maximum(scores, CONTEXT_WEIGHT * expanded_scores)
        allowed = [i for i, d in enumerate(self.documents) if internal_allowed or d.public]
        order = sorted(allowed, key=lambda i: (-rank_score[i], self.documents[i].doc_id))[:limit]
        hits: list[Hit] = []
        for i in order:
            score = float(scores[i]) if not hits else min(float(scores[i]), hits[-1].score)  # never rises
            hits.append(
                Hit(
                    doc=self.documents[i].doc_id,
                    score=round(score, 6),
                    section=self._index.best_section(i, found),
                    dense=round(float(found.dense[i]), 6),
                    lexical=round(float(found.bm25[i]), 6),
                )
            )
        best = hits[0].score if hits else 0.0
        return SearchResult(hits, best, best < self.threshold)

    def search(self, question: str, *, internal_allowed: bool, context: str | None = None, limit: int = 5) -> QaResult:
        """The passages that best answer ``question`` (see :meth:`rank`), each with its document's title, link
        and the text of its best section."""
        found = self.rank(question, internal_allowed=internal_allowed, context=context, limit=limit)
        passages = [_passage(self._by_id[hit.doc], hit.section, hit.score) for hit in found.hits]
        return QaResult(passages, found.confidence, found.abstain)


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
