"""Did-you-mean and zero-result recovery around one engine search: correct unknown words, then relax a query no
item matches in three steps (drop unknown words, drop the rarest words, dense retrieval alone)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from longtail.data.tokenize import is_latin_word, tokenize
from longtail.encode.encoder import encode_queries
from longtail.search.engine import SearchEngine, SearchResults
from longtail.search.filters import SearchFilter

# Which rung of the ladder answered: the query as asked, without the words no item (passing the filters) holds,
# without its rarest words too, or the dense retriever alone.
Step = Literal["as_asked", "unknown_dropped", "rarest_dropped", "dense_only"]


@dataclass
class Recovery:
    """What was done to a query before it was searched: words corrected, words dropped, or a fall back to dense only."""

    searched: str
    corrections: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    step: Step = "as_asked"

    @property
    def dense_only(self) -> bool:
        """True when no word was left and the dense retriever ranked alone."""
        return self.step == "dense_only"

    @property
    def relaxed(self) -> bool:
        """True when the results are not for every word of the (corrected) query."""
        return self.step != "as_asked"


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


def relax(engine: SearchEngine, terms: list[str], visible: np.ndarray | None) -> tuple[list[str], list[str], list[str]]:
    """The terms kept, the terms no visible item holds, and the terms dropped after those, rarest (fewest items in the
    index) first, until what is kept matches as the lexical retriever matches: under `search.match: any` a query
    matches when some visible item holds any of its words, so only the first kind is dropped; under `all`, when some
    visible item holds every kept word. No term is kept when even the commonest matches nothing."""
    held = [term for term in terms if engine.lexical.any_holds_all([term], visible)]
    unheld = [term for term in terms if term not in held]
    kept, rarest = list(held), []
    if engine.config.search.match == "all":
        while kept and not engine.lexical.any_holds_all(kept, visible):
            # The rarest word narrows the match most; ties go to the later word, a shopper's first words being the head.
            word = min(reversed(kept), key=engine.lexical.doc_freq)
            kept.remove(word)
            rarest.append(word)
    return kept, unheld, rarest


def search_with_recovery(
    engine: SearchEngine,
    query: str,
    k: int = 10,
    search_filter: SearchFilter | None = None,
    profile: np.ndarray | None = None,
    correct: bool = True,
) -> tuple[SearchResults, Recovery]:
    """Search with unknown words corrected (unless `correct` is False), relaxing a query that matches nothing among
    the items the shopper may see (filters applied): drop the words no such item holds, then (`search.match: all`)
    the rarest words until some item holds all those left, and with no word left let the dense retriever rank alone.
    A filter no item passes relaxes nothing. The dense side always reads the whole (corrected) query: relaxing
    narrows what must match, never what the query means."""
    terms, corrections, unknown = _terms(engine, query, correct)
    meant = " ".join(corrections.get(word.lower(), word) for word in query.split()) if corrections else query
    visible = engine.visible_rows(search_filter)
    if visible is not None and not visible.any():
        # Nothing passes the filters: dropping words cannot help, and saying the query was relaxed would mislead.
        return engine.search(meant, k, search_filter, profile=profile), Recovery(meant, corrections)
    kept, unheld, rarest = relax(engine, terms, visible)
    dropped = unknown + unheld + rarest
    if not kept:
        results = engine.search(meant, k, search_filter, profile=profile, mode="dense")
        return results, Recovery(meant, corrections, dropped, "dense_only")
    step: Step = "rarest_dropped" if rarest else "unknown_dropped" if dropped else "as_asked"
    searched = " ".join(kept) if dropped else meant
    # The lexical side gets only the kept words (searched as typed, also so the engine corrects nothing itself).
    lexical_text = meant if correct and not dropped else " ".join(kept)
    vector = None if lexical_text == meant else encode_queries(engine.encoder, [meant])
    results = engine.search(lexical_text, k, search_filter, profile=profile, query_vector=vector)
    return results, Recovery(searched, corrections, dropped, step)
