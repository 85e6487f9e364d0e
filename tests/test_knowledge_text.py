"""knowledge/: canonical alert text, runbook parsing, BM25 and retrieval metrics (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.evaluation import Query, auroc, choose_threshold, prediction_lines, read_queries
from knowledge.lexical import BM25, tokenize
from knowledge.retrieval import Hit, SearchResult
from knowledge.runbooks import corpus_hash, load_corpus, name_key, parse_runbook
from knowledge.text import alert_from_mapping, alert_text, normalize_volatile, split_identifier

SAMPLES = Path(__file__).resolve().parents[1] / "knowledge" / "samples" / "runbooks"


def crash_loop(pod: str, restarts: int, instance: str) -> dict[str, object]:
    return {
        "labels": {
            "alertname": "KubePodCrashLooping",
            "severity": "crit",
            "namespace": "checkout",
            "pod": pod,
            "container": "api",
            "instance": instance,
            "job": "kube-state-metrics",
        },
        "annotations": {
            "summary": "Pod is crash looping.",
            "description": f"Pod checkout/{pod} (api) is restarting {restarts} times / 10 minutes.",
            "runbook_url": "https://runbooks.example.com/KubePodCrashLooping",
        },
        "startsAt": "2024-05-01T10:00:00Z",
    }


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("KubePodCrashLooping", "Kube Pod Crash Looping"),
        ("etcdHighNumberOfLeaderChanges", "etcd High Number Of Leader Changes"),
        ("CPUThrottlingHigh", "CPU Throttling High"),
        ("KubeAPIErrorBudgetBurn", "Kube API Error Budget Burn"),
        ("HTTP5xxRateHigh", "HTTP 5xx Rate High"),
        ("node_disk_full", "node disk full"),
        ("NodeRAIDDegraded", "Node RAID Degraded"),
    ],
)
def test_split_identifier(name: str, words: str) -> None:
    assert split_identifier(name) == words


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Pod checkout/checkout-api-7d9f8b6c5d-2xk4p failed", "Pod checkout/checkout-api failed"),
        ("daemonset pod node-exporter-x2kqp is down", "daemonset pod node-exporter is down"),
        ("replica postgres-0 lags", "replica postgres lags"),
        ("target 10.2.3.4:9100 down", "target <ip> down"),
        ("peer [fe80::1ff:fe23:4567:890a]:7946 lost", "peer <ip> lost"),
        ("endpoint api.internal:8443 slow", "endpoint api.internal slow"),
        ("job 3f2c1e9a-1b2c-4d5e-8f90-123456789abc failed", "job <uuid> failed"),
        ("since 2024-03-01T10:00:00Z and 2024-03-01 10:05:00", "since <time> and <time>"),
        ("container 4f9a8c7d6e5b4a3c2b1a exited", "container <id> exited"),
        ("87.5% used, 3.5GiB left, 12 restarts in 10m", "N% used, NGiB left, N restarts in Nm"),
    ],
)
def test_normalize_volatile(raw: str, normalised: str) -> None:
    assert normalize_volatile(raw) == normalised


@pytest.mark.parametrize(
    "kept",
    ["HTTP 5xx errors", "http2 streams", "v1.2.3 released", "the api-server is slow", "kube-state-metrics"],
)
def test_normalize_keeps_words(kept: str) -> None:
    assert normalize_volatile(kept) == kept


def test_alert_text_is_stable_across_occurrences() -> None:
    first = alert_text(alert_from_mapping(crash_loop("checkout-api-7d9f8b6c5d-2xk4p", 5, "10.0.0.7:8080")))
    second = alert_text(alert_from_mapping(crash_loop("checkout-api-5c8d7f9b4-tm3wv", 11, "10.0.1.9:8080")))
    assert first == second
    assert first == (
        "Kube Pod Crash Looping\n"
        "Pod is crash looping.\n"
        "Pod checkout/checkout-api (api) is restarting N times / N minutes.\n"
        "job: kube-state-metrics; namespace: checkout; container: api; severity: critical"
    )


def test_alert_text_without_name_and_with_message() -> None:
    alert = alert_from_mapping(
        {"labels": {"service": "billing"}, "annotations": {"message": "Disk /var on db-1 is 95% full."}}
    )
    # "db-1" is a StatefulSet-style ordinal: replicas of one set read the same.
    assert alert_text(alert) == "Disk /var on db is N% full.\nservice: billing"
    assert alert.fingerprint and alert.starts_at is None


def test_runbook_parsing_front_matter_sections_and_names() -> None:
    text = """---
title: "Pod crash looping"
alerts: [KubernetesPodCrashLooping]
tags: [kubernetes]
---

# PodCrashLooping

## Meaning

A container keeps [restarting](https://example.com).

```shell
# not a heading
kubectl logs pod --previous
```

## Mitigation
Roll back.
"""
    runbook = parse_runbook("kubernetes/PodCrashLooping", text)
    assert runbook.title == "Pod crash looping"
    assert [s.heading for s in runbook.sections] == ["Meaning", "Mitigation"]
    assert "restarting" in runbook.sections[0].text and "https" not in runbook.sections[0].text
    assert "# not a heading" in runbook.sections[0].text
    assert {name_key(n) for n in runbook.names} == {"podcrashlooping", "kubernetespodcrashlooping"}


def test_runbook_without_front_matter() -> None:
    runbook = parse_runbook("Plain", "Some intro text.\n\n## Steps\nDo things.\n")
    assert runbook.title == "Plain"
    assert [s.heading for s in runbook.sections] == ["Plain", "Steps"]


def test_sample_corpus_loads() -> None:
    runbooks = load_corpus(SAMPLES)
    assert {r.id for r in runbooks} == {
        "web/HighHTTPErrorRate",
        "database/ReplicationLagHigh",
        "node/DiskFull",
        "tls/CertificateExpiringSoon",
        "kubernetes/PodCrashLooping",
    }
    assert all(r.sections and r.title for r in runbooks)
    assert len(corpus_hash(runbooks)) == 64


def test_corpus_given_by_a_relative_path_with_dots_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "books" / "db").mkdir(parents=True)
    (tmp_path / "books" / "db" / "Lag.md").write_text("# Lag\n\n## Meaning\nReplica behind.\n")
    (tmp_path / "books" / ".git").mkdir()
    (tmp_path / "books" / ".git" / "Ignored.md").write_text("# Ignored\n")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert [r.id for r in load_corpus("../books")] == ["db/Lag"]


def test_bm25_prefers_the_matching_document() -> None:
    docs = [tokenize(t) for t in ("disk is full on the node", "certificate expires soon", "replication lag grows")]
    bm25 = BM25(docs)
    scores = bm25.scores(tokenize("Node filesystem disk almost full"))
    assert scores[0] > 0 and scores[1] == scores[2] == 0
    assert bm25.coverage(tokenize("disk full"), 0) == 1.0
    assert bm25.coverage(tokenize("zebra migration"), 0) == 0.0


def test_tokenize_splits_identifiers_and_stems() -> None:
    assert tokenize("KubePodCrashLooping restarts node_filesystem_avail_bytes") == [
        "kube",
        "pod",
        "crash",
        "loop",
        "restart",
        "node",
        "filesystem",
        "avail",
        "byte",
    ]


def test_auroc_and_threshold() -> None:
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.5], [0.5]) == 0.5
    queries = [Query("a", {}, ("x",)), Query("b", {}, ()), Query("c", {}, ("y",))]
    results = [
        SearchResult([Hit("x", 0.9, None, 0.9, 1.0)], 0.9, False),
        SearchResult([Hit("x", 0.2, None, 0.2, 0.0)], 0.2, True),
        SearchResult([Hit("y", 0.7, None, 0.7, 1.0)], 0.7, False),
    ]
    threshold = choose_threshold(queries, results)
    assert 0.2 < threshold < 0.7
    lines = list(prediction_lines(queries, results, threshold))
    assert lines[1] == '{"id": "b", "results": [{"doc": "x", "score": 0.2}], "abstain": true}'


def test_read_queries_gz(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "q.jsonl.gz"
    with gzip.open(path, "wt") as out:
        out.write('{"id": "1", "alert": {"labels": {}}, "expected": []}\n\n')
    assert read_queries(path) == [Query("1", {"labels": {}}, ())]
