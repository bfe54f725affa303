"""Generic (query, item) features for learned ranking: BM25 per field, dense cosine, word/character overlap, idf-weighted
and typo-corrected coverage, word-pair and number+unit matches; nothing here is specific to one catalogue."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise

import numpy as np
import polars as pl
from rapidfuzz import fuzz

from longtail.core.errors import LongtailError
from longtail.data.tokenize import tokenize
from longtail.encode.item_text import TEXT_FIELDS, item_texts
from longtail.search.units import quantities, quantity_matches

BM25_K1 = 1.2
BM25_B = 0.75
CHAR_NGRAM = 3
CORRECTED_BM25 = "bm25_corrected"
PAIR_FEATURES = (
    "dense_cosine",
    "corrected_title_share",
    "query_in_title",
    "first_word_in_title",
    "last_word_in_title",
    "query_words_in_title",
    "title_words_in_query",
    "fuzzy_words_in_title",
    "char_ngram_containment",
    "char_ngram_jaccard",
    "partial_ratio",
    "token_set_ratio",
    "quantity_match",
    "quantity_conflict",
    "query_words",
    "query_unknown_words",
    "query_quantities",
    "title_words",
    "idf_coverage",
    "bigrams_in_title",
    "matched_position",
)


class FieldStatistics:
    """Token lists, lengths and document frequencies of one text field, for BM25 of any (query, row) pair."""

    def __init__(self, texts: Sequence[str | None]) -> None:
        self.tokens = [tokenize(text or "") for text in texts]
        self.lengths = np.fromiter((len(t) for t in self.tokens), dtype=np.float64, count=len(self.tokens))
        self.average_length = float(self.lengths.mean()) if len(self.lengths) and self.lengths.mean() > 0 else 1.0
        self.document_frequency: Counter[str] = Counter(token for tokens in self.tokens for token in set(tokens))
        self.documents = len(self.tokens)

    def idf(self, term: str) -> float:
        """Lucene's BM25 idf, as tantivy computes it."""
        df = self.document_frequency.get(term, 0)
        return math.log(1.0 + (self.documents - df + 0.5) / (df + 0.5))

    def bm25(self, terms: Sequence[str], rows: np.ndarray) -> np.ndarray:
        """BM25 of each row for a bag of query terms (k1 = 1.2, b = 0.75, as tantivy)."""
        unique_terms = list(dict.fromkeys(terms))
        idf = {term: self.idf(term) for term in unique_terms}
        scores = np.zeros(len(rows), dtype=np.float64)
        for position, row in enumerate(rows.tolist()):
            counts = Counter(self.tokens[row])
            norm = BM25_K1 * (1.0 - BM25_B + BM25_B * self.lengths[row] / self.average_length)
            scores[position] = sum(idf[t] * counts[t] * (BM25_K1 + 1.0) / (counts[t] + norm) for t in unique_terms if t in counts)
        return scores


def _char_ngrams(text: str) -> set[str]:
    padded = f" {' '.join(tokenize(text))} "
    return {padded[i : i + CHAR_NGRAM] for i in range(max(len(padded) - CHAR_NGRAM + 1, 0))}


def _matched_position(title_tokens: list[str], terms: set[str]) -> float:
    """Mean relative position (0 first word, 1 last) of the title words a query matches; -1 when none match (titles tend to
    name the brand first and the product type last, so where a query lands says what it matched)."""
    positions = [index for index, token in enumerate(title_tokens) if token in terms]
    return sum(positions) / len(positions) / max(len(title_tokens) - 1, 1) if positions else -1.0


class RankingFeatures:
    """Computes a fixed, named feature vector for each (query, catalogue row) pair.

    `corrector` maps a query to the index terms it searches for after typo correction (the BM25 index's
    `query_terms`). Per-pair scores the caller has (the fused retrieval score, a cross-encoder) are appended after
    the built-in features, in the order given.
    """

    def __init__(self, items: pl.DataFrame, vectors: np.ndarray, corrector: Callable[[str], list[str]]) -> None:
        # Each item-text field the catalogue fills gets its own BM25; the title is always present.
        present = [name for name in TEXT_FIELDS if name in items.columns and items[name].null_count() < items.height]
        self.fields = {name: FieldStatistics(items[name].cast(pl.String).to_list()) for name in present}
        if "title" not in self.fields:
            raise LongtailError("learned ranking needs a 'title' column in the catalogue")
        # BM25 over the text the lexical index holds (all fields joined), after typo correction, as the engine scores it.
        self.text = FieldStatistics(item_texts(items)) if len(self.fields) > 1 else self.fields["title"]
        self.titles = items["title"].fill_null("").to_list()
        self.vectors = vectors
        self.corrector = corrector
        self._title_quantities: dict[int, list] = {}

    def names(self, extra: Sequence[str] = ()) -> list[str]:
        """Feature names in column order, with the caller's extra scores last."""
        return [*(f"bm25_{name}" for name in self.fields), CORRECTED_BM25, *PAIR_FEATURES, *extra]

    def _quantities_of(self, row: int) -> list:
        if row not in self._title_quantities:
            self._title_quantities[row] = quantities(self.titles[row])
        return self._title_quantities[row]

    def compute(self, query: str, rows: np.ndarray, query_vector: np.ndarray, extra: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """A (len(rows), len(names(extra))) float32 matrix of features of `query` against each row."""
        rows = np.asarray(rows, dtype=np.int64)
        extra = extra or {}
        query_tokens = tokenize(query)
        query_set = set(query_tokens)
        corrected = self.corrector(query)
        title_stats = self.fields["title"]
        unknown = sum(1 for token in query_set if token not in title_stats.document_frequency)
        query_grams = _char_ngrams(query)
        query_quantities = quantities(query)
        lowered_query = " ".join(query_tokens)
        # Rare words (a product type, a model number) say more about a match than common ones (a colour, "in").
        corrected_idf = {term: title_stats.idf(term) for term in dict.fromkeys(corrected)}
        idf_total = sum(corrected_idf.values())
        query_bigrams = set(pairwise(query_tokens))
        columns: list[np.ndarray] = [stats.bm25(query_tokens, rows) for stats in self.fields.values()]
        columns.append(self.text.bm25(corrected, rows))
        pair = np.zeros((len(rows), len(PAIR_FEATURES)), dtype=np.float64)
        pair[:, 0] = self.vectors[rows] @ np.asarray(query_vector, dtype=np.float32).reshape(-1)
        for position, row in enumerate(rows.tolist()):
            title_tokens = title_stats.tokens[row]
            title_set = set(title_tokens)
            title_text = " ".join(title_tokens)
            title_grams = _char_ngrams(self.titles[row])
            shared_grams = len(query_grams & title_grams)
            matched, conflicting = quantity_matches(query_quantities, self._quantities_of(row))
            fuzzy_hits = sum(1 for token in query_set if token in title_set or any(fuzz.ratio(token, t) >= 80 for t in title_set))
            pair[position, 1:] = (
                len(set(corrected) & title_set) / len(corrected) if corrected else 0.0,
                float(bool(lowered_query) and lowered_query in title_text),
                float(bool(query_tokens) and query_tokens[0] in title_set),
                float(bool(query_tokens) and query_tokens[-1] in title_set),
                len(query_set & title_set) / len(query_set) if query_set else 0.0,
                len(query_set & title_set) / len(title_set) if title_set else 0.0,
                fuzzy_hits / len(query_set) if query_set else 0.0,
                shared_grams / len(query_grams) if query_grams else 0.0,
                shared_grams / len(query_grams | title_grams) if query_grams or title_grams else 0.0,
                fuzz.partial_ratio(lowered_query, title_text) / 100.0,
                fuzz.token_set_ratio(lowered_query, title_text) / 100.0,
                matched,
                conflicting,
                len(query_tokens),
                unknown,
                len(query_quantities),
                len(title_tokens),
                sum(idf for term, idf in corrected_idf.items() if term in title_set) / idf_total if idf_total > 0 else 0.0,
                len(query_bigrams & set(pairwise(title_tokens))) / len(query_bigrams) if query_bigrams else 0.0,
                _matched_position(title_tokens, set(corrected) | query_set),
            )
        matrix = np.column_stack([*columns, pair, *(np.asarray(values, dtype=np.float64) for values in extra.values())])
        return matrix.astype(np.float32)
