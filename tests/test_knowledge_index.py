"""knowledge/index.py: the faiss vector index (exact and IVF-SQ8), removal, recall, and atomic, checked saves.

Synthetic unit vectors from a fixed seed; no model is loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from knowledge.index import (
    EXACT,
    IVF_SQ8,
    MANIFEST,
    IndexMismatch,
    IndexSpec,
    VectorIndex,
    read_manifest,
)

D = 64
SPEC = IndexSpec("all-MiniLM-L6-v2", D, "corpus-1")


def unit(n: int, d: int = D, seed: int = 0) -> npt.NDArray[np.float32]:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def clustered(n: int, d: int, *, centers: int = 200, noise: float = 0.6, seed: int = 0) -> npt.NDArray[np.float32]:
    """Points around ``centers`` random directions: closer to real embeddings than uniform vectors."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = c[rng.integers(0, centers, n)] + noise * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def ids_for(n: int) -> npt.NDArray[np.int64]:
    return np.arange(n, dtype=np.int64) * 10 + 1000  # not row numbers, like database ids


def same_results(a: VectorIndex, b: VectorIndex, queries: npt.NDArray[np.float32], k: int) -> None:
    scores_a, ids_a = a.search(queries, k)
    scores_b, ids_b = b.search(queries, k)
    for sa, ia, sb, ib in zip(scores_a, ids_a, scores_b, ids_b, strict=True):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(sa, sb)


@pytest.fixture(scope="module")
def ivf_data() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    points = clustered(20_200, 384)
    return ids_for(20_000), points[:20_000], points[20_000:]


def test_exact_search_matches_numpy_and_maps_ids() -> None:
    vectors, ids = unit(500), ids_for(500)
    index = VectorIndex.build(SPEC, ids, vectors)
    assert index.kind == EXACT and index.count == len(index) == 500
    queries = unit(20, seed=1)
    scores, found = index.search(queries, 5)
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
    for row, (s, i) in enumerate(zip(scores, found, strict=True)):
        np.testing.assert_array_equal(i, ids[expected[row]])
        np.testing.assert_allclose(s, (queries[row] @ vectors.T)[expected[row]], rtol=1e-5)
    # One vector of shape (d,) is one query; its best hit is itself.
    _, one = index.search(vectors[7], 1)
    assert one[0].tolist() == [ids[7]]


def test_fewer_hits_than_k_never_pad_with_minus_one() -> None:
    index = VectorIndex(SPEC)
    scores, found = index.search(unit(2), 5)
    assert [len(f) for f in found] == [0, 0] and [len(s) for s in scores] == [0, 0]
    index.add([1, 2, 3], unit(3))
    scores, found = index.search(unit(2, seed=1), 10)
    assert [sorted(f.tolist()) for f in found] == [[1, 2, 3], [1, 2, 3]]
    assert all(len(s) == 3 for s in scores)


def test_add_replaces_an_existing_id() -> None:
    vectors = unit(3)
    index = VectorIndex.build(SPEC, [1, 2, 3], vectors)
    index.add([2], vectors[0])
    assert index.count == 3
    scores, found = index.search(vectors[0], 3)
    assert set(found[0][:2].tolist()) == {1, 2} and scores[0][1] == pytest.approx(1.0, abs=1e-5)


def test_rejects_bad_input() -> None:
    index = VectorIndex(SPEC)
    with pytest.raises(ValueError, match="norm 1"):
        index.add([1], np.ones((1, D), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        index.add([1], unit(1, d=D + 1))
    with pytest.raises(ValueError, match="ids"):
        index.add([1, 2], unit(1))
    with pytest.raises(ValueError, match="unique"):
        index.add([1, 1], unit(2))
    with pytest.raises(ValueError, match="non-negative"):
        index.add([-1], unit(1))
    with pytest.raises(ValueError, match="k must"):
        index.search(unit(1), 0)


def test_exact_round_trip(tmp_path: Path) -> None:
    index = VectorIndex.build(SPEC, ids_for(300), unit(300), clock=lambda: 1_700_000_000.0)
    index.watermark = 41
    manifest = index.save(tmp_path / "idx")
    assert manifest.kind == EXACT and manifest.count == 300 and manifest.built_at == "2023-11-14T22:13:20+00:00"
    on_disk = json.loads((tmp_path / "idx" / MANIFEST).read_text())
    assert on_disk["model"] == SPEC.model and on_disk["dimension"] == D and on_disk["corpus_hash"] == "corpus-1"
    loaded = VectorIndex.load(tmp_path / "idx", SPEC)
    assert loaded.kind == EXACT and loaded.count == 300 and loaded.watermark == 41
    same_results(index, loaded, unit(30, seed=2), 10)


@pytest.mark.parametrize("threshold", [10_000, 500], ids=[EXACT, IVF_SQ8])
def test_removed_ids_never_come_back(threshold: int, tmp_path: Path) -> None:
    vectors, ids = clustered(2_000, D, centers=20), ids_for(2_000)
    index = VectorIndex.build(SPEC, ids, vectors, ivf_threshold=threshold, nprobe=64)
    assert index.kind == (EXACT if threshold > 2_000 else IVF_SQ8)
    gone = ids[::3]
    assert index.remove(np.append(gone, 999_999_999)) == len(gone)  # an absent id is ignored
    assert index.count == 2_000 - len(gone)
    assert index.remove(gone) == 0
    # Query with the removed vectors themselves: each was its own best hit before.
    for searched in (index, _reload(index, tmp_path)):
        _, found = searched.search(vectors[::3], 50)
        returned = np.concatenate(found)
        assert not np.isin(returned, gone).any()
        assert len(returned) > 0 and (returned >= 0).all()
        # Every kept vector still maps to its own id (its best hit is itself).
        kept = np.setdiff1d(np.arange(2_000), np.arange(0, 2_000, 3))
        _, best = searched.search(vectors[kept], 1)
        assert [b.tolist() for b in best] == [[i] for i in ids[kept]]


def _reload(index: VectorIndex, tmp_path: Path) -> VectorIndex:
    index.save(tmp_path / "reloaded")
    return VectorIndex.load(tmp_path / "reloaded", SPEC)


def test_ivf_recall_at_10_against_exact(
    ivf_data: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.float32]], tmp_path: Path
) -> None:
    ids, base, queries = ivf_data
    spec = IndexSpec(SPEC.model, 384, "corpus-1")
    exact = VectorIndex.build(spec, ids, base)
    ivf = VectorIndex.build(spec, ids, base, ivf_threshold=10_000, nprobe=16)
    assert (exact.kind, ivf.kind) == (EXACT, IVF_SQ8)
    _, truth = exact.search(queries, 10)
    _, approx = ivf.search(queries, 10)
    recall = np.mean([len(set(t.tolist()) & set(a.tolist())) / 10 for t, a in zip(truth, approx, strict=True)])
    assert recall >= 0.9, recall
    # Saved and loaded, the IVF index keeps its nprobe and gives the same answers.
    ivf.save(tmp_path / "ivf")
    loaded = VectorIndex.load(tmp_path / "ivf", spec)
    assert (loaded.kind, loaded.nprobe, loaded.count) == (IVF_SQ8, 16, 20_000)
    same_results(ivf, loaded, queries, 10)
    assert read_manifest(tmp_path / "ivf").nlist > 1


def test_threshold_switch_exact_below_ivf_above() -> None:
    vectors, ids = clustered(1_200, D, centers=20), ids_for(1_200)
    index = VectorIndex(SPEC, ivf_threshold=1_000, nprobe=64)
    index.add(ids[:1_000], vectors[:1_000])
    assert index.kind == EXACT and index.count == 1_000
    index.add(ids[1_000:], vectors[1_000:])  # past the threshold: rebuilt and trained on all 1,200
    assert index.kind == IVF_SQ8 and index.count == 1_200
    _, found = index.search(vectors[[0, 1_100]], 1)
    assert [f.tolist() for f in found] == [[ids[0]], [ids[1_100]]]
    assert VectorIndex.build(SPEC, ids[:1_000], vectors[:1_000], ivf_threshold=1_000).kind == EXACT
    assert VectorIndex.build(SPEC, ids, vectors, ivf_threshold=1_000).kind == IVF_SQ8


@pytest.mark.parametrize(
    "expected",
    [
        IndexSpec("other-model", D, "corpus-1"),
        IndexSpec(SPEC.model, 384, "corpus-1"),
        IndexSpec(SPEC.model, D, "corpus-2"),
    ],
    ids=["model", "dimension", "corpus_hash"],
)
def test_manifest_mismatch_raises(expected: IndexSpec, tmp_path: Path) -> None:
    VectorIndex.build(SPEC, ids_for(10), unit(10)).save(tmp_path)
    with pytest.raises(IndexMismatch, match="built for another input"):
        VectorIndex.load(tmp_path, expected)


def test_missing_or_corrupt_files_raise(tmp_path: Path) -> None:
    with pytest.raises(IndexMismatch, match="no saved index"):
        VectorIndex.load(tmp_path / "nothing", SPEC)
    manifest = VectorIndex.build(SPEC, ids_for(50), unit(50)).save(tmp_path)
    index_file = tmp_path / manifest.index_file
    good = index_file.read_bytes()

    index_file.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(IndexMismatch, match="digest"):
        VectorIndex.load(tmp_path, SPEC)
    flipped = bytearray(good)
    flipped[-5] ^= 0xFF  # same length, one byte changed
    index_file.write_bytes(bytes(flipped))
    with pytest.raises(IndexMismatch, match="digest"):
        VectorIndex.load(tmp_path, SPEC)
    index_file.unlink()
    with pytest.raises(IndexMismatch, match="missing"):
        VectorIndex.load(tmp_path, SPEC)

    # A file that is not a faiss index at all, with a digest that matches: faiss refuses to read it.
    index_file.write_bytes(b"not a faiss index")
    data = json.loads((tmp_path / MANIFEST).read_text())
    data["index_sha256"] = hashlib.sha256(b"not a faiss index").hexdigest()
    (tmp_path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(IndexMismatch, match="cannot read"):
        VectorIndex.load(tmp_path, SPEC)

    for broken in ("{not json", json.dumps({"model": "x"}), json.dumps({**data, "dimension": str(D)}), "[]"):
        (tmp_path / MANIFEST).write_text(broken)
        with pytest.raises(IndexMismatch, match="unreadable"):
            VectorIndex.load(tmp_path, SPEC)
    (tmp_path / MANIFEST).write_text(json.dumps({**data, "format": 99}))
    with pytest.raises(IndexMismatch, match="format"):
        VectorIndex.load(tmp_path, SPEC)
    (tmp_path / MANIFEST).write_text(json.dumps({**data, "index_file": "../elsewhere.faiss"}))
    with pytest.raises(IndexMismatch, match="malformed"):
        VectorIndex.load(tmp_path, SPEC)


def test_interrupted_save_leaves_the_previous_index(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    old = VectorIndex.build(SPEC, ids_for(100), unit(100))
    old.save(target)
    queries = unit(5, seed=3)

    # A save that fails before its commit (here: the temporary manifest cannot be written, because something
    # else occupies its name) raises, and the previous index still loads, with the previous answers.
    (target / "manifest.json.tmp").mkdir()
    new = VectorIndex.build(SPEC, ids_for(200), unit(200, seed=9))
    with pytest.raises(OSError, match="directory"):
        new.save(target)
    survivor = VectorIndex.load(target, SPEC)
    assert survivor.count == 100
    same_results(old, survivor, queries, 10)
    (target / "manifest.json.tmp").rmdir()

    # What a process killed mid-save leaves behind (a new index file and a temporary manifest, not yet renamed)
    # does not change what loads; the next complete save publishes and removes the leftover index files.
    (target / "index-deadbeefdeadbeef.faiss").write_bytes(b"partial")
    (target / "manifest.json.tmp").write_text('{"half": ')
    assert VectorIndex.load(target, SPEC).count == 100
    manifest = new.save(target)
    assert sorted(p.name for p in target.iterdir()) == sorted([MANIFEST, manifest.index_file])
    same_results(new, VectorIndex.load(target, SPEC), queries, 10)


def test_nprobe_is_configurable_and_loaded_value_can_be_overridden(tmp_path: Path) -> None:
    vectors, ids = clustered(1_000, D, centers=10), ids_for(1_000)
    index = VectorIndex.build(SPEC, ids, vectors, ivf_threshold=100, nprobe=4)
    index.nprobe = 8
    index.save(tmp_path)
    assert VectorIndex.load(tmp_path, SPEC).nprobe == 8
    assert VectorIndex.load(tmp_path, SPEC, nprobe=2).nprobe == 2
    with pytest.raises(ValueError, match="nprobe"):
        index.nprobe = 0
