"""Lexical ranking: Okapi BM25 over identifier-aware tokens (``NodeDiskFull`` and ``node_disk_full`` match)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from knowledge.text import split_identifier

# Function words only. Words that carry polarity or quantity in alert names (``not``/``no``, ``any``/``some``/
# ``all``, ``up``/``out``/``over``/``under``, ``more``/``most``) are kept: ``...ToAnyAlertmanager`` and
# ``...ToSomeAlertmanagers`` or ``PodNotReady`` and ``PodReady`` differ only by them.
_STOPWORD_TEXT = """a an and are as at be been but by can could do does for from has have having if in into is it its of
    on or our so such than that the their then there these this those to was were which while will with within would you
    your we n has had may might must should also very via per this been about after before being both each how other
    same what when where who why"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[a-z]+)?")


def stem(word: str) -> str:
    """A light suffix stripper (plurals, -ing, -ed, then a final ``e`` and a doubled consonant, as Porter's step 1
    does), enough to match ``restarts``/``restarting``/``restart``, ``lagging``/``lag`` and ``expires``/``expiring``.
    """
    if len(word) <= 4 or word.endswith("ss"):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 4 and word.endswith("e") and not word.endswith("ee"):
        return word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouylsz":
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    tokens = []
    for raw in _WORD.findall(text):
        for word in split_identifier(raw).split():
            lower = word.lower()
            if len(lower) < 2 or lower in STOPWORDS or lower.isdigit():
                continue
            tokens.append(stem(lower))
    return tokens


class BM25:
    """Okapi BM25 with the usual ``k1``/``b``; :meth:`scores` gives one score per document."""

    def __init__(self, documents: Sequence[Sequence[str]], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.term_counts = [Counter(doc) for doc in documents]
        self.lengths = [len(doc) for doc in documents]
        count = len(documents)
        self.average_length = (sum(self.lengths) / count) if count else 0.0
        frequency: Counter[str] = Counter()
        for counts in self.term_counts:
            frequency.update(counts.keys())
        self.idf = {term: math.log(1 + (count - n + 0.5) / (n + 0.5)) for term, n in frequency.items()}
        self.unseen_idf = math.log(1 + (count + 0.5) / 0.5)  # a term no document has: as rare as can be

    def scores(self, query: Sequence[str]) -> list[float]:
        terms = Counter(query)
        out = []
        for counts, length in zip(self.term_counts, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.average_length) if self.average_length else self.k1
            total = 0.0
            for term, qtf in terms.items():
                tf = counts.get(term)
                if tf:
                    total += qtf * self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
            out.append(total)
        return out

    def coverage(self, query: Sequence[str], document: int) -> float:
        """Share of the query's IDF mass that appears in ``document``: 0..1, comparable across queries (terms
        no document has count as the rarest, so an unrelated query covers little)."""
        terms = set(query)
        total = sum(self.idf.get(t, self.unseen_idf) for t in terms)
        if total <= 0:
            return 0.0
        counts = self.term_counts[document]
        return sum(self.idf[t] for t in terms if t in counts) / total

    def recall(self, query: Sequence[str], document: int) -> float:
        """Share of ``document``'s IDF mass that the query mentions: 0..1, the other side of :meth:`coverage`
        (on a short field such as a title, how much of what the document is about the query names)."""
        counts = self.term_counts[document]
        total = sum(self.idf[t] for t in counts)
        if total <= 0:
            return 0.0
        terms = set(query)
        return sum(self.idf[t] for t in counts if t in terms) / total
