"""knowledge/: the real all-MiniLM-L6-v2 embedder (loaded once per session) and hybrid runbook retrieval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from knowledge.embeddings import (
    BUNDLED_WEIGHTS_SHA256,
    Embedder,
    EmbeddingModelError,
    ModelSource,
    bundled_model_dir,
    native_bfloat16,
    resolve_model,
    use_bfloat16,
    verify_weights,
)
from knowledge.evaluation import Query, measure, prediction_lines, run_queries
from knowledge.lexical import BM25, tokenize
from knowledge.retrieval import DEFAULT_THRESHOLD, Ranker, RunbookIndex
from knowledge.runbooks import load_corpus
from knowledge.text import alert_from_mapping

SAMPLES = Path(__file__).resolve().parents[1] / "knowledge" / "samples" / "runbooks"


@pytest.fixture(scope="session")
def embedder(shared_embedder: Embedder) -> Embedder:
    """The session's real model (loaded once, in conftest)."""
    return shared_embedder


@pytest.fixture(scope="session")
def index(embedder: Embedder) -> RunbookIndex:
    return RunbookIndex(load_corpus(SAMPLES), embedder)


def alert(name: str | None, summary: str, description: str, **labels: str) -> dict[str, object]:
    all_labels = dict(labels)
    if name:
        all_labels["alertname"] = name
    return {"labels": all_labels, "annotations": {"summary": summary, "description": description}}


QUERIES = [
    Query(
        "5xx",
        alert(
            "FrontendErrorBudgetBurn",
            "Checkout frontend is failing requests.",
            "12.5% of requests to checkout-web-7d9f8b6c5-x2kqp return HTTP 503 over the last 5m.",
            service="checkout-web",
            severity="critical",
        ),
        ("web/HighHTTPErrorRate",),
    ),
    Query(
        "lag",
        alert(
            "PGStandbyBehind",
            "Postgres standby is behind.",
            "Standby orders-db-1 is 340 seconds behind the primary in WAL replay.",
            service="orders-db",
        ),
        ("database/ReplicationLagHigh",),
    ),
    Query(
        "disk",
        alert(
            "VolumeSpaceLow",
            "Filesystem almost out of space.",
            "Filesystem /var/lib/docker on 10.0.3.4:9100 has only 4% space left.",
            job="node-exporter",
        ),
        ("node/DiskFull",),
    ),
    Query(
        "cert",
        alert(
            "IngressCertRenewalDue",
            "TLS certificate for shop.example.com expires in 3 days.",
            "The certificate served on shop.example.com:443 is valid until 2024-06-01T00:00:00Z.",
        ),
        ("tls/CertificateExpiringSoon",),
    ),
    Query(
        "crash",
        alert(
            "ContainerRestartingOften",
            "Container keeps restarting.",
            "Container worker in pod jobs/worker-5c8d7f9b4-tm2wv is in CrashLoopBackOff (exit code 1).",
            namespace="jobs",
        ),
        ("kubernetes/PodCrashLooping",),
    ),
    Query(
        "unrelated",
        alert(
            "LDAPSyncStale",
            "Directory group synchronisation is stale.",
            "The LDAP group mapping for the HR team has not been refreshed for 3 days.",
        ),
        (),
    ),
    Query(
        "unrelated2",
        alert(
            "PrinterTonerLow",
            "Office printer toner is low.",
            "The third-floor printer reports 5% toner remaining.",
        ),
        (),
    ),
]


def test_bundled_model_is_verified(embedder: Embedder) -> None:
    source = resolve_model(None)
    assert source.path == bundled_model_dir() and source.weights_sha256 == BUNDLED_WEIGHTS_SHA256
    assert resolve_model("all-MiniLM-L6-v2") == source
    verify_weights(source)
    assert embedder.dimension == 384


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not the model")
    with pytest.raises(EmbeddingModelError, match="sha256"):
        verify_weights(ModelSource("x", tmp_path, BUNDLED_WEIGHTS_SHA256))
    with pytest.raises(EmbeddingModelError, match="neither"):
        resolve_model(str(tmp_path / "missing"))


def test_vectors_are_normalised_batched_and_cached(embedder: Embedder) -> None:
    texts = ["Node disk almost full", "Filesystem has little free space left", "Office printer toner is low"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    hits = embedder.hits
    again = embedder.embed([texts[1], texts[1]])
    assert embedder.hits == hits + 2
    assert np.array_equal(again[0], vectors[1]) and np.array_equal(again[1], vectors[1])
    assert np.allclose(embedder.embed_one("Node disk almost full"), vectors[0])


def test_bfloat16_encoding_agrees_with_float32(embedder: Embedder) -> None:
    texts = [
        "Node disk almost full",
        "Kube Pod Crash Looping\nPod payments/payments-api is crash looping.\nnamespace: payments; severity: warning",
        "Office printer toner is low",
    ]
    model = embedder._model  # the session's loaded model, encoded twice: in float32 and under bfloat16 autocast
    full = Embedder(model, embedder.name, bfloat16=False).embed(texts)
    half = Embedder(model, embedder.name, bfloat16=True).embed(texts)
    assert half.dtype == np.float32 and np.allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(full, half)  # bfloat16 did compute
    assert float((full * half).sum(axis=1).min()) > 0.9995


def test_bfloat16_only_where_the_cpu_has_it(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert native_bfloat16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert not native_bfloat16(cpuinfo)
    assert not native_bfloat16(tmp_path / "missing")
    assert use_bfloat16("bfloat16") and not use_bfloat16("float32")
    assert use_bfloat16("auto") == native_bfloat16()


@pytest.mark.parametrize("ranker", list(Ranker))
def test_rankers_find_the_sample_runbooks_without_names(index: RunbookIndex, ranker: Ranker) -> None:
    results = run_queries(index, QUERIES, ranker=ranker, drop_alertname=True)
    for query, result in zip(QUERIES, results, strict=True):
        if query.expected and ranker is not Ranker.LEXICAL:
            assert result.hits[0].doc in query.expected, (query.id, result.hits[:2])
    metrics = measure(QUERIES, results)
    if ranker is Ranker.HYBRID:
        assert metrics.top1 == 1.0 and metrics.auroc == 1.0


def test_hybrid_abstains_on_unrelated_alerts(index: RunbookIndex) -> None:
    results = run_queries(index, QUERIES)
    for query, result in zip(QUERIES, results, strict=True):
        if not query.expected:
            assert result.abstain, (query.id, result.confidence)
    worst_answerable = min(r.confidence for q, r in zip(QUERIES, results, strict=True) if q.expected)
    best_unrelated = max(r.confidence for q, r in zip(QUERIES, results, strict=True) if not q.expected)
    assert worst_answerable > best_unrelated
    for result in results:
        assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
        assert len({h.doc for h in result.hits}) == len(result.hits)


FREE_TEXT = [
    ("disk almost full on node", "node/DiskFull"),
    ("5xx error rate high on the web frontend", "web/HighHTTPErrorRate"),
    ("postgres replica lagging behind primary", "database/ReplicationLagHigh"),
    ("the office coffee machine is broken", None),
    ("quarterly sales report is late", None),
]


@pytest.mark.parametrize(("text", "expected"), FREE_TEXT)
def test_free_text_answers_or_abstains_at_the_default_threshold(
    index: RunbookIndex, text: str, expected: str | None
) -> None:
    result = index.search(text)
    if expected is None:
        assert result.abstain and result.confidence < DEFAULT_THRESHOLD - 0.2, (text, result.hits[0])
    else:
        assert not result.abstain and result.hits[0].doc == expected, (text, result.hits[:2])
        assert result.confidence > DEFAULT_THRESHOLD + 0.05


def test_confidence_does_not_depend_on_the_other_runbooks(index: RunbookIndex, embedder: Embedder) -> None:
    """An absolute fit: the best runbook of a weak query is not promoted to full evidence on a tiny corpus."""
    runbooks = load_corpus(SAMPLES)
    for keep in (["node/DiskFull"], ["node/DiskFull", "web/HighHTTPErrorRate"]):
        small = RunbookIndex([r for r in runbooks if r.id in keep], embedder)
        fits = small.search("disk almost full on node")
        assert not fits.abstain and fits.hits[0].doc == "node/DiskFull"
        assert abs(fits.confidence - index.search("disk almost full on node").confidence) < 0.1
        for text in ("the office coffee machine is broken", "quarterly sales report is late"):
            unrelated = small.search(text)
            assert unrelated.abstain and unrelated.confidence < DEFAULT_THRESHOLD - 0.2, (keep, text)


def test_confidence_is_bounded_and_ordered(index: RunbookIndex) -> None:
    for ranker in Ranker:
        result = index.search("Node disk almost full: the filesystem has little free space left", ranker=ranker)
        scores = [h.score for h in result.hits]
        assert all(0.0 <= score < 1.0 for score in scores) and scores == sorted(scores, reverse=True)
        assert result.confidence == scores[0] and result.hits[0].doc == "node/DiskFull"


def test_lexical_keeps_words_that_tell_alert_names_apart() -> None:
    assert "any" in tokenize("PrometheusErrorSendingAlertsToAnyAlertmanager")
    assert "not" in tokenize("KubePodNotReady")
    assert tokenize("replica lagging, certificate expires") == tokenize("replica lag, certificate expiring")
    titles = BM25([tokenize("Node disk almost full"), tokenize("TLS certificate expiring soon")])
    assert titles.recall(tokenize("the node disk is almost full"), 0) == 1.0
    assert titles.recall(tokenize("the node disk is almost full"), 1) == 0.0
    assert 0.0 < titles.recall(tokenize("disk usage high"), 0) < 1.0


def test_hits_point_at_a_section(index: RunbookIndex) -> None:
    result = index.search("kubectl logs --previous shows the last run's output of a restarting container")
    assert result.hits[0].doc == "kubernetes/PodCrashLooping"
    assert result.hits[0].section == "Diagnosis"


def test_exact_name_rule_and_runbook_url(index: RunbookIndex) -> None:
    misleading = alert("HostOutOfDiskSpace", "Certificate for the web server expires soon.", "TLS expiry.")
    result = index.search_alert(alert_from_mapping(misleading))
    assert result.hits[0].doc == "node/DiskFull" and result.hits[0].by_name and result.confidence == 1.0
    off = index.search_alert(alert_from_mapping(misleading), name_rule=False)
    assert off.hits[0].doc == "tls/CertificateExpiringSoon"
    by_url = alert(None, "Something odd", "See the runbook.")
    by_url["annotations"] = {
        "summary": "x",
        "runbook_url": "https://wiki.example.com/runbooks/database/ReplicationLagHigh",
    }
    assert index.search_alert(alert_from_mapping(by_url)).hits[0].doc == "database/ReplicationLagHigh"


def test_predictions_follow_the_format(index: RunbookIndex) -> None:
    results = run_queries(index, QUERIES)
    lines = [json.loads(line) for line in prediction_lines(QUERIES, results, 0.55)]
    assert [line["id"] for line in lines] == [q.id for q in QUERIES]
    for line in lines:
        assert set(line) == {"id", "results", "abstain"}
        assert 1 <= len(line["results"]) <= 10
        assert all(isinstance(r["doc"], str) and isinstance(r["score"], float) for r in line["results"])
