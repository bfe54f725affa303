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
# What is known of a candidate phrase; the weights that combine these into one score are learnt from the log.
FEATURES = (
    "log1p catalogue count",
    "log1p query weight",
    "log P(first word starts a query)",
    "log P(last word ends a query)",
    "1 word",
    "2 words",
    "3 words",
    "4+ words",
)
# For a log too small to learn from: catalogue and query evidence add up, as do the boundary log-probabilities.
DEFAULT_WEIGHTS = np.array([1.0, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
MIN_POSITIVES = 20
L2 = 1.0


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


@dataclass(frozen=True)
class QueryLogEvidence:
    """What past searches say about phrases: each phrase's weight (as a query or inside one), and how often each
    word starts or ends a query relative to how often it occurs in queries at all."""

    phrases: dict[str, float]
    starts: dict[str, float]
    ends: dict[str, float]
    occurrences: dict[str, float]
    boundary_rate: float
    smoothing: float = 2.0

    def _rate(self, counts: dict[str, float], word: str) -> float:
        # Shrunk towards the rate over all words, so a word the log saw once (or never) gets a moderate estimate.
        return (counts.get(word, 0.0) + self.smoothing * self.boundary_rate) / (self.occurrences.get(word, 0.0) + self.smoothing)

    def start_rate(self, word: str) -> float:
        """log P(a query starts with this word | it holds the word): shoppers type "ceiling fan", not "with remote"."""
        return math.log(self._rate(self.starts, word)) if self.boundary_rate else 0.0

    def end_rate(self, word: str) -> float:
        """log P(a query ends with this word | it holds the word): "fan" ends queries, "with" does not."""
        return math.log(self._rate(self.ends, word)) if self.boundary_rate else 0.0


def query_evidence(log: Iterable[LoggedQuery], vocabulary: set[str], half_life_days: float = 30.0, max_words: int = 3) -> QueryLogEvidence:
    """Past queries and their phrases of up to max_words words, weighted by frequency and recency (a search counts
    0.5 per half-life of age before the newest), and their first and last words; queries none of whose words occur
    in the catalogue (zero-result queries) are left out."""
    entries = [(normalise(entry.query), entry.timestamp) for entry in log]
    entries = [(text, moment) for text, moment in entries if text]
    phrases: dict[str, float] = defaultdict(float)
    starts: dict[str, float] = defaultdict(float)
    ends: dict[str, float] = defaultdict(float)
    occurrences: dict[str, float] = defaultdict(float)
    newest = max((moment for _, moment in entries), default=None)
    for text, moment in entries:
        tokens = _title_words(text)
        if not tokens or not any(token in vocabulary for token in tokenize(text)):
            continue
        weight = 0.5 ** ((newest - moment).total_seconds() / 86_400 / half_life_days) if newest else 1.0
        # Phrases of past queries generalise to queries never seen before; the full query is one more entry.
        for phrase in {text, *_phrases(tokens, max_words)}:
            phrases[phrase] += weight
        starts[tokens[0]] += weight
        ends[tokens[-1]] += weight
        for token in tokens:
            occurrences[token] += weight
    total = sum(occurrences.values())
    # Each query has one first word: queries per word occurrence is the rate any word starts (or ends) one.
    rate = sum(starts.values()) / total if total else 0.0
    return QueryLogEvidence(dict(phrases), dict(starts), dict(ends), dict(occurrences), rate)


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


def phrase_features(phrases: Sequence[str], catalogue: dict[str, float], log: QueryLogEvidence) -> np.ndarray:
    """One row of FEATURES per phrase."""
    rows = np.zeros((len(phrases), len(FEATURES)), dtype=np.float64)
    for row, phrase in enumerate(phrases):
        tokens = _title_words(phrase) or [phrase]
        rows[row, :4] = (math.log1p(catalogue.get(phrase, 0.0)), math.log1p(log.phrases.get(phrase, 0.0)), log.start_rate(tokens[0]), log.end_rate(tokens[-1]))
        rows[row, 3 + min(len(tokens), 4)] = 1.0
    return rows


def _logistic(features: np.ndarray, labels: np.ndarray, l2: float, iterations: int = 30) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; the intercept (last weight) is not penalised."""
    x = np.hstack([features, np.ones((len(features), 1))])
    weights = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ weights)))
        gradient = x.T @ (p - labels) + penalty * weights
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-6:
            break
    return weights


def learn_phrase_weights(
    log: Sequence[LoggedQuery], catalogue: dict[str, float], vocabulary: set[str], half_life_days: float = 30.0, l2: float = L2, seed: int = 0
) -> np.ndarray | None:
    """Weights of FEATURES that score a phrase by how likely shoppers are to type it as a whole query, learnt from
    the log alone: half its distinct queries are the log, the other half the queries to predict (never the same
    text, as with queries not searched before). None when the log holds under MIN_POSITIVES predictable queries."""
    texts = sorted({normalise(entry.query) for entry in log} - {""})
    order = np.random.default_rng(seed).permutation(len(texts))
    known = {texts[i] for i in order[: len(texts) // 2]}
    targets = {texts[i] for i in order[len(texts) // 2 :]}
    evidence = query_evidence([entry for entry in log if normalise(entry.query) in known], vocabulary, half_life_days)
    candidates = sorted(set(catalogue) | set(evidence.phrases))
    labels = np.array([phrase in targets for phrase in candidates], dtype=np.float64)
    if labels.sum() < MIN_POSITIVES:
        return None
    return _logistic(phrase_features(candidates, catalogue, evidence), labels, l2)[:-1]


def catalogue_vocabulary(titles: Iterable[str], brands: Iterable[str | None] = ()) -> set[str]:
    """Every index token of the titles and brands: a past query holding none of them found nothing."""
    return {token for title in titles for token in tokenize(title or "")} | {t for b in brands if b for t in tokenize(b)}


class Suggester:
    """Sorted phrases with weights: a prefix is a range found by binary search, its best completions by weight."""

    def __init__(
        self, catalogue: dict[str, float], log: QueryLogEvidence | None = None, brands: set[str] | None = None, weights: np.ndarray | None = None
    ) -> None:
        """Without a log, a phrase weighs log(1 + catalogue count); with one, its FEATURES (catalogue and log evidence)
        combine in one score by `weights` (DEFAULT_WEIGHTS when not given)."""
        queries = log.phrases if log is not None else {}
        self.phrases = sorted(set(queries) | set(catalogue))
        if log is None:
            self.weights = np.array([math.log1p(catalogue.get(p, 0.0)) for p in self.phrases], dtype=np.float64)
        else:
            self.weights = phrase_features(self.phrases, catalogue, log) @ (DEFAULT_WEIGHTS if weights is None else weights)
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
        l2: float = L2,
    ) -> Suggester:
        """A suggester over catalogue titles and brands and, when given, a log of past searches whose own queries
        teach how to weigh the evidence (`learn_phrase_weights`)."""
        titles, log = list(titles), list(log)
        brand_set = {normalise(b) for b in brands if b}
        vocabulary = catalogue_vocabulary(titles, brands)
        catalogue = catalogue_phrases(titles, brands, min_items=min_items)
        if not log:
            return cls(catalogue, brands=brand_set)
        weights = learn_phrase_weights(log, catalogue, vocabulary, half_life_days, l2)
        return cls(catalogue, query_evidence(log, vocabulary, half_life_days), brand_set, weights)

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
