"""Lexical BM25 retrieval with tantivy over Python-side tokens, with typo correction against the index vocabulary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tantivy
from rapidfuzz.distance import OSA

from longtail.data.tokenize import is_latin_word, tokenize

TEXT_FIELD = "text"
ROW_FIELD = "row"
# Tokens arrive already segmented and lower-cased, so tantivy only splits on the spaces we join them with.
ANALYZER = "longtail_tokens"
_WRITER_HEAP_BYTES = 128_000_000


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field(TEXT_FIELD, stored=False, tokenizer_name=ANALYZER, index_option="freq")
    builder.add_integer_field(ROW_FIELD, stored=False, indexed=False, fast=True)
    return builder.build()


def _register_analyzer(index: tantivy.Index) -> None:
    index.register_tokenizer(ANALYZER, tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build())


def _write(index: tantivy.Index, texts: Sequence[str], first_row: int) -> None:
    writer = index.writer(_WRITER_HEAP_BYTES, 1)
    for row, text in enumerate(texts, start=first_row):
        writer.add_document(tantivy.Document(**{TEXT_FIELD: " ".join(tokenize(text)), ROW_FIELD: row}))
    writer.commit()
    writer.wait_merging_threads()


class LexicalIndex:
    """BM25 (tantivy) over item texts; rows are item positions in the catalogue the index was built from."""

    def __init__(self, index: tantivy.Index, fuzzy: bool = True, fuzzy_min_length: int = 4) -> None:
        self.index = index
        self.fuzzy = fuzzy
        self.fuzzy_min_length = fuzzy_min_length
        self.index.reload()
        self.searcher = index.searcher()
        self.schema = index.schema

    @classmethod
    def build(cls, texts: Sequence[str], directory: str | Path | None = None, fuzzy: bool = True, fuzzy_min_length: int = 4) -> LexicalIndex:
        """Index texts (row i = texts[i]); in memory when no directory is given."""
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        index = tantivy.Index(_schema(), path=None if directory is None else str(directory), reuse=False)
        _register_analyzer(index)
        _write(index, texts, 0)
        return cls(index, fuzzy, fuzzy_min_length)

    def add(self, texts: Sequence[str], first_row: int) -> None:
        """Index more texts as rows first_row, first_row + 1, ...; searchable when this returns."""
        _write(self.index, texts, first_row)
        self.index.reload()
        self.searcher = self.index.searcher()

    @classmethod
    def open(cls, directory: str | Path, fuzzy: bool = True, fuzzy_min_length: int = 4) -> LexicalIndex:
        """Open an index written by `build(directory=...)`."""
        index = tantivy.Index.open(str(directory))
        _register_analyzer(index)
        return cls(index, fuzzy, fuzzy_min_length)

    def __len__(self) -> int:
        return int(self.searcher.num_docs)

    def correct(self, token: str) -> list[str]:
        """Index terms within 1 edit (2 for words of 8+ letters) of an unknown word, closest first, most frequent first."""
        budget = 1 if len(token) < 8 else 2
        # Typos rarely hit the first letter; walking only its terms keeps the lookup to a few milliseconds.
        candidates = self.searcher.terms_with_prefix(TEXT_FIELD, token[0])
        scored = []
        for term, count in candidates:
            # Optimal string alignment: an adjacent transposition ("gloevs") counts as one edit.
            distance = OSA.distance(token, term, score_cutoff=budget)
            if distance <= budget:
                scored.append((distance, -count, term))
        scored.sort()
        closest = [term for distance, _, term in scored if distance == scored[0][0]] if scored else []
        return closest[:3]

    def _word_terms(self, query: str) -> list[list[str]]:
        """Per query word with an index term: the word itself, or the corrections of an unknown Latin word."""
        found: list[list[str]] = []
        for token in dict.fromkeys(tokenize(query)):
            known = self.searcher.doc_freq(TEXT_FIELD, token) > 0
            if not known and self.fuzzy and is_latin_word(token) and len(token) >= self.fuzzy_min_length:
                corrections = self.correct(token)
                if corrections:
                    found.append(corrections)
            elif known:
                found.append([token])
        return found

    def query_terms(self, query: str) -> list[str]:
        """The index terms a query searches for: its tokens, with unknown Latin words replaced by their corrections."""
        return list(dict.fromkeys(term for terms in self._word_terms(query) for term in terms))

    def search(self, query: str, k: int = 100, allowed: np.ndarray | None = None, match_all: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows and BM25 scores for a query; `allowed` (a boolean mask over rows) filters them. A row matches
        when it holds any query word, or with `match_all` every word (for a corrected word, any of its corrections)."""
        words = self._word_terms(query)
        if not words:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        occur = tantivy.Occur.Must if match_all else tantivy.Occur.Should
        clauses = [(occur, self._any_of(terms)) for terms in words]
        parsed = tantivy.Query.boolean_query(clauses)
        limit = k
        while True:
            # A filter may reject most hits: fetch more until k survive or the hits run out.
            hits = self.searcher.search(parsed, limit, count=False).hits
            rows = np.asarray(self.searcher.fast_field_values(ROW_FIELD, [address for _, address in hits]), dtype=np.int64)
            scores = np.asarray([score for score, _ in hits], dtype=np.float32)
            if allowed is not None:
                keep = allowed[rows]
                rows, scores = rows[keep], scores[keep]
            if len(rows) >= k or len(hits) < limit:
                return rows[:k], scores[:k]
            limit *= 4

    def _any_of(self, terms: Sequence[str]) -> tantivy.Query:
        queries = [tantivy.Query.term_query(self.schema, TEXT_FIELD, term) for term in terms]
        return queries[0] if len(queries) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Should, query) for query in queries])

    def doc_freq(self, term: str) -> int:
        """How many indexed rows hold an index term."""
        return int(self.searcher.doc_freq(TEXT_FIELD, term))

    def any_holds_all(self, terms: Sequence[str], allowed: np.ndarray | None = None) -> bool:
        """True when some row (among `allowed`, a boolean mask over rows, when given) holds every one of these terms."""
        if not terms:
            return False
        clauses = [(tantivy.Occur.Must, tantivy.Query.term_query(self.schema, TEXT_FIELD, term)) for term in terms]
        parsed = tantivy.Query.boolean_query(clauses)
        limit = 64
        while True:
            hits = self.searcher.search(parsed, limit, count=False).hits
            if allowed is None:
                return bool(hits)
            rows = np.asarray(self.searcher.fast_field_values(ROW_FIELD, [address for _, address in hits]), dtype=np.int64)
            if allowed[rows].any():
                return True
            # The filter rejected every hit so far: look further until the hits run out.
            if len(hits) < limit:
                return False
            limit *= 4
