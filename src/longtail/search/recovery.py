"""Did-you-mean and zero-result recovery around one engine search: correct unknown words, relax what matches nothing."""

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
    unknown: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    dense_only: bool = False

    @property
    def relaxed(self) -> bool:
        """True when the results are not for every word of the (corrected) query."""
        return bool(self.dropped) or self.dense_only


def _terms(engine: SearchEngine, query: str, correct: bool) -> tuple[list[str], dict[str, str], list[str]]:
    """The query's index terms, the corrections made (typed word -> index term) and words with no index term."""
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
    """Search with unknown words corrected (unless `correct` is False); when no item holds every remaining word, drop
    the rarest words until some item does, and when no word is left, rank by the dense retriever alone."""
    terms, corrections, unknown = _terms(engine, query, correct)
    dropped: list[str] = []
    # The rarest word is the most restrictive one, and the least likely to be what most shoppers meant.
    while terms and not engine.lexical.any_holds_all(terms):
        rarest = min(terms, key=lambda term: (engine.lexical.doc_freq(term), term))
        terms.remove(rarest)
        dropped.append(rarest)
    if not terms:
        results = engine.search(query, k, search_filter, profile=profile, mode="dense")
        return results, Recovery(query, corrections, unknown, dropped, dense_only=True)
    # The engine would correct typos itself, so a query searched as typed passes on only the words the index knows.
    unchanged = not corrections and not dropped and (correct or not unknown)
    searched = query if unchanged else " ".join(terms)
    # Searching as typed: the dense retriever still reads the words exactly as the shopper wrote them.
    vector = encode_queries(engine.encoder, [query]) if not correct else None
    results = engine.search(searched, k, search_filter, profile=profile, query_vector=vector)
    return results, Recovery(searched, corrections, unknown, dropped)
