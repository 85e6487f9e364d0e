"""The agent decides the same way every time: two fresh knowledge bases over the same documents, one asked the
questions one at a time and one asked them all at once (so that its lazy index build races them), give the same
answers, abstentions and confidences."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.agent.service import KnowledgeBase
from knowledge.embeddings import Embedder
from knowledge.qa import DEFAULT_QA_THRESHOLD
from tests.agent_support import write_kb

QUESTIONS = [
    "I forgot my password, how can I set a new one?",
    "how do I connect to the VPN from my phone?",
    "the printer on my floor does not show up",
    "how do I rotate the payment gateway credentials?",
    "what's the capital of France?",
    "is checkout down?",
    "can I expense a new monitor?",
    "where do I find the GlobalGate client?",
]


def test_two_runs_over_the_same_questions_decide_the_same(tmp_path: Path, shared_embedder: Embedder) -> None:
    faq, runbooks = write_kb(tmp_path)

    def decisions(parallel: int) -> list[tuple[bool, float, str | None]]:
        knowledge = KnowledgeBase(faq, runbooks, shared_embedder, DEFAULT_QA_THRESHOLD)

        def decide(question: str) -> tuple[bool, float, str | None]:
            found = knowledge.index().search(question, internal_allowed=False, limit=3)
            return found.abstain, found.confidence, found.passages[0].doc_id if found.passages else None

        with ThreadPoolExecutor(parallel) as pool:
            return list(pool.map(decide, QUESTIONS))

    one_by_one = decisions(1)
    assert one_by_one == decisions(len(QUESTIONS))
    assert {abstain for abstain, _, _ in one_by_one} == {True, False}  # both decisions are exercised
