"""knowledge/qa: people's questions → knowledge-base passages, audience, follow-ups, and ``incibot eval qa``.

The knowledge base is a small fixture written here; the real all-MiniLM-L6-v2 embedder is shared per session.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from bot.cli.main import main
from knowledge.embeddings import Embedder
from knowledge.qa import DEFAULT_QA_THRESHOLD, KbSource, QaIndex, load_kb
from knowledge.qa.evaluation import questions_from_alerts
from knowledge.qa.search import CONTEXT_WEIGHT

DOCS = {
    "faq/vpn.md": """---
title: "Connecting to the company VPN"
audience: public
link: https://help.example.com/vpn
---
## Before you start
Install the GlobalConnect client from the software portal and sign in with your work account.

## It will not connect
Check that your laptop has internet access, then quit and reopen the client. Hotel and airport networks
often block the tunnel: switch to your phone's hotspot and try again.

## On a phone
The GlobalConnect app for iOS and Android uses the same account; approve the sign-in prompt on the phone.
""",
    "faq/printer.md": """---
title: "Printing in the office"
---
## Add a printer
Open Settings, Printers, Add, and pick the floor's printer from the list. Jobs wait until you tap your badge on
the printer.

## Paper jams
Open the front cover, pull the jammed sheet out gently and close the cover.
""",
    "faq/password.md": """---
title: "Resetting a forgotten password"
audience: public
---
## Reset it yourself
Go to the account portal, choose "Forgot password", and confirm with the code sent to your phone. The new
password must have at least 14 characters.
""",
    "runbooks/db/ReplicaLag.md": """---
title: "Database replica lagging behind the primary"
alerts: [ReplicaLagHigh]
---
## Meaning
The read replica applies the primary's write-ahead log later and later: reads served by it are stale.

## Mitigation
Look for long-running queries on the replica and for saturated disks; rebuild the replica if it cannot catch up.
""",
    "internal/deploys.md": """---
title: "Rolling back a bad deploy"
audience: internal
---
## Steps
Run the rollback job for the service in the deploy pipeline and watch the error rate settle.
""",
}


def write_kb(root: Path, docs: dict[str, str] = DOCS) -> Path:
    for name, text in docs.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_kb(tmp_path_factory.mktemp("kb"))


@pytest.fixture(scope="module")
def index(kb: Path, shared_embedder: Embedder) -> QaIndex:
    return QaIndex(load_kb(kb), shared_embedder)


def test_load_kb_reads_audience_links_and_prefixes_ids(kb: Path, tmp_path: Path) -> None:
    docs = {d.doc_id: d for d in load_kb(kb)}
    assert docs["faq/vpn"].audience == "public" and docs["faq/vpn"].link == "https://help.example.com/vpn"
    assert docs["faq/printer"].audience == "public"  # not a runbook: public unless it says otherwise
    assert docs["runbooks/db/ReplicaLag"].audience == "internal"  # runbooks are internal by default
    assert docs["faq/vpn"].title == "Connecting to the company VPN"
    assert [s.heading for s in docs["faq/vpn"].sections] == ["Before you start", "It will not connect", "On a phone"]
    # A source's default applies to documents that do not say; the prefix keeps ids apart.
    extra = write_kb(tmp_path / "extra", {"faq/vpn.md": "# VPN\nSome other text.", "howto.md": "# How\nText."})
    merged = {d.doc_id: d for d in load_kb(kb, KbSource(extra, prefix="extra/", audience="internal"))}
    assert merged["extra/faq/vpn"].audience == "internal" and merged["extra/howto"].audience == "internal"
    assert merged["faq/vpn"].audience == "public"
    with pytest.raises(ValueError, match="faq/vpn"):
        load_kb(kb, extra)
    with pytest.raises(FileNotFoundError):
        load_kb(tmp_path / "missing")


def test_a_how_to_question_gets_the_passage_that_answers_it(index: QaIndex) -> None:
    result = index.search("the vpn won't come up from my hotel room", internal_allowed=False)
    best = result.passages[0]
    assert not result.abstain and result.confidence == best.score >= DEFAULT_QA_THRESHOLD
    assert (best.doc_id, best.section, best.link) == ("faq/vpn", "It will not connect", "https://help.example.com/vpn")
    assert "hotspot" in best.text and best.title == "Connecting to the company VPN"
    assert [p.score for p in result.passages] == sorted((p.score for p in result.passages), reverse=True)


def test_an_unrelated_question_abstains_but_still_lists_the_closest(index: QaIndex) -> None:
    result = index.search("what is on the canteen menu this friday?", internal_allowed=True)
    assert result.abstain and result.confidence < DEFAULT_QA_THRESHOLD
    assert len(result.passages) == len(index)  # ranked all the same, as the eval's prediction lines need
    sure = index.search("I forgot my password, how do I reset it?", internal_allowed=True)
    assert sure.passages[0].doc_id == "faq/password" and sure.confidence > result.confidence + 0.5


DISTRACTORS = {
    f"ops/{name}.md": f"# {title}\n## Meaning\n{text}\n"
    for name, title, text in [
        ("EtcdNoLeader", "etcd cluster has no leader", "The etcd members cannot elect a leader; writes fail."),
        ("NodeClockSkew", "Node clock drifts", "The node's clock is far from NTP time; certificates may fail."),
        ("KafkaLag", "Kafka consumer lag", "A consumer group falls behind the partitions it reads."),
        ("TargetDown", "Scrape target down", "Prometheus cannot scrape a target: its metrics are missing."),
        ("QuotaExceeded", "Namespace quota exceeded", "New pods are refused: the namespace used its CPU quota."),
        ("DnsErrors", "CoreDNS errors", "Name lookups inside the cluster fail or time out."),
    ]
}


def test_confidence_does_not_move_with_distractors_on_other_subjects(
    index: QaIndex, kb: Path, tmp_path: Path, shared_embedder: Embedder
) -> None:
    extra = write_kb(tmp_path / "ops", DISTRACTORS)
    larger = QaIndex(load_kb(kb, KbSource(extra, prefix="extra/")), shared_embedder)
    for question in ("I forgot my password, how do I reset it?", "paper is jammed in the printer"):
        alone, among = index.search(question, internal_allowed=True), larger.search(question, internal_allowed=True)
        assert alone.passages[0].doc_id == among.passages[0].doc_id
        assert abs(alone.confidence - among.confidence) < 0.1 and among.confidence >= DEFAULT_QA_THRESHOLD


def test_internal_documents_only_reach_responders(index: QaIndex) -> None:
    question = "reads from the database replica are stale, it is far behind the primary"
    responder = index.search(question, internal_allowed=True)
    assert responder.passages[0].doc_id == "runbooks/db/ReplicaLag" and not responder.abstain
    user = index.search(question, internal_allowed=False, limit=10)
    assert {p.doc_id for p in user.passages} == {"faq/vpn", "faq/printer", "faq/password"}
    assert user.confidence < responder.confidence


def test_a_follow_up_uses_the_thread_context(index: QaIndex) -> None:
    alone = index.search("and on my mobile?", internal_allowed=False)
    followed = index.search("and on my mobile?", internal_allowed=False, context="how do I connect to the vpn")
    assert followed.passages[0].doc_id == "faq/vpn" and followed.passages[0].section == "On a phone"
    assert followed.confidence > alone.confidence
    # Context is a soft expansion: what it alone supports never scores above CONTEXT_WEIGHT.
    other = index.search("where can I park my bike?", internal_allowed=False, context="how do I connect to the vpn")
    assert (
        other.confidence
        <= CONTEXT_WEIGHT
        < index.search("how do I connect to the vpn", internal_allowed=False).confidence
    )


def test_alert_queries_become_questions_from_their_summary(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    rows = [
        {"id": "1", "alert": {"labels": {"alertname": "ReplicaLagHigh"}, "annotations": {"summary": "Replica is late.",
         "description": "Lag is 30s."}}, "expected": ["db/ReplicaLag"]},
        {"id": "2", "alert": {"labels": {"alertname": "Other"}, "annotations": {"description": "Only this."}},
         "expected": []},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    questions = questions_from_alerts(path)
    assert [(q.id, q.question, q.expected) for q in questions] == [
        ("1", "Replica is late.", ("db/ReplicaLag",)),
        ("2", "Only this.", ()),
    ]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_eval_qa_writes_ranked_predictions_and_the_metrics_they_give(kb: Path, tmp_path: Path) -> None:
    extra = write_kb(tmp_path / "extra", {"faq/vpn.md": "# VPN\nThe tunnel to the datacentre for the backup jobs."})
    questions = tmp_path / "questions.jsonl"
    rows = [
        {"id": "a", "question": "printer ate my paper and it is stuck inside", "expected": ["faq/printer"]},
        {"id": "b", "question": "locked out, forgot my password", "expected": ["faq/password"]},
        {"id": "c", "question": "replica of the database is lagging", "expected": ["runbooks/db/ReplicaLag"]},
        {"id": "d", "question": "how many days of holiday do I get?", "expected": []},
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "predictions.jsonl"
    args = ["--kb", str(kb), "--questions", str(questions), "--extra-kb", str(extra), "--predictions-out", str(out)]
    code, printed, err = run("eval", "qa", *args)
    assert code == 0, err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["a", "b", "c", "d"]
    for line in lines:
        docs = [r["doc"] for r in line["results"]]
        assert len(docs) == len(set(docs)) == 6 and "extra/faq/vpn" in docs  # every document, extras prefixed
        scores = [r["score"] for r in line["results"]]
        assert scores == sorted(scores, reverse=True)
        assert line["abstain"] == (scores[0] < DEFAULT_QA_THRESHOLD)
    top1 = sum(line["results"][0]["doc"] == row["expected"][0] for line, row in zip(lines, rows[:3], strict=False))
    assert f"recall@1 {top1 / 3:.3f}" in printed and "6 documents; 4 questions (3 answerable, 1 without)" in printed
    assert lines[3]["abstain"] and not any(line["abstain"] for line in lines[:3])


def test_eval_qa_refuses_expected_documents_the_knowledge_base_lacks(kb: Path, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"id": "x", "question": "q", "expected": ["faq/nope"]}) + "\n", encoding="utf-8")
    code, _, err = run("eval", "qa", "--kb", str(kb), "--questions", str(questions))
    assert code == 2 and "faq/nope" in err
