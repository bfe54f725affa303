"""Autocomplete: completions of a typed prefix from past queries and catalogue phrases, tolerant of one typo."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from longtail.data.tokenize import has_chinese, segment, tokenize, words

Source = Literal["query", "catalogue", "brand"]
_END = "\U0010ffff"  # sorts after every character, so [prefix, prefix + _END) is every phrase starting with prefix
_TYPO_PENALTY = 0.5
TYPO_MAX_LENGTH = 40


def normalise(text: str) -> str:
    """Lower-cased words joined by one space (none between two Chinese words), so typed text and phrases compare."""
    return _join(words(text))


def _join(tokens: Sequence[str]) -> str:
    text = ""
    for token in tokens:
        if text and not (has_chinese(text[-1]) and has_chinese(token[0])):
            text += " "
        text += token
    return text


def _title_words(text: str) -> list[str]:
    """A title's words; Chinese is cut into words by jieba so a completion can start at any of them."""
    if has_chinese(text):
        return [piece.lower() for piece in segment(text) if words(piece)]
    return words(text)


@dataclass(frozen=True)
class Suggestion:
    """One completion: its text, where it came from, its weight, and whether it matched a corrected prefix."""

    text: str
    source: Source
    weight: float
    corrected: bool = False


@dataclass(frozen=True)
class LoggedQuery:
    """A past search: its text and when it was made."""

    query: str
    timestamp: datetime


def query_weights(log: Iterable[LoggedQuery], vocabulary: set[str], half_life_days: float = 30.0, max_words: int = 3) -> dict[str, float]:
    """Past queries and their phrases of up to max_words words, weighted by frequency and recency (a search counts
    0.5 per half-life of age before the newest); queries none of whose words occur in the catalogue (zero-result
    queries) are left out."""
    entries = [(normalise(entry.query), entry.timestamp) for entry in log]
    entries = [(text, moment) for text, moment in entries if text]
    if not entries:
        return {}
    newest = max(moment for _, moment in entries)
    weights: dict[str, float] = defaultdict(float)
    for text, moment in entries:
        tokens = _title_words(text)
        if not any(token in vocabulary for token in tokenize(text)):
            continue
        weight = 0.5 ** ((newest - moment).total_seconds() / 86_400 / half_life_days)
        # Phrases of past queries generalise to queries never seen before; the full query is one more entry.
        for phrase in {text, *_phrases(tokens, max_words)}:
            weights[phrase] += weight
    return dict(weights)


def _phrases(tokens: Sequence[str], max_words: int) -> set[str]:
    return {_join(tokens[start : start + n]) for start in range(len(tokens)) for n in range(1, max_words + 1) if start + n <= len(tokens)}


def catalogue_phrases(titles: Iterable[str], brands: Iterable[str | None] = (), max_words: int = 3, min_items: int = 2) -> dict[str, float]:
    """Phrases of 1..max_words consecutive title words found in at least min_items titles, weighted by that count, plus brands."""
    counts: Counter[str] = Counter()
    for title in titles:
        tokens = _title_words(title or "")
        counts.update(_phrases(tokens, max_words))
    phrases_found = {phrase: float(count) for phrase, count in counts.items() if count >= min_items}
    for brand, count in Counter(normalise(b) for b in brands if b).items():
        if brand:
            phrases_found[brand] = max(phrases_found.get(brand, 0.0), float(count))
    return phrases_found


class Suggester:
    """Sorted phrases with weights: a prefix is a range found by binary search, its best completions by weight."""

    def __init__(self, queries: dict[str, float], catalogue: dict[str, float], brands: set[str] | None = None, query_scale: float = 1.0) -> None:
        """Weight = log(1 + catalogue count) + query_scale x log(1 + query weight): evidence from both adds up."""
        phrases = set(queries) | set(catalogue)
        self.phrases = sorted(phrases)
        self.weights = np.array([math.log1p(catalogue.get(p, 0.0)) + query_scale * math.log1p(queries.get(p, 0.0)) for p in self.phrases], dtype=np.float64)
        self.sources: list[Source] = ["query" if p in queries else "brand" if brands and p in brands else "catalogue" for p in self.phrases]
        self.alphabet = sorted({c for phrase in self.phrases for c in phrase if c.isascii() and c.isalnum()})

    @classmethod
    def build(
        cls,
        titles: Iterable[str],
        brands: Sequence[str | None] = (),
        log: Iterable[LoggedQuery] = (),
        half_life_days: float = 30.0,
        min_items: int = 2,
        query_scale: float = 1.0,
    ) -> Suggester:
        """A suggester over catalogue titles and brands and, when given, a log of past searches."""
        titles = list(titles)
        vocabulary = {token for title in titles for token in tokenize(title or "")} | {t for b in brands if b for t in tokenize(b)}
        brand_set = {normalise(b) for b in brands if b}
        return cls(query_weights(log, vocabulary, half_life_days), catalogue_phrases(titles, brands, min_items=min_items), brand_set, query_scale)

    def __len__(self) -> int:
        return len(self.phrases)

    def _range(self, prefix: str) -> tuple[int, int]:
        return bisect_left(self.phrases, prefix), bisect_left(self.phrases, prefix + _END)

    def _best(self, lo: int, hi: int, k: int) -> list[int]:
        chosen = np.arange(lo, hi) if hi - lo <= k else lo + np.argpartition(-self.weights[lo:hi], k - 1)[:k]
        return sorted(chosen.tolist(), key=lambda i: (-self.weights[i], self.phrases[i]))

    def _variants(self, prefix: str) -> set[str]:
        """Prefixes one edit away (substitution, deletion, insertion, adjacent transposition), first letter kept."""
        found = set()
        for i in range(1, len(prefix) + 1):
            found.add(prefix[:i] + prefix[i + 1 :])
            if i + 1 < len(prefix):
                found.add(prefix[:i] + prefix[i + 1] + prefix[i] + prefix[i + 2 :])
            for c in self.alphabet:
                found.add(prefix[:i] + c + prefix[i:])
                if i < len(prefix):
                    found.add(prefix[:i] + c + prefix[i + 1 :])
        found.discard(prefix)
        return {v for v in found if v.strip()}

    def suggest(self, text: str, k: int = 5, typo_min_length: int = 4) -> list[Suggestion]:
        """The k best completions of a typed prefix; when too few phrases start with it, also those of one-typo
        variants (Latin prefixes of typo_min_length+ characters), ranked after exact ones at a reduced weight."""
        prefix = normalise(text)
        if not prefix:
            return []
        # A trailing space means the last word is complete: "tile " should not complete to "tiles".
        if text[-1:].isspace() and not has_chinese(prefix[-1]):
            prefix += " "
        lo, hi = self._range(prefix)
        picked = self._best(lo, hi, k)
        found = [Suggestion(self.phrases[i], self.sources[i], float(self.weights[i])) for i in picked]
        # Past TYPO_MAX_LENGTH characters a shopper is typing a phrase, not a prefix; variants would only cost time.
        if len(found) >= k or not typo_min_length <= len(prefix) <= TYPO_MAX_LENGTH or not prefix.isascii():
            return found
        seen = {s.text for s in found}
        fuzzy: dict[int, float] = {}
        for variant in self._variants(prefix):
            lo = bisect_left(self.phrases, variant)
            # Most variants start no phrase at all: one comparison rules them out before the second search.
            if lo == len(self.phrases) or not self.phrases[lo].startswith(variant):
                continue
            for i in self._best(lo, bisect_left(self.phrases, variant + _END, lo), k):
                if self.phrases[i] not in seen:
                    fuzzy[i] = float(self.weights[i]) * _TYPO_PENALTY
        ranked = sorted(fuzzy, key=lambda i: (-fuzzy[i], self.phrases[i]))[: k - len(found)]
        return found + [Suggestion(self.phrases[i], self.sources[i], fuzzy[i], corrected=True) for i in ranked]
