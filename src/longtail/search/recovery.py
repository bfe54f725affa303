"""Did-you-mean and zero-result recovery around one engine search: correct unknown words, drop what matches nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from longtail.data.tokenize import is_latin_word, tokenize
from longtail.encode.encoder import encode_queries
from longtail.search.engine import SearchEngine, SearchResults
from longtail.search.filters import SearchFilter


@dataclass
class Recovery:
    """What was done to a query before it was searched: words corrected, words dropped, or a fall back to dense only."""

    searched: str
    corrections: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    dense_only: bool = False

    @property
    def relaxed(self) -> bool:
        """True when the results are not for every word of the (corrected) query."""
        return bool(self.dropped) or self.dense_only


def _terms(engine: SearchEngine, query: str, correct: bool) -> tuple[list[str], dict[str, str], list[str]]:
    """The query's index terms, the corrections made (typed word -> index term) and the words no item holds."""
    lexical, settings = engine.lexical, engine.config.search
    terms, corrections, unknown = [], {}, []
    for token in dict.fromkeys(tokenize(query)):
        if lexical.doc_freq(token) > 0:
            terms.append(token)
            continue
        closest = lexical.correct(token) if correct and settings.fuzzy and is_latin_word(token) and len(token) >= settings.fuzzy_min_length else []
        if closest:
            corrections[token] = closest[0]
            terms.append(closest[0])
        else:
            unknown.append(token)
    return list(dict.fromkeys(terms)), corrections, unknown


def search_with_recovery(
    engine: SearchEngine,
    query: str,
    k: int = 10,
    search_filter: SearchFilter | None = None,
    profile: np.ndarray | None = None,
    correct: bool = True,
) -> tuple[SearchResults, Recovery]:
    """Search with unknown words corrected (unless `correct` is False); words that match no item even then are
    dropped from the query, and when no word is left the dense retriever ranks alone."""
    terms, corrections, dropped = _terms(engine, query, correct)
    # Lexical retrieval matches any of the words (BM25 over OR), so only a word no item holds can make a query fail;
    # such a word has document frequency 0, the rarest there is. The dense side reads the whole corrected query.
    meant = " ".join(corrections.get(word.lower(), word) for word in query.split()) if corrections else query
    if not terms:
        results = engine.search(meant, k, search_filter, profile=profile, mode="dense")
        return results, Recovery(meant, corrections, dropped, dense_only=True)
    searched = " ".join(terms) if dropped else meant
    # Searched as typed, the lexical side gets only the words the index knows, or the engine would correct the rest.
    lexical_text = meant if correct else " ".join(terms)
    vector = None if lexical_text == meant else encode_queries(engine.encoder, [meant])
    results = engine.search(lexical_text, k, search_filter, profile=profile, query_vector=vector)
    return results, Recovery(searched, corrections, dropped)
