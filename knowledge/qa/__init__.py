"""Question answering over a knowledge base of Markdown documents (FAQ articles, runbooks): question →
passages with a confidence comparable across questions, and abstention below a threshold.

Built on the runbook retrieval (:mod:`knowledge.retrieval`); never imports ``bot``.
"""

from knowledge.qa.documents import Audience, KbSource, QaDocument, load_kb
from knowledge.qa.search import DEFAULT_QA_THRESHOLD, Passage, QaIndex, QaResult

__all__ = [
    "DEFAULT_QA_THRESHOLD",
    "Audience",
    "KbSource",
    "Passage",
    "QaDocument",
    "QaIndex",
    "QaResult",
    "load_kb",
]
