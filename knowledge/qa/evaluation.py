"""Question files for ``incibot eval qa`` and the run over them (metrics: :mod:`knowledge.evaluation`).

Questions: JSONL ``{"id", "question", "expected": [doc ids]}`` (``[]``: should abstain). Alert queries
(``runbook_queries.jsonl``, ``{"id", "alert", "expected"}``) become questions through
:func:`questions_from_alerts`: each alert's summary (its description when it has none), never its name or labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from knowledge.evaluation import read_lines, read_queries
from knowledge.qa.search import QaIndex
from knowledge.retrieval import SearchResult


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    question: str
    expected: tuple[str, ...]


def read_questions(path: str | Path) -> list[Question]:
    return read_lines(
        path,
        lambda item: Question(str(item["id"]), str(item["question"]), tuple(str(d) for d in item["expected"])),
        "a question",
    )


def questions_from_alerts(path: str | Path) -> list[Question]:
    """An alert query file as people's questions: each alert's summary annotation (else its description or
    message), without its name or labels; the expected documents as given."""
    questions = []
    for query in read_queries(path):
        annotations = query.alert.get("annotations") or {}
        text = next(
            (str(annotations[k]).strip() for k in ("summary", "description", "message") if annotations.get(k)), ""
        )
        questions.append(Question(query.id, text, query.expected))
    return questions


def answer_all(index: QaIndex, questions: Sequence[Question]) -> list[SearchResult]:
    """Every question answered as for a responder (every document eligible), ten results each."""
    return [index.rank(q.question, internal_allowed=True, limit=10) for q in questions]
