"""Alert → runbook retrieval: dense (embeddings) and lexical (BM25) ranking, fused, an exact-name rule, and
abstention on a confidence comparable across queries.

Live alerts and ``incibot eval retrieval`` go through the same :meth:`RunbookIndex.search_alert`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from knowledge.alerts import NormalizedAlert
from knowledge.lexical import BM25, tokenize
from knowledge.runbooks import Runbook, name_key
from knowledge.text import alert_text, split_identifier

# Confidence below which the search abstains ("no runbook fits"). Chosen by cross-validation on the development
# queries (see ``incibot eval retrieval``, which prints the threshold it would choose on any query file).
DEFAULT_THRESHOLD = 0.55
# Confidence given to a runbook that the exact-name rule picks: above any similarity-based confidence.
RULE_CONFIDENCE = 1.0
# Weight of the lexical evidence in the hybrid score (dense has weight 1 - LEXICAL_WEIGHT).
LEXICAL_WEIGHT = 0.5
# Share of the lexical evidence that comes from the title-and-names field rather than the whole text.
TITLE_WEIGHT = 0.5
_SECTION_CHARS = 1200  # about MiniLM's 256-token window; the rest of a long section is not embedded


class Ranker(enum.StrEnum):
    HYBRID = "hybrid"
    DENSE = "dense"
    LEXICAL = "lexical"


class TextEmbedder(Protocol):
    dimension: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class Hit:
    doc: str
    score: float  # confidence that this runbook fits, 0..1, comparable across queries
    section: str | None
    dense: float
    lexical: float
    by_name: bool = False


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]  # best first, one per runbook
    confidence: float  # the best hit's score (0 without hits)
    abstain: bool


@dataclass(frozen=True, slots=True)
class _Unit:
    doc: int
    section: str | None  # None: the whole-document summary unit


def runbook_name_words(runbook: Runbook) -> str:
    names = dict.fromkeys(split_identifier(n) for n in runbook.names)
    return " ".join(n for n in names if n.lower() != runbook.title.lower())


class RunbookIndex:
    """Runbooks ready to search. Build once (embedding every section), then :meth:`search` per alert."""

    def __init__(
        self,
        runbooks: Sequence[Runbook],
        embedder: TextEmbedder | None,
        *,
        vectors: npt.NDArray[np.float32] | None = None,
    ) -> None:
        """``vectors``: the embeddings of :attr:`unit_texts` saved earlier (skips embedding them again)."""
        self.runbooks = list(runbooks)
        self.embedder = embedder
        self._by_name: dict[str, int] = {}
        for i, runbook in enumerate(self.runbooks):
            for name in runbook.names:
                self._by_name.setdefault(name_key(name), i)
        self._ids = {runbook.id: i for i, runbook in enumerate(self.runbooks)}
        self._bm25 = BM25([tokenize(self._lexical_text(r)) for r in self.runbooks])
        # A second field with only the title and names (BM25F-style): a match there says much more than one
        # anywhere in a long body, which often mentions neighbouring alerts.
        self._bm25_title = BM25([tokenize(f"{r.title} {runbook_name_words(r)}") for r in self.runbooks])
        self._units: list[_Unit] = []
        texts: list[str] = []
        for i, runbook in enumerate(self.runbooks):
            head = f"{runbook.title}. {runbook_name_words(runbook)}".strip()
            first = runbook.sections[0].text if runbook.sections else ""
            self._units.append(_Unit(i, None))
            texts.append(f"{head}\n{first}"[:_SECTION_CHARS])
            for section in runbook.sections:
                if section.text:
                    self._units.append(_Unit(i, section.heading))
                    texts.append(f"{head}\n{section.heading}: {section.text}"[:_SECTION_CHARS])
        self.unit_texts: tuple[str, ...] = tuple(texts)  # what is embedded, one per unit
        self._unit_docs = np.array([u.doc for u in self._units], dtype=np.int64)
        self._vectors: npt.NDArray[np.float32]
        if vectors is not None:
            if vectors.shape[0] != len(texts):
                raise ValueError(f"{vectors.shape[0]} saved vectors for {len(texts)} runbook sections")
            self._vectors = vectors
        elif embedder is not None and texts:
            self._vectors = embedder.embed(texts)
        else:
            self._vectors = np.zeros((len(texts), embedder.dimension if embedder else 0), dtype=np.float32)

    @property
    def vectors(self) -> npt.NDArray[np.float32]:
        """The embeddings of :attr:`unit_texts`, row by row (what a saved index stores)."""
        return self._vectors

    @staticmethod
    def _lexical_text(runbook: Runbook) -> str:
        extra = " ".join((*runbook.services, *runbook.tags))
        return f"{runbook.title}\n{runbook_name_words(runbook)}\n{extra}\n{runbook.body}"

    @property
    def unit_count(self) -> int:
        """How many texts were embedded (a summary per runbook plus its sections)."""
        return len(self._units)

    def __len__(self) -> int:
        return len(self.runbooks)

    def rule_match(self, names: Sequence[str], runbook_url: str | None = None) -> int | None:
        """The runbook an alert names: by ``runbook_url`` (ends with its id, or its source URL), else by name."""
        if runbook_url:
            url = runbook_url.strip().rstrip("/").lower()
            for suffix in (".md", ".html"):
                url = url.removesuffix(suffix)
            for i, runbook in enumerate(self.runbooks):
                if (runbook.source_url and runbook.source_url.strip().rstrip("/").lower() == url) or url.endswith(
                    "/" + runbook.id.lower()
                ):
                    return i
            tail = url.rsplit("/", 1)[-1].split("#", 1)[0]
            if name_key(tail) in self._by_name:
                return self._by_name[name_key(tail)]
        for name in names:
            key = name_key(name)
            if key and key in self._by_name:
                return self._by_name[key]
        return None

    def search_alert(
        self,
        alert: NormalizedAlert,
        *,
        ranker: Ranker = Ranker.HYBRID,
        name_rule: bool = True,
        limit: int = 10,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> SearchResult:
        names = [alert.alertname] if alert.alertname else []
        url = alert.annotations.get("runbook_url") or alert.annotations.get("runbook")
        return self.search(
            alert_text(alert),
            names=names if name_rule else (),
            runbook_url=url if name_rule else None,
            ranker=ranker,
            limit=limit,
            threshold=threshold,
        )

    def search(
        self,
        text: str,
        *,
        names: Sequence[str] = (),
        runbook_url: str | None = None,
        ranker: Ranker = Ranker.HYBRID,
        limit: int = 10,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> SearchResult:
        """Rank runbooks for ``text`` (an alert's canonical text, or free text)."""
        count = len(self.runbooks)
        if count == 0:
            return SearchResult([], 0.0, True)
        dense, sections = self._dense(text)
        tokens = tokenize(text)
        bm25 = np.array(self._bm25.scores(tokens), dtype=np.float64)
        coverage = np.array([self._bm25.coverage(tokens, i) for i in range(count)], dtype=np.float64)
        title = np.array(self._bm25_title.scores(tokens), dtype=np.float64)
        lex_rel = (1 - TITLE_WEIGHT) * _relative(bm25) + TITLE_WEIGHT * _relative(title)
        # Ranking score (per query) and confidence (comparable across queries) for each runbook.
        if ranker is Ranker.DENSE:
            rank_score = dense.copy()
            confidence = np.clip(dense, 0, 1)
        elif ranker is Ranker.LEXICAL:
            rank_score = lex_rel + 1e-3 * coverage
            confidence = coverage * lex_rel
        else:
            rank_score = (1 - LEXICAL_WEIGHT) * dense + LEXICAL_WEIGHT * lex_rel
            confidence = np.clip((1 - LEXICAL_WEIGHT) * dense + LEXICAL_WEIGHT * coverage * lex_rel, 0, 1)
        order = sorted(range(count), key=lambda i: (-rank_score[i], self.runbooks[i].id))
        ruled = self.rule_match(names, runbook_url)
        if ruled is not None:
            order.remove(ruled)
            order.insert(0, ruled)
        hits: list[Hit] = []
        for i in order[:limit]:
            score = RULE_CONFIDENCE if i == ruled else min(float(confidence[i]), RULE_CONFIDENCE - 1e-6)
            if hits:  # scores never rise down the ranking, so that a consumer may read them as ordered
                score = min(score, hits[-1].score)
            hits.append(
                Hit(
                    doc=self.runbooks[i].id,
                    score=round(score, 6),
                    section=sections.get(i) or self._lexical_section(i, tokens),
                    dense=round(float(dense[i]), 6),
                    lexical=round(float(bm25[i]), 6),
                    by_name=i == ruled,
                )
            )
        best = hits[0].score if hits else 0.0
        return SearchResult(hits, best, best < threshold)

    def _dense(self, text: str) -> tuple[npt.NDArray[np.float64], dict[int, str]]:
        count = len(self.runbooks)
        dense = np.zeros(count, dtype=np.float64)
        sections: dict[int, str] = {}
        if self.embedder is None or not len(self._units):
            return dense, sections
        query = self.embedder.embed([text])[0]
        sims = self._vectors @ query
        dense[:] = -math.inf
        np.maximum.at(dense, self._unit_docs, sims.astype(np.float64))
        best_section: dict[int, float] = {}
        for unit, sim in zip(self._units, sims, strict=True):
            if unit.section is not None and sim > best_section.get(unit.doc, -math.inf):
                best_section[unit.doc] = float(sim)
                sections[unit.doc] = unit.section
        dense[~np.isfinite(dense)] = 0.0
        return dense, sections

    def _lexical_section(self, doc: int, tokens: Sequence[str]) -> str | None:
        runbook = self.runbooks[doc]
        wanted = set(tokens)
        best: tuple[int, str] | None = None
        for section in runbook.sections:
            overlap = len(wanted & set(tokenize(f"{section.heading} {section.text}")))
            if best is None or overlap > best[0]:
                best = (overlap, section.heading)
        return best[1] if best else None


def _relative(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    top = float(scores.max()) if len(scores) else 0.0
    return scores / top if top > 0 else np.zeros_like(scores)
