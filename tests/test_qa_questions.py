"""The sample knowledge base (knowledge/samples) and its dev question set stay honest and well-formed."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import TypedDict

import pytest
import yaml

SAMPLES = Path(__file__).resolve().parents[1] / "knowledge" / "samples"
QUESTIONS = SAMPLES / "questions.jsonl"
COPY_RUN = 4  # a question may not repeat this many consecutive words of a document it targets


class Question(TypedDict):
    id: str
    question: str
    expected: list[str]  # doc ids relative to knowledge/samples; [] = nothing answers it


def load_questions() -> list[Question]:
    return [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def runs(tokens: list[str], n: int = COPY_RUN) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def front_matter(path: Path) -> dict[str, object]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n"), f"{path.name} has no front matter"
    meta = yaml.safe_load(text.split("---\n", 2)[1])
    assert isinstance(meta, dict)
    return meta


def doc_path(doc_id: str) -> Path:
    return SAMPLES / f"{doc_id}.md"


def test_questions_parse_with_unique_ids() -> None:
    questions = load_questions()
    assert len(questions) >= 80
    for q in questions:
        assert set(q) == {"id", "question", "expected"}, q
        assert isinstance(q["question"], str) and q["question"].strip()
        assert isinstance(q["expected"], list)
    ids = [q["id"] for q in questions]
    assert len(set(ids)) == len(ids)


def test_a_third_of_the_questions_is_unanswerable() -> None:
    questions = load_questions()
    share = sum(1 for q in questions if not q["expected"]) / len(questions)
    assert abs(share - 1 / 3) <= 0.05, share


def test_every_expected_document_exists() -> None:
    missing = {d for q in load_questions() for d in q["expected"] if not doc_path(d).is_file()}
    assert not missing


def test_no_question_copies_its_target_documents() -> None:
    corpus = {path: runs(words(path.read_text(encoding="utf-8"))) for path in SAMPLES.rglob("*.md")}
    copies = {
        q["id"]: sorted(" ".join(r) for r in runs(words(q["question"])) & corpus[doc_path(d)])
        for q in load_questions()
        for d in q["expected"]
    }
    assert not {qid: found for qid, found in copies.items() if found}


def test_copy_check_catches_a_copied_run() -> None:
    article = runs(words(doc_path("faq/vpn-cannot-connect").read_text(encoding="utf-8")))
    assert runs(words("the app keeps spinning on Connecting... and never gets there")) & article
    assert not runs(words("vpn app just says connection failed when I try from home")) & article


def test_every_faq_article_is_asked_about_at_least_twice() -> None:
    asked = Counter(d for q in load_questions() for d in q["expected"])
    articles = sorted(p.relative_to(SAMPLES).with_suffix("").as_posix() for p in (SAMPLES / "faq").glob("*.md"))
    assert len(articles) >= 25
    assert {a: asked[a] for a in articles if asked[a] < 2} == {}
    assert any(d.startswith("runbooks/") for d in asked)


@pytest.mark.parametrize("path", sorted((SAMPLES / "faq").glob("*.md")), ids=lambda p: p.stem)
def test_faq_article_is_public_with_title_tags_and_services(path: Path) -> None:
    meta = front_matter(path)
    assert meta["audience"] == "public"
    assert isinstance(meta["title"], str) and meta["title"]
    assert meta["tags"] and meta["services"]
    body = path.read_text(encoding="utf-8").split("---\n", 2)[2]
    assert 150 <= len(words(body)) <= 400
    assert "## Still stuck?" in body


@pytest.mark.parametrize("path", sorted((SAMPLES / "runbooks").rglob("*.md")), ids=lambda p: p.stem)
def test_sample_runbook_is_internal(path: Path) -> None:
    assert front_matter(path)["audience"] == "internal"
