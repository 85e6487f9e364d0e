"""What the classifier reads of an incident: lexical, embedding and prior-knowledge features of its alert texts.

An input is one incident's alert texts (:func:`~knowledge.classify.inputs.incident_text`). Two sets of rows are
computed for it, one per expert of :class:`~knowledge.classify.experts.TwoExperts`:

- the memorising expert's: TF-IDF of words (1-2 grams) and of character 3-5 grams (the alertname is already in
  words in the text), the mean of its alerts' sentence embeddings (cache hits: what the correlator embedded), the
  cosine similarity of that embedding to each category's description, and the prior's category probabilities;
- the generalising expert's: the prior's probabilities of the seed set's families and categories, the families
  and categories its technology words' names are nearest to (below), and the embedding at a low weight: no word of
  the input, so nothing that fingerprints one technology of the training labels.

The prior is a model fitted on the seed set's families (a family: technologies that fail alike, e.g. relational
databases; a category's probability is the sum of its families'), so that an alert of a technology never seen in
the training labels still says "this reads like a relational database alert". A seed text's own prior is its
out-of-fold one, so a model trained on seed examples does not learn to trust an overfitted prior.

**By name**: the sentence embedder knows what a technology is from its name alone ("flink" reads like "spark",
"mysqld" like "mysql"). Each seed family's technology words are embedded; an input's similarity to a family is the
highest cosine similarity of one of its technology words to one of the family's, and a softmax of those at
:data:`NAME_TEMPERATURE` gives family probabilities by name (uniform for an input without technology words). So a
technology named in no training label still lands near the seed technologies it resembles.

Each input also gets its **novelty**: the share of its alerts whose technology words (the first word of the name
and of the summary line) no training input had. It says how much to trust memorisation for it.

The prior is fitted once (:func:`fit_seed_prior`, shipped inside the default artefact) and shared by the models
trained after it. A fitted :class:`FeatureSpace` holds no embedder (it is pickled); callers pass the vectors.
"""

from __future__ import annotations

import re
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
from knowledge.text import INFORMATIVE_LABELS

FEATURE_VERSION = 3  # bump when the features change: artefacts with another version are refused
EMBEDDING_WEIGHT = 1.0
DESCRIPTION_WEIGHT = 1.0
PRIOR_WEIGHT = 2.0
GENERAL_EMBEDDING_WEIGHT = 0.3  # the generalising expert's embedding: context, not a technology's fingerprint
NAME_TEMPERATURE = 0.2  # softmax temperature of name similarities (a cosine similarity 0.2 higher: e times likelier)
PRIOR_FOLDS = 5
WORD_PATTERN = r"(?u)\b\w+\b"  # one-letter words too (a "5xx", "N" for a number, "s3")
_LABEL_LINE = tuple(f"{key}: " for key in INFORMATIVE_LABELS)
_FIRST_WORD = re.compile(r"\b[^\W\d_]{2}\w*")  # a word of 2 letters or more: not "N" for a number

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


def technology_vectors(texts: Sequence[str], embedder: TextEmbedder) -> dict[str, Vectors]:
    """Every :func:`technology_words` of ``texts``, embedded in one batch, as unit vectors."""
    words = sorted({word for text in texts for word in technology_words(text)})
    if not words:
        return {}
    vectors = np.asarray(embedder.embed(words), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    return dict(zip(words, vectors, strict=True))


def name_similarities(
    texts: Sequence[str], words: dict[str, Vectors], technologies: Vectors, members: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """Per input and family, the highest cosine similarity of one of the input's technology words (``words``:
    their unit vectors) to one of the family's (``technologies``: unit vectors, ``members[t, f]``: word ``t`` is
    one of family ``f``'s); 0 for an input without technology words."""
    out = np.zeros((len(texts), members.shape[1]), dtype=np.float64)
    for i, text in enumerate(texts):
        own = [words[word] for word in sorted(technology_words(text)) if word in words]
        if own:
            best = (np.stack(own) @ technologies.T).max(axis=0)  # per seed word: its nearest own word
            out[i] = np.where(members, best[:, None], -1.0).max(axis=0)
    return out


def by_name(similarities: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Family probabilities by name: a softmax of :func:`name_similarities` at :data:`NAME_TEMPERATURE`."""
    scaled = (similarities - similarities.max(axis=1, keepdims=True)) / NAME_TEMPERATURE
    exp = np.exp(scaled)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float64)


def description_vectors(embedder: TextEmbedder) -> Vectors:
    """Each category's title and description, embedded, in :data:`CATEGORY_KEYS` order."""
    return np.asarray(embedder.embed([f"{c.title}. {c.description}" for c in CATEGORIES]), dtype=np.float32)


@dataclass(frozen=True)
class SeedPrior:
    """What the seed set teaches every classifier: a model of the seed families over [TF-IDF words, embedding],
    its out-of-fold probabilities on the seed texts themselves, the category descriptions' vectors, and the seed
    families' technology words (unit vectors, and which family each belongs to: columns in the model's order)."""

    model: Any
    words: Any
    out_of_fold: dict[str, npt.NDArray[np.float64]]
    descriptions: Vectors
    technologies: Vectors
    members: npt.NDArray[np.bool_]

    @property
    def dimension(self) -> int:
        return int(self.descriptions.shape[1])

    def families(self, texts: Sequence[str], vectors: Vectors) -> npt.NDArray[np.float64]:
        """Family probabilities, one row per text, columns in the model's (sorted ``category/index``) order."""
        rows = sparse.hstack([self.words.transform(texts), sparse.csr_matrix(vectors)]).tocsr()
        out = np.asarray(self.model.predict_proba(rows), dtype=np.float64)
        for i, text in enumerate(texts):
            own = self.out_of_fold.get(text)
            if own is not None:
                out[i] = own
        return out

    def categories(self, families: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Category probabilities (sorted keys) from family ones: each category's families summed."""
        keys = sorted(CATEGORY_KEYS)
        members = np.asarray([[str(f).split("/")[0] == key for key in keys] for f in self.model.classes_], float)
        return np.asarray(families @ members, dtype=np.float64)

    def families_by_name(self, texts: Sequence[str], words: dict[str, Vectors]) -> npt.NDArray[np.float64]:
        """Family probabilities by name (:func:`by_name`), one row per text, columns in the model's order."""
        return by_name(name_similarities(texts, words, self.technologies, self.members))


def fit_seed_prior(embedder: TextEmbedder, seed: int) -> SeedPrior:
    """Fit the prior on the seed set (embeds every seed text: tens of seconds on 2 cores)."""
    examples = seed_examples()
    texts = [text for text, _ in examples]
    if sorted({label for _, label in examples}) != sorted(CATEGORY_KEYS):
        raise ValueError("the seed set must hold every category")
    families = np.asarray([rule.rsplit("/", 1)[0] for rule in seed_groups()])  # "database/2/0" → "database/2"
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=WORD_PATTERN).fit(texts)
    rows = sparse.hstack([words.transform(texts), sparse.csr_matrix(mean_vectors(texts, embedder))]).tocsr()
    model = LogisticRegression(C=10.0, max_iter=3000)
    folds = StratifiedGroupKFold(PRIOR_FOLDS, shuffle=True, random_state=seed)
    out_of_fold = cross_val_predict(model, rows, families, groups=seed_groups(), cv=folds, method="predict_proba")
    out_of_fold = np.asarray(out_of_fold, dtype=np.float64)
    model.fit(rows, families)
    technologies = technology_vectors(texts, embedder)
    names = sorted(technologies)
    columns = {str(family): column for column, family in enumerate(model.classes_)}
    members = np.zeros((len(names), len(columns)), dtype=bool)
    for text, family in zip(texts, families, strict=True):
        for word in technology_words(text):
            members[names.index(word), columns[str(family)]] = True
    return SeedPrior(
        model,
        words,
        {text: out_of_fold[i] for i, text in enumerate(texts)},
        description_vectors(embedder),
        np.stack([technologies[name] for name in names]),
        members,
    )


def technology_words(text: str) -> frozenset[str]:
    """The words that name an input's technologies: per alert, the first word of its name and of its summary
    line (``Ceph OSD Full`` / ``Ceph OSD full`` → ``ceph``), lowercased; label lines are not read."""
    out: set[str] = set()
    for part in incident_parts(text):
        lines = [line for line in part.split("\n") if line.strip() and not line.startswith(_LABEL_LINE)]
        for line in lines[:2]:
            match = _FIRST_WORD.search(line)
            if match:
                out.add(match.group().casefold())
    return frozenset(out)


def novelty(texts: Sequence[str], known: frozenset[str]) -> npt.NDArray[np.float64]:
    """Per input, the share of its alerts none of whose :func:`technology_words` is in ``known``."""
    out = []
    for text in texts:
        parts = incident_parts(text)
        out.append(sum(not (technology_words(part) & known) for part in parts) / len(parts))
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class Rows:
    """The feature rows of some inputs: the memorising expert's, the generalising expert's, and their novelty."""

    memorise: sparse.csr_matrix
    generalise: npt.NDArray[np.float64]
    novelty: npt.NDArray[np.float64]


class FeatureSpace:
    """Fitted feature extraction: the vectorisers of the training texts, their technology words, the seed prior."""

    def __init__(self, prior: SeedPrior) -> None:
        self.prior = prior
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=WORD_PATTERN)
        self.chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2, max_features=30_000
        )
        self.known: frozenset[str] = frozenset()

    def fit(self, texts: Sequence[str]) -> FeatureSpace:
        self.words.fit(texts)
        self.chars.fit(texts)
        self.known = known_words(texts)
        return self

    def transform(self, texts: Sequence[str], vectors: Vectors, words: dict[str, Vectors]) -> Rows:
        """The feature rows of ``texts`` (``vectors``: their :func:`mean_vectors`; ``words``: their
        :func:`technology_vectors`)."""
        if vectors.shape[1] != self.prior.dimension:
            raise ValueError(
                f"embeddings of {vectors.shape[1]} dimensions, the model was fitted on {self.prior.dimension}"
            )
        families = self.prior.families(texts, vectors)
        categories = self.prior.categories(families)
        dense = np.hstack(
            [
                vectors * EMBEDDING_WEIGHT,
                (vectors @ self.prior.descriptions.T) * DESCRIPTION_WEIGHT,
                categories * PRIOR_WEIGHT,
            ]
        )
        memorise = sparse.hstack(
            [self.words.transform(texts), self.chars.transform(texts), sparse.csr_matrix(dense)]
        ).tocsr()
        named = self.prior.families_by_name(texts, words)
        generalise = np.hstack(
            [families, categories, named, self.prior.categories(named), vectors * GENERAL_EMBEDDING_WEIGHT]
        ).astype(np.float64)
        return Rows(memorise, generalise, novelty(texts, self.known))


def known_words(texts: Sequence[str]) -> frozenset[str]:
    """Every :func:`technology_words` of ``texts``."""
    return frozenset(word for text in texts for word in technology_words(text))
