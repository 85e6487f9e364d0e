"""Alert → runbook retrieval: dense (embeddings) and lexical (BM25) ranking, fused, an exact-name rule, and
abstention on a confidence comparable across queries and across corpora.

Ranking and confidence are two different scores. The ranking fuses the dense similarity with BM25 scaled to the
query's best document (only the order within one query matters there). The confidence is an absolute measure of
fit that does not look at the other documents: the dense similarity plus a lexical fit made of two shares, how
much of the query's (IDF-weighted) terms the runbook contains and how much of the runbook's title and names the
query mentions. So a weak best match gets a low confidence on a corpus of 5 runbooks as on one of 500.

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

# Confidence below which the search abstains ("no runbook fits"). Chosen on the development queries (66 runbooks,
# 91 alerts, 17 with no runbook): ``incibot eval retrieval`` prints its cross-validated choice per setting, 0.47
# without the alert name and 0.60 with the name but no rule (with the rule, nearly every answer scores 1.0 and
# the choice only has to clear the unanswerable alerts). 0.55 lies between the two and is where right-or-abstained
# peaks summed over the three settings (250 of 3 x 91): 77/91 without the name (that setting's best), 86/91 with
# it (best 87). On the 5-runbook sample corpus, free text that fits scores 0.67-0.79 and unrelated text (office
# coffee machine, sales report) at most 0.12.
DEFAULT_THRESHOLD = 0.55
# Confidence given to a runbook that the exact-name rule picks: above any similarity-based confidence.
RULE_CONFIDENCE = 1.0
# Weight of the lexical evidence in the hybrid ranking score (dense has weight 1 - LEXICAL_WEIGHT).
LEXICAL_WEIGHT = 0.4
# Weight of the lexical fit in the confidence (dense has weight 1 - FIT_LEXICAL_WEIGHT): equal parts.
FIT_LEXICAL_WEIGHT = 0.5
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


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one text's search knows about every runbook (arrays indexed like :attr:`RunbookIndex.runbooks`).

    The lexical fit the confidence uses is the geometric mean of ``coverage`` and ``title_recall``: both must be
    high, since a long runbook that mentions everything, or a title word met in passing, is not a fit.
    """

    tokens: list[str]  # the text's lexical tokens
    dense: npt.NDArray[np.float64]  # best cosine of the text (or, for several lines, text and line) with any unit
    sections: dict[int, str]  # runbook → heading of its section closest in meaning
    bm25: npt.NDArray[np.float64]  # BM25 over the whole text
    title_bm25: npt.NDArray[np.float64]  # BM25 over the title and names only
    coverage: npt.NDArray[np.float64]  # share of the text's IDF mass the runbook contains, 0..1
    title_recall: npt.NDArray[np.float64]  # share of the title-and-names IDF mass the text mentions, 0..1

    @property
    def lexical_relative(self) -> npt.NDArray[np.float64]:
        """BM25 of both fields, each scaled to this text's best runbook (for ranking within one query only)."""
        return (1 - TITLE_WEIGHT) * _relative(self.bm25) + TITLE_WEIGHT * _relative(self.title_bm25)


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
        found = self.evidence(text)
        dense, bm25 = found.dense, found.bm25
        lex_rel = found.lexical_relative
        fit = np.sqrt(found.coverage * found.title_recall)
        # Ranking score (per query) and confidence (absolute, comparable across queries and corpora).
        if ranker is Ranker.DENSE:
            rank_score = dense.copy()
            confidence = np.clip(dense, 0, 1)
        elif ranker is Ranker.LEXICAL:
            rank_score = lex_rel + 1e-3 * fit
            confidence = fit
        else:
            rank_score = (1 - LEXICAL_WEIGHT) * dense + LEXICAL_WEIGHT * lex_rel
            confidence = np.clip((1 - FIT_LEXICAL_WEIGHT) * dense + FIT_LEXICAL_WEIGHT * fit, 0, 1)
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
                    section=self.best_section(i, found),
                    dense=round(float(dense[i]), 6),
                    lexical=round(float(bm25[i]), 6),
                    by_name=i == ruled,
                )
            )
        best = hits[0].score if hits else 0.0
        return SearchResult(hits, best, best < threshold)

    def evidence(self, text: str) -> Evidence:
        """Every runbook's dense and lexical evidence for ``text``, before any fusion (what :meth:`search` fuses;
        other searches, such as question answering, fuse it their own way)."""
        count = len(self.runbooks)
        dense, sections = self._dense(text)
        tokens = tokenize(text)
        return Evidence(
            tokens=tokens,
            dense=dense,
            sections=sections,
            bm25=np.array(self._bm25.scores(tokens), dtype=np.float64),
            title_bm25=np.array(self._bm25_title.scores(tokens), dtype=np.float64),
            coverage=np.array([self._bm25.coverage(tokens, i) for i in range(count)], dtype=np.float64),
            title_recall=np.array([self._bm25_title.recall(tokens, i) for i in range(count)], dtype=np.float64),
        )

    def _dense(self, text: str) -> tuple[npt.NDArray[np.float64], dict[int, str]]:
        """Per runbook: the mean of two cosines, the whole text's best one with any unit and, for a text of
        several lines (an alert's name, summary, description, labels), the best one of any line with any unit.
        A line that says what is wrong then counts even when the others (labels, names of other services) pull
        the whole text's embedding elsewhere."""
        count = len(self.runbooks)
        dense = np.zeros(count, dtype=np.float64)
        sections: dict[int, str] = {}
        if self.embedder is None or not len(self._units):
            return dense, sections
        lines = [line for line in (part.strip() for part in text.splitlines()) if line]
        queries = self.embedder.embed([text, *lines] if len(lines) > 1 else [text])
        whole = self._vectors @ queries[0]
        sims = (whole + (self._vectors @ queries[1:].T).max(axis=1)) / 2 if len(queries) > 1 else whole
        dense[:] = -math.inf
        np.maximum.at(dense, self._unit_docs, sims.astype(np.float64))
        best_section: dict[int, float] = {}
        for unit, sim in zip(self._units, sims, strict=True):
            if unit.section is not None and sim > best_section.get(unit.doc, -math.inf):
                best_section[unit.doc] = float(sim)
                sections[unit.doc] = unit.section
        dense[~np.isfinite(dense)] = 0.0
        return dense, sections

    def best_section(self, doc: int, found: Evidence) -> str | None:
        """The heading of runbook ``doc``'s section closest in meaning to the text, else the one sharing most
        of its words."""
        return found.sections.get(doc) or self._lexical_section(doc, found.tokens)

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
