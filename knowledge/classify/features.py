"""What the classifier reads of an incident: lexical, embedding and prior-knowledge features of its alert texts.

An input is one incident's alert texts (:func:`~knowledge.classify.inputs.incident_text`). Features of one input,
side by side:

- TF-IDF of words (1-2 grams) and of character 3-5 grams (the alertname is already in words in the text);
- the mean of its alerts' sentence embeddings (each alert text is what the correlator embedded: cache hits);
- the cosine similarity of that embedding to each category's description (what a fresh install knows);
- the prior: category probabilities from a model fitted on the seed set, so that an alert of a technology never
  seen in the training labels still says "this reads like a database alert". A seed text's own prior is its
  out-of-fold one, so a model trained on seed examples does not learn to trust an overfitted prior.

The prior is fitted once (:func:`fit_seed_prior`, shipped inside the default artefact) and shared by the models
trained after it. A fitted :class:`FeatureSpace` holds no embedder (it is pickled); callers pass the vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict  # type: ignore[import-untyped]

from knowledge.classify.categories import CATEGORIES, CATEGORY_KEYS
from knowledge.classify.inputs import incident_parts
from knowledge.classify.seed import seed_examples, seed_groups
from knowledge.correlation.correlator import TextEmbedder

FEATURE_VERSION = 1  # bump when the features change: artefacts with another version are refused
EMBEDDING_WEIGHT = 1.0
DESCRIPTION_WEIGHT = 1.0
PRIOR_WEIGHT = 2.0
PRIOR_FOLDS = 5
WORD_PATTERN = r"(?u)\b\w+\b"  # one-letter words too (a "5xx", "N" for a number, "s3")

Vectors = npt.NDArray[np.float32]


def mean_vectors(texts: Sequence[str], embedder: TextEmbedder) -> Vectors:
    """One unit vector per input: the normalised mean of its alert texts' embeddings (embedded in one batch)."""
    parts = [incident_parts(text) for text in texts]
    flat = [part for item in parts for part in item]
    vectors = np.asarray(embedder.embed(flat), dtype=np.float32) if flat else np.zeros((0, 0), np.float32)
    out: list[Vectors] = []
    start = 0
    for item in parts:
        mean = vectors[start : start + len(item)].mean(axis=0)
        start += len(item)
        out.append(mean / max(float(np.linalg.norm(mean)), 1e-9))
    return np.stack(out).astype(np.float32) if out else np.zeros((0, vectors.shape[1] if flat else 0), np.float32)


def description_vectors(embedder: TextEmbedder) -> Vectors:
    """Each category's title and description, embedded, in :data:`CATEGORY_KEYS` order."""
    return np.asarray(embedder.embed([f"{c.title}. {c.description}" for c in CATEGORIES]), dtype=np.float32)


@dataclass(frozen=True)
class SeedPrior:
    """What the seed set teaches every classifier: a category model over [TF-IDF words, embedding], its
    out-of-fold probabilities on the seed texts themselves, and the category descriptions' vectors."""

    model: Any
    words: Any
    out_of_fold: dict[str, npt.NDArray[np.float64]]
    descriptions: Vectors

    @property
    def dimension(self) -> int:
        return int(self.descriptions.shape[1])

    def probabilities(self, texts: Sequence[str], vectors: Vectors) -> npt.NDArray[np.float64]:
        rows = sparse.hstack([self.words.transform(texts), sparse.csr_matrix(vectors)]).tocsr()
        out = np.asarray(self.model.predict_proba(rows), dtype=np.float64)
        for i, text in enumerate(texts):
            own = self.out_of_fold.get(text)
            if own is not None:
                out[i] = own
        return out


def fit_seed_prior(embedder: TextEmbedder, seed: int) -> SeedPrior:
    """Fit the prior on the seed set (embeds every seed text: tens of seconds on 2 cores)."""
    examples = seed_examples()
    texts = [text for text, _ in examples]
    labels = np.asarray([label for _, label in examples])
    if sorted(set(labels.tolist())) != sorted(CATEGORY_KEYS):
        raise ValueError("the seed set must hold every category")
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=WORD_PATTERN).fit(texts)
    rows = sparse.hstack([words.transform(texts), sparse.csr_matrix(mean_vectors(texts, embedder))]).tocsr()
    model = LogisticRegression(C=10.0, max_iter=2000)
    folds = StratifiedGroupKFold(PRIOR_FOLDS, shuffle=True, random_state=seed)
    out_of_fold = cross_val_predict(model, rows, labels, groups=seed_groups(), cv=folds, method="predict_proba")
    out_of_fold = np.asarray(out_of_fold, dtype=np.float64)
    return SeedPrior(
        model.fit(rows, labels),
        words,
        {text: out_of_fold[i] for i, text in enumerate(texts)},
        description_vectors(embedder),
    )


class FeatureSpace:
    """Fitted feature extraction: the vectorisers of the training texts and the seed prior."""

    def __init__(self, prior: SeedPrior) -> None:
        self.prior = prior
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=WORD_PATTERN)
        self.chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2, max_features=30_000
        )

    def fit(self, texts: Sequence[str]) -> FeatureSpace:
        self.words.fit(texts)
        self.chars.fit(texts)
        return self

    def transform(self, texts: Sequence[str], vectors: Vectors) -> sparse.csr_matrix:
        """The feature rows of ``texts`` (``vectors``: their :func:`mean_vectors`)."""
        if vectors.shape[1] != self.prior.dimension:
            raise ValueError(
                f"embeddings of {vectors.shape[1]} dimensions, the model was fitted on {self.prior.dimension}"
            )
        dense = np.hstack(
            [
                vectors * EMBEDDING_WEIGHT,
                (vectors @ self.prior.descriptions.T) * DESCRIPTION_WEIGHT,
                self.prior.probabilities(texts, vectors) * PRIOR_WEIGHT,
            ]
        )
        return sparse.hstack(
            [self.words.transform(texts), self.chars.transform(texts), sparse.csr_matrix(dense)]
        ).tocsr()
