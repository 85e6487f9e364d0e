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
embedder at least 80% of the raw throughput. Recall of the IVF index on 100k real embeddings is not measured.

Targets printed beside the table: at 1M, p99 < 10 ms with recall@10 >= 0.95 and index memory <= 600 MB (for at
least one nprobe). Results go to ``bench/results/search.json`` (machine, config, results, targets met).

Run (a few minutes on 2 cores; the 1M build dominates)::

    .venv/bin/python bench/search.py --embeddings

Options: ``--sizes 10000,100000,1000000``, ``--queries N``, ``--nprobes 8,16,32``, ``--nlist-cap N``,
``--centres N``, ``--noise X``, ``--embeddings``, ``--output PATH``. Exit status 0 when it ran (targets may be
missed: see the table and the JSON), 2 when it could not run.
"""

from __future__ import annotations

import argparse
import gc
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


def targets(rows: list[dict[str, Any]], embeddings: dict[str, Any] | None) -> dict[str, Any]:
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
    result["real_embedding_recall_100k"] = "not measured"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--gt-sample-1m", type=int, default=200)
    parser.add_argument("--nprobes", default="8,16,32")
    parser.add_argument("--nlist-cap", type=int, default=0, help="cap on nlist (0: the project default)")
    parser.add_argument("--exact-max", type=int, default=10_000, help="also build the exact kind up to this size")
    parser.add_argument("--centres", type=int, default=4000)
    parser.add_argument("--noise", type=float, default=0.8, help="noise norm relative to the unit centre")
    parser.add_argument("--embeddings", action="store_true", help="also measure embedding throughput")
    parser.add_argument("--embedding-texts", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "search.json")
    args = parser.parse_args(argv)
    args.nprobes = [int(n) for n in args.nprobes.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]

    began = time.perf_counter()
    rng = np.random.default_rng(SEED)
    centres = make_centres(args.centres, rng)
    queries = draw(centres, args.queries, args.noise, rng)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        rows.extend(bench_size(size, args, centres, queries))
    embeddings = None
    if args.embeddings:
        print(f"embedding throughput on {args.embedding_texts} texts ...", flush=True)
        embeddings = bench_embeddings(args.embedding_texts)
    print_table(rows)
    if embeddings is not None:
        print(
            f"\nembeddings ({embeddings['texts']} distinct texts, batch 64): raw model "
            f"{embeddings['raw_texts_per_s']:.1f} texts/s, Embedder (cache misses) "
            f"{embeddings['embedder_texts_per_s']:.1f} texts/s, ratio {embeddings['ratio']:.3f} "
            f"(target >= {TARGET_EMBED_RATIO})"
        )
    print("real-embedding recall at 100k: not measured")
    met = targets(rows, embeddings)
    if met["1m"]["measured"]:
        print(
            f"1M targets met: {met['1m']['met']}"
            + (f" (nprobe {met['1m']['met_with_nprobe']})" if met["1m"]["met"] else "")
        )
    wall = time.perf_counter() - began
    print(f"wall time {wall:.0f}s")
    report = {
        "benchmark": "bench/search.py",
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/search.py", *(sys.argv[1:] if argv is None else argv)]),
        "wall_s": round(wall, 1),
        "machine": machine(),
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
            "index_memory": "size of the index file VectorIndex.save writes; RSS growth across build also given",
        },
        "results": rows,
        "embeddings": embeddings if embeddings is not None else "not measured",
        "targets": met,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
