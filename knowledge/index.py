"""Vector index over unit-length float32 vectors: the only module that imports ``faiss``.

A :class:`VectorIndex` maps the caller's integer ids (database row ids, say) to vectors of one dimension and
finds the nearest by inner product, which is cosine similarity because every vector has norm 1. Its interface
is small, after txtai's ANN backends: :meth:`~VectorIndex.add`, :meth:`~VectorIndex.remove`,
:meth:`~VectorIndex.search`, :attr:`~VectorIndex.count`, :meth:`~VectorIndex.save` and :meth:`VectorIndex.load`.

Two kinds, chosen by size (``ivf_threshold``, default :data:`DEFAULT_IVF_THRESHOLD`, 25,000, where
``bench/search.py`` measured exact search's p99 still well under 10 ms on 2 cores):

* ``exact``: ``IndexIDMap2(IndexFlatIP)``, brute force, the same results as the numpy search in
  :mod:`knowledge.retrieval`. Used while the index holds at most ``ivf_threshold`` vectors.
* ``ivf-sq8``: ``IndexIVFScalarQuantizer(QT_8bit, inner product)``. Vectors are stored as one byte
  per dimension (1M x 384 is ~400 MB instead of 1.5 GB as float32) in ``nlist`` inverted lists, of which a query
  scans ``nprobe``. The coarse centroids and the quantiser's ranges are trained on the vectors the index holds
  when it is built: :meth:`VectorIndex.build` with more than ``ivf_threshold`` vectors, or an :meth:`add` that
  takes an exact index past the threshold (it is rebuilt from its own exact vectors). Later additions are not
  retrained on; rebuild from the source rows (:meth:`VectorIndex.build`) when the corpus has changed a lot.
  IVF lists store the caller's 64-bit ids themselves (``add_with_ids``) and remove entries natively
  (``remove_ids``), which is why IVF was chosen over HNSW: faiss's HNSW cannot remove vectors and would have to
  be rebuilt or masked after every deletion. The IVF index is deliberately *not* wrapped in ``IndexIDMap2``:
  ``IndexIDMap::remove_ids`` compacts its id table assuming the sub-index renumbers its entries as
  ``IndexFlat`` does, which IVF does not, so after a removal the wrapper maps hits to the wrong ids.

Ids are unique: :meth:`add` replaces the vector of an id already present. Removed ids are never returned, and
faiss's ``-1`` padding (fewer than ``k`` hits) never leaves this module: :meth:`search` returns one array per
query, possibly shorter than ``k``.

Saving is atomic. The directory holds ``manifest.json`` and the index file the manifest names
(``index-<token>.faiss``, with its sha256). :meth:`save` writes a new index file and a temporary manifest,
fsyncs both, and publishes by renaming the temporary manifest over ``manifest.json`` (one atomic
``os.replace``); only then are index files no longer named deleted. A save interrupted at any point leaves the
previous manifest and the file it names, so the previous index still loads. (A directory cannot be renamed over
a non-empty directory on POSIX, so swapping whole directories would need two renames and a moment with no
index; the manifest rename has no such moment.) One process saves a given directory at a time.

:meth:`VectorIndex.load` checks the manifest against what the caller expects (model name, dimension, corpus
hash) and the index file against its recorded digest, and raises :class:`IndexMismatch` on any difference, or
when a file is missing or corrupt, so the caller rebuilds rather than searching a stale index.

The module stays whole (a little over 400 lines) because it is the one faiss boundary: splitting persistence
from search would spread faiss across modules.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

# Exact search up to here. bench/search.py --real (100k real alert embeddings, 2 cores): exact p99 is 6.6 ms
# at 25k and 11.3 ms at 50k, while IVF-SQ8 keeps recall@10 at 0.99 from 10k up, under 0.25 ms.
DEFAULT_IVF_THRESHOLD = 25_000
DEFAULT_NPROBE = 16
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_MANIFEST_TMP = "manifest.json.tmp"
EXACT = "exact"
IVF_SQ8 = "ivf-sq8"
_NORM_TOLERANCE = 1e-3
_TRAIN_POINTS_PER_LIST = 64  # training sample per inverted list (faiss needs >= 39; it caps at 256)

_INT_FIELDS = frozenset({"format", "dimension", "count", "nlist", "nprobe", "watermark"})

Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]


class IndexMismatch(RuntimeError):
    """A saved index cannot be used as it is: missing or corrupt files, or built for another model, dimension
    or corpus. The caller rebuilds the index from its source rows."""


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """What an index is for: the embedding model, its dimension, and a hash of the corpus it was built from
    (computed by the caller, e.g. over the ids and texts embedded)."""

    model: str
    dimension: int
    corpus_hash: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """The contents of ``manifest.json``."""

    format: int
    model: str
    dimension: int
    corpus_hash: str
    kind: str
    count: int
    built_at: str  # ISO 8601, UTC: when the index was built (or last rebuilt and trained)
    nlist: int  # 0 for an exact index
    nprobe: int
    index_file: str
    index_sha256: str
    watermark: int = 0  # the caller's mark of the last source change the index holds (e.g. a sequence number)

    @property
    def spec(self) -> IndexSpec:
        return IndexSpec(self.model, self.dimension, self.corpus_hash)


def default_nlist(count: int) -> int:
    """Inverted lists for ``count`` vectors: about 4·√n, and at most n/39 so that training has 39 points a list."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


class VectorIndex:
    """Ids → unit vectors, searched by inner product. Safe to share between threads (one lock)."""

    def __init__(
        self,
        spec: IndexSpec,
        *,
        ivf_threshold: int = DEFAULT_IVF_THRESHOLD,
        nprobe: int = DEFAULT_NPROBE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if spec.dimension <= 0:
            raise ValueError(f"dimension must be positive, not {spec.dimension}")
        if ivf_threshold < 1 or nprobe < 1:
            raise ValueError("ivf_threshold and nprobe must be at least 1")
        self.spec = spec
        self.ivf_threshold = ivf_threshold
        self._nprobe = nprobe
        self._clock = clock
        self._lock = threading.RLock()
        flat = faiss.IndexFlatIP(spec.dimension)
        self._keep: tuple[faiss.Index, ...] = (flat,)  # Python objects that must outlive the wrappers over them
        self._index: faiss.IndexIDMap2 | faiss.IndexIVFScalarQuantizer = faiss.IndexIDMap2(flat)
        self._kind = EXACT
        self._nlist = 0
        self._built_at = self._now()
        self.watermark = 0  # saved in the manifest; see Manifest.watermark

    # -- construction ------------------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        spec: IndexSpec,
        ids: npt.ArrayLike,
        vectors: npt.ArrayLike,
        *,
        ivf_threshold: int = DEFAULT_IVF_THRESHOLD,
        nprobe: int = DEFAULT_NPROBE,
        nlist: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> VectorIndex:
        """A new index over these rows: exact up to ``ivf_threshold`` vectors, IVF-SQ8 trained on them above."""
        index = cls(spec, ivf_threshold=ivf_threshold, nprobe=nprobe, clock=clock)
        id_array, matrix = index._check(ids, vectors)
        if len(id_array) > ivf_threshold:
            index._build_ivf(id_array, matrix, nlist)
        else:
            index._index.add_with_ids(matrix, id_array)
        return index

    def _build_ivf(self, ids: Ids, vectors: Vectors, nlist: int | None) -> None:
        lists = nlist or default_nlist(len(ids))
        quantizer = faiss.IndexFlatIP(self.spec.dimension)
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, self.spec.dimension, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        sample = min(len(vectors), lists * _TRAIN_POINTS_PER_LIST)
        training = vectors
        if sample < len(vectors):  # a fixed-seed sample: the same rows train the same index
            rows = np.sort(np.random.default_rng(0).choice(len(vectors), size=sample, replace=False))
            training = np.ascontiguousarray(vectors[rows])
        ivf.train(training)
        ivf.nprobe = self._nprobe
        ivf.add_with_ids(vectors, ids)
        self._keep = (quantizer,)
        self._index = ivf
        self._kind = IVF_SQ8
        self._nlist = lists
        self._built_at = self._now()

    # -- the interface -----------------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self.count

    @property
    def kind(self) -> str:
        """``"exact"`` or ``"ivf-sq8"``."""
        return self._kind

    @property
    def nprobe(self) -> int:
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if value < 1:
            raise ValueError("nprobe must be at least 1")
        with self._lock:
            self._nprobe = value
            if self._kind == IVF_SQ8:
                faiss.extract_index_ivf(self._index).nprobe = value  # the IVF index itself, here

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Add or replace: an id already present gets the new vector. An exact index that grows past
        ``ivf_threshold`` is rebuilt as IVF-SQ8, trained on all its vectors."""
        id_array, matrix = self._check(ids, vectors)
        if not len(id_array):
            return
        with self._lock:
            self._index.remove_ids(faiss.IDSelectorBatch(id_array))
            if isinstance(self._index, faiss.IndexIDMap2) and self.count + len(id_array) > self.ivf_threshold:
                old_ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
                old_vectors = np.asarray(self._index.index.reconstruct_n(0, self.count), dtype=np.float32)
                all_ids = np.concatenate([old_ids, id_array])
                all_vectors = np.ascontiguousarray(np.vstack([old_vectors, matrix]), dtype=np.float32)
                self._build_ivf(all_ids, all_vectors, None)
            else:
                self._index.add_with_ids(matrix, id_array)

    def remove(self, ids: npt.ArrayLike) -> int:
        """Remove these ids (absent ones are ignored); returns how many were removed."""
        id_array = np.ascontiguousarray(np.atleast_1d(np.asarray(ids)), dtype=np.int64)
        if not len(id_array):
            return 0
        with self._lock:
            return int(self._index.remove_ids(faiss.IDSelectorBatch(id_array)))

    def search(self, queries: npt.ArrayLike, k: int) -> tuple[list[Vectors], list[Ids]]:
        """The ``k`` best ids for each query row, best first: ``(scores, ids)``, one array per query each.

        A query's arrays are shorter than ``k`` when fewer vectors are found (a small index, or IVF lists that
        hold fewer); they never contain faiss's ``-1`` padding. A single vector of shape ``(d,)`` is one query.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        matrix = self._matrix(queries, check_norms=False)
        with self._lock:
            if self.count == 0 or not len(matrix):
                empty_scores = [np.zeros(0, dtype=np.float32) for _ in range(len(matrix))]
                return empty_scores, [np.zeros(0, dtype=np.int64) for _ in range(len(matrix))]
            scores, found = self._index.search(matrix, min(k, self.count))
        keep = found >= 0
        return (
            [np.asarray(row[mask], dtype=np.float32) for row, mask in zip(scores, keep, strict=True)],
            [np.asarray(row[mask], dtype=np.int64) for row, mask in zip(found, keep, strict=True)],
        )

    def vectors(self, ids: npt.ArrayLike) -> Vectors:
        """The stored vectors of these ids, in order (exact index only: IVF-SQ8 keeps 8-bit codes, not vectors)."""
        id_array = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        with self._lock:
            if not isinstance(self._index, faiss.IndexIDMap2):
                raise ValueError(f"a {self._kind} index does not keep its vectors")
            rows = [self._index.reconstruct(int(i)) for i in id_array]
        return np.asarray(rows, dtype=np.float32).reshape(len(id_array), self.spec.dimension)

    # -- persistence -------------------------------------------------------------------------------------------

    def manifest(self, index_file: str = "", index_sha256: str = "") -> Manifest:
        return Manifest(
            format=FORMAT_VERSION,
            model=self.spec.model,
            dimension=self.spec.dimension,
            corpus_hash=self.spec.corpus_hash,
            kind=self._kind,
            count=self.count,
            built_at=self._built_at,
            nlist=self._nlist,
            nprobe=self._nprobe,
            index_file=index_file,
            index_sha256=index_sha256,
            watermark=self.watermark,
        )

    def save(self, directory: str | os.PathLike[str]) -> Manifest:
        """Write the index into ``directory`` (created if needed) atomically; see the module docstring."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        index_file = f"index-{secrets.token_hex(8)}.faiss"
        with self._lock:
            faiss.write_index(self._index, str(target / index_file))
            manifest = self.manifest(index_file, "")
        _fsync_file(target / index_file)
        manifest = Manifest(**{**asdict(manifest), "index_sha256": _sha256(target / index_file)})
        tmp = target / _MANIFEST_TMP
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(asdict(manifest), handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(target / MANIFEST)  # the commit point
        _fsync_dir(target)
        for stale in target.glob("index-*.faiss"):
            if stale.name != index_file:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
        return manifest

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        expected: IndexSpec,
        *,
        ivf_threshold: int = DEFAULT_IVF_THRESHOLD,
        nprobe: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> VectorIndex:
        """The index saved in ``directory``, if it was built for ``expected``; :class:`IndexMismatch` if not, or
        if a file is missing or corrupt. ``nprobe`` defaults to the saved one."""
        manifest = read_manifest(directory)
        if manifest.spec != expected:
            differ = [
                f"{name} {getattr(manifest, name)!r} != expected {getattr(expected, name)!r}"
                for name in ("model", "dimension", "corpus_hash")
                if getattr(manifest, name) != getattr(expected, name)
            ]
            raise IndexMismatch(f"index in {directory} was built for another input: {'; '.join(differ)}")
        path = Path(directory) / manifest.index_file
        if not path.is_file():
            raise IndexMismatch(f"index file missing: {path}")
        if _sha256(path) != manifest.index_sha256:
            raise IndexMismatch(f"index file {path} does not match the digest in its manifest")
        try:
            raw = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexMismatch(f"cannot read index file {path}: {exc}") from exc
        if manifest.kind == IVF_SQ8:
            kind_ok = isinstance(raw, faiss.IndexIVFScalarQuantizer)
        else:
            kind_ok = isinstance(raw, faiss.IndexIDMap2) and isinstance(
                faiss.downcast_index(raw.index), faiss.IndexFlatIP
            )
        if not kind_ok or raw.d != manifest.dimension or raw.ntotal != manifest.count:
            raise IndexMismatch(f"index file {path} is not the {manifest.kind} index its manifest describes")
        assert isinstance(raw, faiss.IndexIDMap2 | faiss.IndexIVFScalarQuantizer)
        index = cls(expected, ivf_threshold=ivf_threshold, nprobe=nprobe or manifest.nprobe, clock=clock)
        index._index = raw
        index._kind = manifest.kind
        index._nlist = manifest.nlist
        index._built_at = manifest.built_at
        index.watermark = manifest.watermark
        index.nprobe = index._nprobe
        return index

    # -- helpers -----------------------------------------------------------------------------------------------

    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="seconds")

    def _matrix(self, vectors: npt.ArrayLike, *, check_norms: bool) -> Vectors:
        matrix = np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
        if matrix.ndim != 2 or (matrix.size and matrix.shape[1] != self.spec.dimension):
            raise ValueError(f"vectors must have shape (n, {self.spec.dimension}), not {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise ValueError("vectors must be finite")
        if check_norms and matrix.size:
            norms = np.linalg.norm(matrix, axis=1)
            if np.abs(norms - 1).max() > _NORM_TOLERANCE:
                raise ValueError("vectors must have norm 1 (inner product is cosine only on unit vectors)")
        return matrix.reshape(-1, self.spec.dimension)

    def _check(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> tuple[Ids, Vectors]:
        id_array = np.ascontiguousarray(np.atleast_1d(np.asarray(ids)), dtype=np.int64)
        matrix = self._matrix(vectors, check_norms=True)
        if id_array.ndim != 1 or len(id_array) != len(matrix):
            raise ValueError(f"{len(id_array)} ids for {len(matrix)} vectors")
        if len(id_array) and id_array.min() < 0:
            raise ValueError("ids must be non-negative")
        if len(np.unique(id_array)) != len(id_array):
            raise ValueError("ids must be unique within one call")
        return id_array, matrix


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """The manifest saved in ``directory``; :class:`IndexMismatch` if it is missing, unreadable or malformed."""
    path = Path(directory) / MANIFEST
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest(**data)
        for name, value in asdict(manifest).items():
            wanted = int if name in _INT_FIELDS else str
            if type(value) is not wanted:
                raise TypeError(f"{name} is {value!r}, not {wanted.__name__}")
    except FileNotFoundError as exc:
        raise IndexMismatch(f"no saved index: {path} missing") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise IndexMismatch(f"unreadable index manifest {path}: {exc}") from exc
    if manifest.format != FORMAT_VERSION:
        raise IndexMismatch(f"index manifest {path} has format {manifest.format}, expected {FORMAT_VERSION}")
    if manifest.kind not in (EXACT, IVF_SQ8) or Path(manifest.index_file).name != manifest.index_file:
        raise IndexMismatch(f"index manifest {path} is malformed")
    return manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
