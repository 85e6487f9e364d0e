"""Benchmark of the project's vector index (:class:`knowledge.index.VectorIndex`) and, optionally, its embedder.

What it measures, per size (10k, 100k, 1M vectors of 384 dimensions) and index kind:

* build time: ``VectorIndex.build(spec, ids, vectors, ivf_threshold=..., nprobe=..., nlist=...)``, wall clock;
* index memory: the size of the index file ``VectorIndex.save`` writes, and the growth of this process's RSS
  (``VmRSS``) across the build (the caller's float32 matrix is allocated before and not counted);
* single-query latency: p50 / p99 / mean over ``--queries`` calls of ``VectorIndex.search(q, 10)``, one query per
  call, after 50 warm-up calls;
* recall@10 against exact search (numpy inner product over the same float32 vectors); at 1M the exact ground
  truth is computed for a sample of ``--gt-sample-1m`` queries only (recall is averaged over those).

At 10k both kinds are built: exact (``IndexIDMap2(IndexFlatIP)``) and IVF-SQ8 (``ivf_threshold`` set below the
size). At 100k and 1M only IVF-SQ8. Each IVF index is searched with nprobe 8, 16 and 32 (set through
``VectorIndex.nprobe``, not rebuilt). ``nlist`` is the project default (``default_nlist``: about 4·√n) unless
``--nlist-cap`` caps it (useful on a small machine, where training 4,000 lists on 1M vectors takes long).

The vectors are synthetic, with a fixed seed: ``--centres`` Gaussian cluster centres (unit vectors) plus
isotropic Gaussian noise, normalised to unit length, so that nearest neighbours are clustered as in real
sentence embeddings. Queries are fresh draws from the same mixture (not rows of the index).

Optionally (``--embeddings``), embedding throughput on 2,000 distinct short alert-like texts: the raw model
(``SentenceTransformer.encode``, batch 64, normalised) versus ``Embedder.embed`` on cache misses; target: the
embedder at least 80% of the raw throughput.

Optionally (``--real``), recall and latency on real alert-text embeddings (``--real-size``, default 100,000):
the 1,155 rules of ``alert_classify.jsonl`` and the runbooks' Meaning/Impact sections (from ``--data``, default
``../shared/data``), rendered as Alertmanager alerts on every service and node of ``storm/topology.json`` with
prometheus-operator label conventions and the awesome-prometheus-alerts annotation style the storm uses, then
turned into text by the project (``knowledge.text.alert_from_mapping`` → ``alert_text``), distinct. One text in
101 is held out as a query (``--real-queries``, 1,000); the distinct storm and ``runbook_queries.jsonl`` texts not
in the index are a second, "live" query set. Embedded with ``knowledge.embeddings.load_embedder()`` and cached
under ``--cache-dir`` (``bench/.cache``: one .npy per chunk of 2,048 texts, named by the model and a hash of
the texts; a rerun, or a smaller ``--real-size``, embeds nothing again). Measured: exact, the kind the project
builds at that size (``VectorIndex.build`` defaults) and IVF-SQ8 at ``--real-nprobes``; recall@10 against exact
search for both query sets; latency as the median over ``--repeats`` passes of each pass's p50 / p99. Then a
sweep (``--sweep-sizes``, on prefixes of the same vectors) of exact vs IVF-SQ8 at the project's nprobe, with
faiss's default threads and with one thread, to place ``DEFAULT_IVF_THRESHOLD``. The model embeds these texts
(~120 tokens) at only ~20-40 texts/s on 2 cores, so the first 100k run takes about an hour.

Optionally (``--storm``), the embedding cache-hit rate of the live path over the dev storm
(``storm/storm.jsonl.gz``): every delivery in order through ``alert_from_mapping`` → ``alert_text`` →
``Embedder.embed([text])`` on one default ``Embedder``; target: at least 90% hits.

Targets printed beside the table: at 1M, p99 < 10 ms with recall@10 >= 0.95 and index memory <= 600 MB (for at
least one nprobe). Results go to ``bench/results/search.json`` (machine, config, results, targets met), merged
with what is there: a part not run keeps its earlier figures, and synthetic rows replace earlier rows of the same
(size, kind, nprobe) only.

Run (a few minutes on 2 cores; the 1M build dominates)::

    .venv/bin/python bench/search.py --embeddings
    .venv/bin/python bench/search.py --skip-synthetic --real --storm

Options: ``--sizes 10000,100000,1000000``, ``--skip-synthetic``, ``--queries N``, ``--nprobes 8,16,32``,
``--nlist-cap N``, ``--exact-max N``, ``--centres N``, ``--noise X``, ``--embeddings``, ``--real``,
``--real-size N``, ``--real-queries N``, ``--real-nprobes 4,8,16,32,64``, ``--sweep-sizes ...``, ``--repeats N``,
``--storm``, ``--data DIR``, ``--cache-dir DIR``, ``--output PATH``. Exit status 0 when it ran (targets may be
missed: see the table and the JSON), 2 when it could not run.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402

from knowledge.index import (  # noqa: E402
    DEFAULT_IVF_THRESHOLD,
    DEFAULT_NPROBE,
    IndexSpec,
    VectorIndex,
    default_nlist,
)

DIM = 384
K = 10
SEED = 20261129
WARMUP_QUERIES = 50
TARGET_P99_MS = 10.0
TARGET_RECALL = 0.95
TARGET_MEMORY_MB = 600.0
TARGET_EMBED_RATIO = 0.80
TARGET_HIT_RATE = 0.90
HOLD_OUT_EVERY = 101
EMBED_CHUNK = 2048
MB = 1024 * 1024

F32 = npt.NDArray[np.float32]


# -- data -------------------------------------------------------------------------------------------------------


def _normalise(matrix: F32) -> F32:
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def make_centres(count: int, rng: np.random.Generator) -> F32:
    return _normalise(rng.standard_normal((count, DIM), dtype=np.float32))


def draw(centres: F32, count: int, noise: float, rng: np.random.Generator, chunk: int = 100_000) -> F32:
    """``count`` unit vectors: a random centre each plus N(0, noise²/DIM) per dimension, normalised."""
    out = np.empty((count, DIM), dtype=np.float32)
    scale = np.float32(noise / np.sqrt(DIM))
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        which = rng.integers(0, len(centres), size=stop - start)
        block = rng.standard_normal((stop - start, DIM), dtype=np.float32)
        block *= scale
        block += centres[which]
        out[start:stop] = _normalise(block)
    return out


def exact_top_k(vectors: F32, queries: F32, k: int, chunk: int = 200_000) -> npt.NDArray[np.int64]:
    """Row numbers of the ``k`` best inner products for each query, by brute force in numpy."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        scores = queries @ vectors[start : start + chunk].T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        cand_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
        cand_rows = np.concatenate([best_rows, part + start], axis=1)
        order = np.argsort(-cand_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(cand_scores, order, axis=1)
        best_rows = np.take_along_axis(cand_rows, order, axis=1)
    return best_rows


# -- measuring --------------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    with Path("/proc/self/status").open(encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure_search(
    index: VectorIndex, queries: F32, truth: npt.NDArray[np.int64], ids: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """Latency of one-query calls over all ``queries``; recall@10 over the first ``len(truth)`` of them."""
    for q in queries[:WARMUP_QUERIES]:
        index.search(q, K)
    latencies: list[float] = []
    hits = 0
    for i, q in enumerate(queries):
        started = time.perf_counter()
        _, found = index.search(q, K)
        latencies.append((time.perf_counter() - started) * 1000.0)
        if i < len(truth):
            hits += len(np.intersect1d(found[0], ids[truth[i]]))
    return {
        "queries": len(queries),
        "p50_ms": round(percentile(latencies, 50), 4),
        "p99_ms": round(percentile(latencies, 99), 4),
        "mean_ms": round(statistics.fmean(latencies), 4),
        "recall_at_10": round(hits / (len(truth) * K), 4),
        "recall_queries": len(truth),
    }


def bench_size(size: int, args: argparse.Namespace, centres: F32, queries: F32) -> list[dict[str, Any]]:
    rng = np.random.default_rng(SEED + size)
    started = time.perf_counter()
    vectors = draw(centres, size, args.noise, rng)
    ids = np.arange(size, dtype=np.int64) * 7 + 3  # ids that are not row numbers
    generated_s = time.perf_counter() - started
    gt_count = len(queries) if size < 1_000_000 else min(args.gt_sample_1m, len(queries))
    started = time.perf_counter()
    truth = exact_top_k(vectors, queries[:gt_count], K)
    truth_s = time.perf_counter() - started
    print(
        f"[{size:>9,}] data {generated_s:.1f}s, exact ground truth for {gt_count} queries {truth_s:.1f}s",
        flush=True,
    )
    kinds = ["exact", "ivf-sq8"] if size <= args.exact_max else ["ivf-sq8"]
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        spec = IndexSpec("synthetic", DIM, f"bench-{size}")
        threshold = size if kind == "exact" else size - 1
        nlist = default_nlist(size)
        if kind == "ivf-sq8" and args.nlist_cap:
            nlist = min(nlist, args.nlist_cap)
        gc.collect()
        rss_before = rss_bytes()
        started = time.perf_counter()
        index = VectorIndex.build(
            spec, ids, vectors, ivf_threshold=threshold, nprobe=DEFAULT_NPROBE, nlist=nlist if kind != "exact" else None
        )
        build_s = time.perf_counter() - started
        rss_growth = rss_bytes() - rss_before
        assert index.kind == kind, (index.kind, kind)
        with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
            manifest = index.save(tmp)
            file_bytes = (Path(tmp) / manifest.index_file).stat().st_size
        print(
            f"[{size:>9,}] {kind}: built in {build_s:.1f}s, file {file_bytes / MB:.1f} MB, "
            f"RSS +{rss_growth / MB:.1f} MB",
            flush=True,
        )
        for nprobe in args.nprobes if kind == "ivf-sq8" else [0]:
            if nprobe:
                index.nprobe = nprobe
            result = measure_search(index, queries, truth, ids)
            row = {
                "size": size,
                "kind": kind,
                "nlist": nlist if kind == "ivf-sq8" else 0,
                "nprobe": nprobe,
                "build_s": round(build_s, 2),
                "index_file_mb": round(file_bytes / MB, 1),
                "rss_growth_mb": round(rss_growth / MB, 1),
                **result,
            }
            rows.append(row)
            print(
                f"[{size:>9,}] {kind} nprobe={nprobe or '-'}: p50 {row['p50_ms']:.3f} ms, p99 {row['p99_ms']:.3f} ms,"
                f" recall@10 {row['recall_at_10']:.4f}",
                flush=True,
            )
        del index
        gc.collect()
    del vectors
    gc.collect()
    return rows


# -- embeddings -------------------------------------------------------------------------------------------------

_SERVICES = ["checkout", "payments", "auth", "search", "ingest", "billing", "gateway", "orders", "inventory", "mail"]
_PROBLEMS = [
    "high error rate",
    "p99 latency above SLO",
    "pod crash looping",
    "disk almost full",
    "memory usage above 90%",
    "certificate expires soon",
    "replication lag high",
    "queue backlog growing",
    "5xx responses spiking",
    "target down",
]
_PLACES = ["eu-west-1", "us-east-1", "ap-south-1", "prod", "staging"]


def alert_texts(count: int) -> list[str]:
    """``count`` distinct short alert-like texts, deterministic."""
    texts = []
    for i in range(count):
        service = _SERVICES[i % len(_SERVICES)]
        problem = _PROBLEMS[(i // len(_SERVICES)) % len(_PROBLEMS)]
        place = _PLACES[(i // 100) % len(_PLACES)]
        texts.append(f"{service}-{i % 37}: {problem} in {place} (instance {i})")
    assert len(set(texts)) == count
    return texts


def bench_embeddings(count: int) -> dict[str, Any]:
    from knowledge.embeddings import load_embedder

    started = time.perf_counter()
    embedder = load_embedder(cache_size=max(10_000, 2 * count))
    load_s = time.perf_counter() - started
    model = embedder._model
    texts = alert_texts(count)
    model.encode(texts[:128], batch_size=64, normalize_embeddings=True, show_progress_bar=False)  # warm-up
    started = time.perf_counter()
    raw = model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    raw_s = time.perf_counter() - started
    started = time.perf_counter()
    mine = embedder.embed(texts)  # a fresh embedder: every text is a cache miss
    embed_s = time.perf_counter() - started
    assert embedder.misses == count and embedder.hits == 0
    max_diff = float(np.abs(np.asarray(raw, dtype=np.float32) - mine).max())
    raw_rate = count / raw_s
    embed_rate = count / embed_s
    return {
        "texts": count,
        "batch_size": 64,
        "model": embedder.name,
        "load_s": round(load_s, 2),
        "raw_texts_per_s": round(raw_rate, 1),
        "embedder_texts_per_s": round(embed_rate, 1),
        "ratio": round(embed_rate / raw_rate, 3),
        "max_abs_diff": max_diff,
        "torch_threads": _torch_threads(),
    }


def _torch_threads() -> int | None:
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:  # pragma: no cover
        return None


# -- real alert texts (--real) ----------------------------------------------------------------------------------

# Rule groups (the ``service`` field of alert_classify.jsonl, runbook folders) whose alerts carry node labels,
# kube-state-metrics labels or kubelet/cAdvisor labels under a prometheus-operator setup (storm/README.md §2.2).
_NODE_GROUPS = frozenset(
    {
        "host and hardware",
        "s.m.a.r.t device monitoring",
        "systemd",
        "ipmi",
        "windows server",
        "process exporter",
        "zfs",
        "netdata",
        "apc ups",
        "node",
        "general",
    }
)
_KSM_GROUPS = frozenset({"kubernetes", "kube-state-metrics"})
_KUBELET_GROUPS = frozenset({"docker containers"})
_SEVERITIES = ("critical", "warning", "info")
_RUNBOOK_SECTIONS = ("Meaning", "Impact")
_WORKLOAD_LABEL = {"Deployment": "deployment", "StatefulSet": "statefulset", "DaemonSet": "daemonset"}


def _convention(group: str) -> str:
    group = group.lower()
    if group in _NODE_GROUPS:
        return "node"
    if group in _KSM_GROUPS:
        return "ksm"
    if group in _KUBELET_GROUPS:
        return "kubelet"
    return "direct"


def _runbook_templates(folder: Path) -> list[dict[str, str]]:
    """One template per runbook section (Meaning, Impact): alertname from the heading, summary from the title,
    description from the section's first paragraph."""
    out = []
    for path in sorted(folder.glob("*/*.md")):
        text = path.read_text(encoding="utf-8")
        title = next(
            (line.split(":", 1)[1].strip().strip('"') for line in text.splitlines() if line.startswith("title:")), ""
        )
        heading = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
        for section in _RUNBOOK_SECTIONS:
            _, found, rest = text.partition(f"\n## {section}\n")
            if not found:
                continue
            paragraph = rest.split("\n## ", 1)[0].split("<details>", 1)[0].strip().split("\n\n", 1)[0]
            paragraph = " ".join(paragraph.split())
            if paragraph and paragraph != "TODO":
                out.append(
                    {
                        "source": "runbook",
                        "alertname": heading,
                        "severity": "warning",
                        "summary": title or heading,
                        "description": paragraph,
                        "convention": _convention(path.parent.name),
                    }
                )
    return out


def load_templates(data: Path) -> list[dict[str, str]]:
    """Alert rule texts: the 1,155 rules of alert_classify.jsonl plus the runbooks' Meaning/Impact sections."""
    templates = []
    with (data / "alert_classify.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            alert = row["alert"]
            templates.append(
                {
                    "source": "rule",
                    "alertname": alert["labels"]["alertname"],
                    "severity": alert["labels"].get("severity", "warning"),
                    "summary": alert["annotations"].get("summary", ""),
                    "description": alert["annotations"].get("description", ""),
                    "convention": _convention(row.get("service", "")),
                }
            )
    return templates + _runbook_templates(data / "runbooks")


def load_targets(topology: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Label sets to render rules on, from topology.json: one per (cluster, service) and one per (cluster, node)."""
    services: list[dict[str, str]] = []
    nodes: list[dict[str, str]] = []
    for cluster in topology["clusters"]:
        ksm_ip = next(
            (s["pods"][0]["ip"] for s in cluster["services"] if s["name"] == "kube-state-metrics" and s["pods"]),
            "10.0.0.1",
        )
        node_ip = {n["name"]: n["ip"] for n in cluster["nodes"]}
        for service in cluster["services"]:
            if not service["pods"]:
                continue
            pod = service["pods"][0]
            services.append(
                {
                    "cluster": cluster["name"],
                    "namespace": service["namespace"],
                    "service": service["name"],
                    "kind": service["kind"],
                    "pod": pod["name"],
                    "ip": pod["ip"],
                    "node": pod["node"],
                    "node_ip": node_ip.get(pod["node"], pod["ip"]),
                    "ksm_ip": ksm_ip,
                }
            )
        for node in cluster["nodes"]:
            exporter = next((p for p in node["pods"] if p.startswith("node-exporter-")), "node-exporter")
            nodes.append({"cluster": cluster["name"], "node": node["name"], "ip": node["ip"], "pod": exporter})
    return services, nodes


def render_alert(template: dict[str, str], target: dict[str, str], severity: str, value: float) -> dict[str, Any]:
    """An Alertmanager alert object, rendered the way awesome-prometheus-alerts publishes its rules (as in the
    storm): ``summary (instance X)`` and ``description\\n  VALUE = v\\n  LABELS = map[...]``."""
    convention = template["convention"]
    if convention == "node":
        labels = {
            "cluster": target["cluster"],
            "container": "kube-rbac-proxy",
            "endpoint": "https",
            "instance": f"{target['ip']}:9100",
            "job": "node-exporter",
            "namespace": "monitoring",
            "node": target["node"],
            "pod": target["pod"],
            "service": "node-exporter",
        }
    elif convention == "ksm":
        labels = {
            "cluster": target["cluster"],
            "container": target["service"],
            "endpoint": "https-main",
            "instance": f"{target['ksm_ip']}:8443",
            "job": "kube-state-metrics",
            "namespace": target["namespace"],
            "pod": target["pod"],
            "service": "kube-state-metrics",
        }
        workload = _WORKLOAD_LABEL.get(target["kind"])
        if workload:
            labels[workload] = target["service"]
    elif convention == "kubelet":
        labels = {
            "cluster": target["cluster"],
            "container": target["service"],
            "endpoint": "https-metrics",
            "instance": f"{target['node_ip']}:10250",
            "job": "kubelet",
            "metrics_path": "/metrics/cadvisor",
            "namespace": target["namespace"],
            "node": target["node"],
            "pod": target["pod"],
            "service": "kubelet",
        }
    else:
        labels = {
            "cluster": target["cluster"],
            "container": target["service"],
            "endpoint": "http-metrics",
            "instance": f"{target['ip']}:8080",
            "job": target["service"],
            "namespace": target["namespace"],
            "pod": target["pod"],
            "service": target["service"],
        }
    label_map = " ".join(f"{k}:{v}" for k, v in sorted(labels.items()))
    summary = f"{template['summary']} (instance {labels['instance']})"
    description = f"{template['description']}\n  VALUE = {value}\n  LABELS = map[{label_map}]"
    return {
        "status": "firing",
        "labels": {"alertname": template["alertname"], "severity": severity, **labels},
        "annotations": {"summary": summary, "description": description},
    }


def _canonical_text(alert: dict[str, Any]) -> str:
    from knowledge.text import alert_from_mapping, alert_text

    return alert_text(alert_from_mapping(alert))


def real_texts(data: Path, count: int, held_out: int) -> tuple[list[str], list[str], list[str], dict[str, Any]]:
    """``count`` distinct canonical alert texts for the index, ``held_out`` more (same generator, not in the index)
    and the live alerts (distinct storm texts and runbook_queries alerts, minus any that are in the index)."""
    templates = load_templates(data)
    topology = json.loads((data / "storm" / "topology.json").read_text(encoding="utf-8"))
    services, nodes = load_targets(topology)
    pairs = [(t, target) for t in templates for target in (nodes if t["convention"] == "node" else services)]
    rng = np.random.default_rng(SEED)
    # Every rule on every target at its own severity first, then at the other severities (the same rule is often
    # deployed at another severity) until there are enough distinct texts.
    candidates = [(pair, pair[0]["severity"]) for pair in pairs]
    others = [(pair, sev) for pair in pairs for sev in _SEVERITIES if sev != pair[0]["severity"]]
    candidates = [candidates[i] for i in rng.permutation(len(candidates))]
    candidates += [others[i] for i in rng.permutation(len(others))]
    # One distinct text in every HOLD_OUT_EVERY (in generation order) is held out as a query, up to ``held_out``
    # (then the texts after the index's, if it is full first); the order does not depend on ``count``, so a
    # smaller run's index texts are a prefix of a larger one's (and reuse its cached embeddings).
    index_texts: list[str] = []
    queries: list[str] = []
    seen: set[str] = set()
    other_severity = 0
    for number, ((template, target), severity) in enumerate(candidates):
        text = _canonical_text(render_alert(template, target, severity, round(float(rng.gamma(2.0, 40.0)), 2)))
        if text in seen:
            continue
        seen.add(text)
        other_severity += number >= len(pairs)
        if len(queries) < held_out and (len(seen) % HOLD_OUT_EVERY == 0 or len(index_texts) == count):
            queries.append(text)
        elif len(index_texts) < count:
            index_texts.append(text)
        if len(index_texts) == count and len(queries) == held_out:
            break
    if len(index_texts) < count or len(queries) < held_out:
        raise RuntimeError(f"only {len(seen)} distinct texts from {len(candidates)} (rule, target, severity)")
    live: list[str] = []
    with gzip.open(data / "storm" / "storm.jsonl.gz", "rt", encoding="utf-8") as handle:
        storm = [_canonical_text(json.loads(line)["alert"]) for line in handle]
    with (data / "runbook_queries.jsonl").open(encoding="utf-8") as handle:
        runbook = [_canonical_text(json.loads(line)["alert"]) for line in handle]
    in_index = set(index_texts)
    for text in dict.fromkeys(storm + runbook):
        if text not in in_index:
            live.append(text)
    info = {
        "templates": len(templates),
        "rule_templates": sum(1 for t in templates if t["source"] == "rule"),
        "runbook_section_templates": sum(1 for t in templates if t["source"] == "runbook"),
        "service_targets": len(services),
        "node_targets": len(nodes),
        "rule_target_pairs": len(pairs),
        "other_severity_texts": other_severity,
        "storm_distinct_texts": len(set(storm)),
        "runbook_query_texts": len(set(runbook)),
        "live_in_index_dropped": len(set(storm + runbook)) - len(live),
        "mean_text_chars": round(statistics.fmean(len(t) for t in index_texts), 1),
    }
    return index_texts, queries, live, info


def embed_cached(texts: list[str], cache_dir: Path) -> tuple[F32, dict[str, Any]]:
    """Embeddings of ``texts`` with the project's embedder (``load_embedder()``, loaded only when something is not
    cached), cached in ``cache_dir``: one .npy per chunk of EMBED_CHUNK texts, named by the model and a hash of
    the chunk's texts. Each chunk is saved as it finishes, so an interrupted run resumes where it stopped, and
    a run whose texts start with another's reuses its chunks."""
    from knowledge.embeddings import DEFAULT_MODEL, load_embedder

    cache_dir.mkdir(parents=True, exist_ok=True)
    embedder = None
    blocks: list[F32] = []
    embedded = 0
    started = time.perf_counter()
    for start in range(0, len(texts), EMBED_CHUNK):
        chunk = texts[start : start + EMBED_CHUNK]
        digest = hashlib.sha256(DEFAULT_MODEL.encode())
        for text in chunk:
            digest.update(b"\0" + text.encode())
        path = cache_dir / f"embeddings-{DEFAULT_MODEL}-{len(chunk)}-{digest.hexdigest()[:24]}.npy"
        if path.is_file():
            block = np.load(path)
            if block.shape == (len(chunk), DIM):
                blocks.append(block)
                continue
        if embedder is None:
            embedder = load_embedder()
            assert embedder.name == DEFAULT_MODEL, embedder.name
            started = time.perf_counter()
        block = embedder.embed(chunk)
        tmp = path.with_name(path.stem + ".tmp.npy")
        np.save(tmp, block)
        tmp.replace(path)
        blocks.append(block)
        embedded += len(chunk)
        rate = embedded / (time.perf_counter() - started)
        left = len(texts) - start - len(chunk)
        print(
            f"embeddings: {start + len(chunk):,}/{len(texts):,}, {rate:.0f} texts/s, ~{left / rate:.0f}s left",
            flush=True,
        )
    elapsed = time.perf_counter() - started
    info = {
        "model": DEFAULT_MODEL,
        "cache_dir": str(cache_dir),
        "texts": len(texts),
        "from_cache": len(texts) - embedded,
        "embedded_now": embedded,
        "embed_s": round(elapsed, 1) if embedded else 0.0,
        "texts_per_s": round(embedded / elapsed, 1) if embedded else None,
    }
    print(f"embeddings: {len(texts) - embedded:,} from cache, {embedded:,} embedded now", flush=True)
    return np.ascontiguousarray(np.vstack(blocks), dtype=np.float32), info


def timed_search(index: VectorIndex, queries: F32, repeats: int) -> dict[str, Any]:
    """Median over ``repeats`` passes of each pass's p50 / p99 / mean of one-query ``search`` calls."""
    for q in queries[:WARMUP_QUERIES]:
        index.search(q, K)
    passes = []
    for _ in range(repeats):
        latencies = []
        for q in queries:
            started = time.perf_counter()
            index.search(q, K)
            latencies.append((time.perf_counter() - started) * 1000.0)
        passes.append((percentile(latencies, 50), percentile(latencies, 99), statistics.fmean(latencies)))
    return {
        "p50_ms": round(statistics.median(p[0] for p in passes), 4),
        "p99_ms": round(statistics.median(p[1] for p in passes), 4),
        "mean_ms": round(statistics.median(p[2] for p in passes), 4),
        "p99_ms_per_pass": [round(p[1], 4) for p in passes],
        "latency_queries": len(queries),
        "repeats": repeats,
    }


def recall_at_k(index: VectorIndex, queries: F32, truth: npt.NDArray[np.int64], ids: npt.NDArray[np.int64]) -> float:
    _, found = index.search(queries, K)
    hits = sum(len(np.intersect1d(f, ids[t])) for f, t in zip(found, truth, strict=True))
    return round(hits / (len(queries) * K), 4)


def bench_real(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    started = time.perf_counter()
    index_texts, held, live, data_info = real_texts(args.data, args.real_size, args.real_queries)
    print(
        f"real texts: {len(index_texts):,} for the index, {len(held):,} held-out queries, {len(live)} live queries"
        f" (storm + runbook_queries), built in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    # Each list embedded (and cached) on its own, the index texts in generation order: prefix-stable, see real_texts.
    embedded = {name: embed_cached(texts, args.cache_dir) for name, texts in (("held_out", held), ("live", live))}
    vectors, embed_info = embed_cached(index_texts, args.cache_dir)
    query_sets = {name: matrix for name, (matrix, _) in embedded.items()}
    embed_info = {**embed_info, "queries": {name: info for name, (_, info) in embedded.items()}}
    ids = np.arange(len(vectors), dtype=np.int64) * 7 + 3
    truth = {name: exact_top_k(vectors, q, K) for name, q in query_sets.items()}
    top1 = {name: float(np.mean(np.sum(q * vectors[truth[name][:, 0]], axis=1))) for name, q in query_sets.items()}
    top10 = {name: float(np.mean(np.sum(q * vectors[truth[name][:, -1]], axis=1))) for name, q in query_sets.items()}
    spec = IndexSpec(embed_info["model"], DIM, "bench-real")
    rows: list[dict[str, Any]] = []

    def measure(index: VectorIndex, label: str, build_s: float, nprobe: int) -> None:
        row = {
            "index": label,
            "kind": index.kind,
            "size": len(vectors),
            "nlist": index.manifest().nlist,
            "nprobe": nprobe,
            "build_s": round(build_s, 2),
            **{f"recall_at_10_{name}": recall_at_k(index, q, truth[name], ids) for name, q in query_sets.items()},
            **timed_search(index, query_sets["held_out"], args.repeats),
        }
        rows.append(row)
        print(
            f"[real {len(vectors):,}] {label} ({row['kind']}, nprobe {nprobe or '-'}): p50 {row['p50_ms']:.3f} ms,"
            f" p99 {row['p99_ms']:.3f} ms, recall@10 held-out {row['recall_at_10_held_out']:.4f},"
            f" live {row['recall_at_10_live']:.4f}",
            flush=True,
        )

    started = time.perf_counter()
    exact = VectorIndex.build(spec, ids, vectors, ivf_threshold=len(vectors))
    measure(exact, "exact (forced)", time.perf_counter() - started, 0)
    del exact
    started = time.perf_counter()
    project = VectorIndex.build(spec, ids, vectors)  # the project's defaults: threshold, nlist, nprobe
    project_build = time.perf_counter() - started
    project_kind = project.kind
    if project.kind == "exact":
        measure(project, "project default", project_build, 0)
        started = time.perf_counter()
        project = VectorIndex.build(spec, ids, vectors, ivf_threshold=len(vectors) - 1)
        project_build = time.perf_counter() - started
    label = "project default" if project_kind != "exact" else "ivf-sq8 (forced)"
    for nprobe in args.real_nprobes:
        project.nprobe = nprobe
        measure(project, label, project_build, nprobe)
    del project
    gc.collect()

    sweep = threshold_sweep(spec, ids, vectors, query_sets["held_out"], args)
    return {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - began, 1),
        "data": {
            **data_info,
            "source": str(args.data),
            "index_texts": len(index_texts),
            "held_out_queries": len(held),
            "live_queries": len(live),
            "how": "the alert_classify rules and the runbooks' Meaning/Impact sections rendered on every topology.json"
            " service and node (both clusters) with prometheus-operator label conventions, as awesome-prometheus-"
            "alerts renders them (summary '... (instance X)', description '... VALUE = v LABELS = map[...]'), each"
            " at its own severity, then at the other severities until there are enough; fixed-seed order; text ="
            " knowledge.text.alert_text(alert_from_mapping(alert)), distinct; one text in every"
            f" {HOLD_OUT_EVERY} held out as a query; live queries = the distinct storm and runbook_queries texts not"
            " in the index",
            "mean_cosine_exact_top1": {k: round(v, 4) for k, v in top1.items()},
            "mean_cosine_exact_top10": {k: round(v, 4) for k, v in top10.items()},
        },
        "embeddings": embed_info,
        "project_kind_at_size": project_kind,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
        "project_default_ivf_threshold": DEFAULT_IVF_THRESHOLD,
        "project_default_nprobe": DEFAULT_NPROBE,
        "results": rows,
        "threshold_sweep": sweep,
    }


def threshold_sweep(
    spec: IndexSpec, ids: npt.NDArray[np.int64], vectors: F32, queries: F32, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Exact vs IVF-SQ8 (project nlist, nprobe) on the first n real vectors: where does exact get too slow?"""
    rows = []
    for size in args.sweep_sizes:
        if size > len(vectors):
            continue
        sub_ids, sub = ids[:size], np.ascontiguousarray(vectors[:size])
        truth = exact_top_k(sub, queries, K)
        row: dict[str, Any] = {"size": size, "nlist": default_nlist(size), "nprobe": DEFAULT_NPROBE}
        for kind, threshold in (("exact", size), ("ivf-sq8", size - 1)):
            started = time.perf_counter()
            index = VectorIndex.build(spec, sub_ids, sub, ivf_threshold=threshold)
            build_s = time.perf_counter() - started
            timing = timed_search(index, queries, args.repeats)
            default_threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)  # a single-query search that cannot wait on a busy second core
            try:
                single = timed_search(index, queries, args.repeats)
            finally:
                faiss.omp_set_num_threads(default_threads)
            row[kind] = {
                "build_s": round(build_s, 2),
                "p50_ms": timing["p50_ms"],
                "p99_ms": timing["p99_ms"],
                "p50_ms_1_thread": single["p50_ms"],
                "p99_ms_1_thread": single["p99_ms"],
                "recall_at_10": recall_at_k(index, queries, truth, sub_ids),
            }
            del index
        rows.append(row)
        e, i = row["exact"], row["ivf-sq8"]
        print(
            f"[sweep {size:>7,}] exact p50 {e['p50_ms']:.3f} / p99 {e['p99_ms']:.3f} ms (1 thread"
            f" {e['p50_ms_1_thread']:.3f} / {e['p99_ms_1_thread']:.3f}); ivf-sq8 nprobe {DEFAULT_NPROBE}"
            f" p50 {i['p50_ms']:.3f} / p99 {i['p99_ms']:.3f} ms (1 thread {i['p50_ms_1_thread']:.3f} /"
            f" {i['p99_ms_1_thread']:.3f}), recall@10 {i['recall_at_10']:.4f}, build {i['build_s']:.1f}s",
            flush=True,
        )
    return rows


# -- storm embedding cache (--storm) ----------------------------------------------------------------------------


def bench_storm(path: Path) -> dict[str, Any]:
    """Replay the storm through alert_from_mapping → alert_text → Embedder.embed([text]) on one default Embedder."""
    from knowledge.embeddings import load_embedder
    from knowledge.text import alert_from_mapping, alert_text

    began = time.perf_counter()
    embedder = load_embedder()
    encode = embedder._encode
    model_times: list[float] = []

    def timed_encode(texts: list[str]) -> F32:
        started = time.perf_counter()
        try:
            return encode(texts)
        finally:
            model_times.append(time.perf_counter() - started)

    embedder._encode = timed_encode  # type: ignore[method-assign]
    embedder.embed(["warm-up"])  # first call pays one-off set-up; not counted below
    embedder.hits = embedder.misses = 0
    model_times.clear()
    requests = 0
    distinct: set[str] = set()
    call_times: list[float] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            alert = json.loads(line)["alert"]
            started = time.perf_counter()
            text = alert_text(alert_from_mapping(alert))
            embedder.embed([text])
            call_times.append((time.perf_counter() - started) * 1000.0)
            requests += 1
            distinct.add(text)
    hit_rate = embedder.hits / requests if requests else 0.0
    return {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "stream": str(path),
        "requests": requests,
        "hits": embedder.hits,
        "misses": embedder.misses,
        "hit_rate": round(hit_rate, 4),
        "distinct_texts": len(distinct),
        "cache_size": embedder._cache_size,
        "model_calls": len(model_times),
        "model_s": round(sum(model_times), 2),
        "model_ms_per_miss_p50": round(statistics.median(model_times) * 1000.0, 2) if model_times else None,
        "request_ms_p50": round(percentile(call_times, 50), 4),
        "request_ms_p99": round(percentile(call_times, 99), 4),
        "total_s": round(time.perf_counter() - began, 1),
        "target_hit_rate_at_least": TARGET_HIT_RATE,
        "met": hit_rate >= TARGET_HIT_RATE,
    }


# -- reporting --------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with open("/proc/cpuinfo", encoding="utf-8") as handle:  # noqa: PTH123
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_total = 0
    with open("/proc/meminfo", encoding="ascii") as handle:  # noqa: PTH123
        for line in handle:
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
    }


def targets(
    rows: list[dict[str, Any]],
    embeddings: dict[str, Any] | None,
    real: dict[str, Any] | None = None,
    storm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    at_1m = [r for r in rows if r["size"] == 1_000_000 and r["kind"] == "ivf-sq8"]
    per_nprobe = {
        str(r["nprobe"]): {
            "p99_ok": r["p99_ms"] < TARGET_P99_MS,
            "recall_ok": r["recall_at_10"] >= TARGET_RECALL,
            "memory_ok": r["index_file_mb"] <= TARGET_MEMORY_MB,
        }
        for r in at_1m
    }
    met = [n for n, checks in per_nprobe.items() if all(checks.values())]
    result: dict[str, Any] = {
        "1m": {
            "p99_ms_below": TARGET_P99_MS,
            "recall_at_10_at_least": TARGET_RECALL,
            "index_memory_mb_at_most": TARGET_MEMORY_MB,
            "measured": bool(at_1m),
            "per_nprobe": per_nprobe,
            "met_with_nprobe": [int(n) for n in met],
            "met": bool(met),
        }
    }
    if embeddings is not None:
        result["embedding_throughput"] = {
            "ratio_at_least": TARGET_EMBED_RATIO,
            "met": embeddings["ratio"] >= TARGET_EMBED_RATIO,
        }
    if real is not None:
        ivf = [r for r in real["results"] if r["kind"] == "ivf-sq8"]
        met_real = [r["nprobe"] for r in ivf if r["recall_at_10_held_out"] >= TARGET_RECALL]
        result["real_embedding_recall"] = {
            "size": real["data"]["index_texts"],
            "recall_at_10_at_least": TARGET_RECALL,
            "per_nprobe": {str(r["nprobe"]): r["recall_at_10_held_out"] for r in ivf},
            "met_with_nprobe": met_real,
            "met_at_project_nprobe": DEFAULT_NPROBE in met_real,
        }
    else:
        result["real_embedding_recall"] = "not measured"
    if storm is not None:
        result["storm_cache_hit_rate"] = {
            "hit_rate_at_least": TARGET_HIT_RATE,
            "hit_rate": storm["hit_rate"],
            "met": storm["met"],
        }
    else:
        result["storm_cache_hit_rate"] = "not measured"
    return result


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'size':>9} {'kind':<8} {'nlist':>5} {'nprobe':>6} {'build s':>8} {'file MB':>8} {'RSS+ MB':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'recall@10':>9}  1M targets (p99<10ms, recall>=0.95, <=600MB)"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        note = ""
        if r["size"] == 1_000_000:
            marks = [
                "p99 ok" if r["p99_ms"] < TARGET_P99_MS else "p99 MISS",
                "recall ok" if r["recall_at_10"] >= TARGET_RECALL else "recall MISS",
                "mem ok" if r["index_file_mb"] <= TARGET_MEMORY_MB else "mem MISS",
            ]
            note = ", ".join(marks)
        print(
            f"{r['size']:>9,} {r['kind']:<8} {r['nlist'] or '-':>5} {r['nprobe'] or '-':>6} {r['build_s']:>8.2f} "
            f"{r['index_file_mb']:>8.1f} {r['rss_growth_mb']:>8.1f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} "
            f"{r['recall_at_10']:>9.4f}  {note}"
        )


def _section(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def print_real(real: dict[str, Any]) -> None:
    data = real["data"]
    print(
        f"\nreal embeddings: {data['index_texts']:,} alert texts in the index ({data['mean_text_chars']:.0f} chars on"
        f" average), {data['held_out_queries']} held-out + {data['live_queries']} live queries; project kind at this"
        f" size: {real['project_kind_at_size']} (threshold {real['project_default_ivf_threshold']:,}); latency:"
        f" median over {real['results'][0]['repeats']} passes of {real['results'][0]['latency_queries']} held-out"
        " queries"
    )
    head = (
        f"{'index':<18} {'kind':<8} {'nlist':>5} {'nprobe':>6} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'R@10 held-out':>13} {'R@10 live':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in real["results"]:
        print(
            f"{r['index']:<18} {r['kind']:<8} {r['nlist'] or '-':>5} {r['nprobe'] or '-':>6} {r['build_s']:>8.2f} "
            f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['recall_at_10_held_out']:>13.4f} "
            f"{r['recall_at_10_live']:>9.4f}"
        )
    print(
        f"\nexact vs IVF-SQ8 (nprobe {DEFAULT_NPROBE}) on the first n real vectors (latency: medians of passes; faiss"
        f" threads {real['faiss_omp_threads']} and 1)"
    )
    head = (
        f"{'size':>8} {'exact p50':>9} {'exact p99':>9} {'1thr p50':>8} {'1thr p99':>8} {'ivf p50':>8} "
        f"{'ivf p99':>8} {'1thr p50':>8} {'1thr p99':>8} {'ivf R@10':>8} {'build s':>7} {'nlist':>5}"
    )
    print(head)
    print("-" * len(head))
    for r in real["threshold_sweep"]:
        e, i = r["exact"], r["ivf-sq8"]
        print(
            f"{r['size']:>8,} {e['p50_ms']:>9.3f} {e['p99_ms']:>9.3f} {e['p50_ms_1_thread']:>8.3f} "
            f"{e['p99_ms_1_thread']:>8.3f} {i['p50_ms']:>8.3f} {i['p99_ms']:>8.3f} {i['p50_ms_1_thread']:>8.3f} "
            f"{i['p99_ms_1_thread']:>8.3f} {i['recall_at_10']:>8.4f} {i['build_s']:>7.2f} {r['nlist']:>5}"
        )


def print_storm(storm: dict[str, Any]) -> None:
    print(
        f"\nstorm embedding cache ({storm['requests']:,} deliveries, one Embedder, cache {storm['cache_size']:,}):"
        f" {storm['hits']:,} hits, {storm['misses']:,} misses, hit rate {storm['hit_rate']:.4f}"
        f" (target >= {storm['target_hit_rate_at_least']}: {'met' if storm['met'] else 'MISSED'});"
        f" {storm['distinct_texts']:,} distinct texts; model time {storm['model_s']:.1f}s over"
        f" {storm['model_calls']} calls (median {storm['model_ms_per_miss_p50']:.1f} ms a miss); request p50"
        f" {storm['request_ms_p50']:.3f} ms, p99 {storm['request_ms_p99']:.3f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--skip-synthetic", action="store_true", help="skip the synthetic-vector part")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--gt-sample-1m", type=int, default=200)
    parser.add_argument("--nprobes", default="8,16,32")
    parser.add_argument("--nlist-cap", type=int, default=0, help="cap on nlist (0: the project default)")
    parser.add_argument("--exact-max", type=int, default=10_000, help="also build the exact kind up to this size")
    parser.add_argument("--centres", type=int, default=4000)
    parser.add_argument("--noise", type=float, default=0.8, help="noise norm relative to the unit centre")
    parser.add_argument("--embeddings", action="store_true", help="also measure embedding throughput")
    parser.add_argument("--embedding-texts", type=int, default=2000)
    parser.add_argument("--real", action="store_true", help="recall and latency on real alert-text embeddings")
    parser.add_argument("--real-size", type=int, default=100_000)
    parser.add_argument("--real-queries", type=int, default=1000, help="held-out queries")
    parser.add_argument("--real-nprobes", default="4,8,16,32,64")
    parser.add_argument("--sweep-sizes", default="10000,25000,50000,100000")
    parser.add_argument("--repeats", type=int, default=3, help="latency passes over the queries (--real)")
    parser.add_argument("--storm", action="store_true", help="embedding cache-hit rate over the storm stream")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "search.json")
    args = parser.parse_args(argv)
    args.nprobes = [int(n) for n in args.nprobes.split(",")]
    args.real_nprobes = [int(n) for n in args.real_nprobes.split(",")]
    args.sweep_sizes = [int(n) for n in args.sweep_sizes.split(",")]
    sizes = [] if args.skip_synthetic else [int(s) for s in args.sizes.split(",")]
    command = " ".join([".venv/bin/python", "bench/search.py", *(sys.argv[1:] if argv is None else argv)])
    if (args.real or args.storm) and not args.data.is_dir():
        print(f"data folder not found: {args.data} (see --data)", file=sys.stderr)
        return 2

    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if sizes:
        rng = np.random.default_rng(SEED)
        centres = make_centres(args.centres, rng)
        queries = draw(centres, args.queries, args.noise, rng)
        for size in sizes:
            rows.extend(bench_size(size, args, centres, queries))
    embeddings = None
    if args.embeddings:
        print(f"embedding throughput on {args.embedding_texts} texts ...", flush=True)
        embeddings = bench_embeddings(args.embedding_texts)
    storm = None
    if args.storm:
        print("storm embedding cache replay ...", flush=True)
        storm = {**bench_storm(args.data / "storm" / "storm.jsonl.gz"), "command": command}
    real = None
    if args.real:
        real = {**bench_real(args), "command": command}
    if rows:
        print_table(rows)
    if embeddings is not None:
        print(
            f"\nembeddings ({embeddings['texts']} distinct texts, batch 64): raw model "
            f"{embeddings['raw_texts_per_s']:.1f} texts/s, Embedder (cache misses) "
            f"{embeddings['embedder_texts_per_s']:.1f} texts/s, ratio {embeddings['ratio']:.3f} "
            f"(target >= {TARGET_EMBED_RATIO})"
        )
    if real is not None:
        print_real(real)
    if storm is not None:
        print_storm(storm)
    wall = time.perf_counter() - began
    print(f"wall time {wall:.0f}s")

    # Merge into the existing report: a section this run did not measure keeps its earlier figures.
    previous: dict[str, Any] = {}
    if args.output.is_file():
        try:
            previous = json.loads(args.output.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            previous = {}
    report = dict(previous)
    report.setdefault("benchmark", "bench/search.py")
    if rows:
        # Rows of this run replace earlier rows of the same (size, kind, nprobe); other earlier rows are kept.
        measured = {(r["size"], r["kind"], r["nprobe"]) for r in rows}
        now = datetime.now(UTC).isoformat(timespec="seconds")
        rows = [{**r, "run_at": now} for r in rows]
        kept = [
            {**r, "run_at": r.get("run_at", previous.get("run_at"))}
            for r in previous.get("results", [])
            if (r["size"], r["kind"], r["nprobe"]) not in measured
        ]
        rows = sorted(kept + rows, key=lambda r: (r["size"], r["kind"] != "exact", r["nprobe"]))
        sizes = sorted({r["size"] for r in rows})
        report.update(
            {
                "run_at": now,
                "command": command,
                "wall_s": round(wall, 1),
                "config": {
                    "dimension": DIM,
                    "k": K,
                    "seed": SEED,
                    "sizes": sizes,
                    "queries": args.queries,
                    "warmup_queries": WARMUP_QUERIES,
                    "gt_sample_1m": args.gt_sample_1m,
                    "nprobes": args.nprobes,
                    "nlist_cap": args.nlist_cap or None,
                    "default_nlist": {str(s): default_nlist(s) for s in sizes},
                    "project_default_ivf_threshold": DEFAULT_IVF_THRESHOLD,
                    "project_default_nprobe": DEFAULT_NPROBE,
                    "data": f"{args.centres} Gaussian unit centres + N(0, {args.noise}^2/{DIM}) noise, normalised",
                    "latency": "one query per VectorIndex.search call, k=10, perf_counter",
                    "index_memory": (
                        "size of the index file VectorIndex.save writes; RSS growth across build also given"
                    ),
                },
                "results": rows,
            }
        )
    report["machine"] = machine()
    if embeddings is not None or "embeddings" not in report:
        report["embeddings"] = embeddings if embeddings is not None else "not measured"
    if real is not None or "real_embeddings" not in report:
        report["real_embeddings"] = real if real is not None else "not measured"
    if storm is not None or "storm_embedding_cache" not in report:
        report["storm_embedding_cache"] = storm if storm is not None else "not measured"
    report["targets"] = targets(
        report.get("results", []),
        _section(report.get("embeddings")),
        _section(report.get("real_embeddings")),
        _section(report.get("storm_embedding_cache")),
    )
    met = report["targets"]
    if sizes and met["1m"]["measured"]:
        print(
            f"1M targets met: {met['1m']['met']}"
            + (f" (nprobe {met['1m']['met_with_nprobe']})" if met["1m"]["met"] else "")
        )
    if real is not None:
        r = met["real_embedding_recall"]
        print(f"real-embedding recall@10 >= {TARGET_RECALL} at {r['size']:,}: nprobe {r['met_with_nprobe']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
