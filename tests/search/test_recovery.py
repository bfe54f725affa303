"""Did-you-mean and zero-result recovery on a tiny real index."""

from __future__ import annotations

import polars as pl
import pytest

from longtail.core.config import LongtailConfig
from longtail.search.engine import SearchEngine
from longtail.search.recovery import search_with_recovery


@pytest.fixture(scope="module")
def engine(catalogue: pl.DataFrame, fast_config: LongtailConfig) -> SearchEngine:
    return SearchEngine.build(catalogue, fast_config)


def test_a_misspelt_word_is_corrected_and_reported(engine: SearchEngine) -> None:
    results, recovery = search_with_recovery(engine, "nitrile gloevs", k=3)
    assert recovery.corrections == {"gloevs": "gloves"}
    assert recovery.searched == "nitrile gloves" and not recovery.relaxed
    assert results.hits[0].item_id == "gloves"


def test_searching_as_typed_makes_no_correction(engine: SearchEngine) -> None:
    _, recovery = search_with_recovery(engine, "nitrile gloevs", k=3, correct=False)
    assert recovery.corrections == {} and recovery.dropped == ["gloevs"]
    assert recovery.searched == "nitrile"


def test_a_word_no_item_holds_is_dropped_and_reported(engine: SearchEngine) -> None:
    # "zqxvw" is in no title and is no typo of an indexed word; "glass" is in three titles.
    results, recovery = search_with_recovery(engine, "glass zqxvw", k=3)
    assert recovery.dropped == ["zqxvw"] and recovery.searched == "glass" and recovery.relaxed
    assert {hit.item_id for hit in results.hits} == {"beaker", "pipette", "flask"}


def test_known_words_are_never_dropped(engine: SearchEngine) -> None:
    # No title holds both words, but each finds items: both stay in the query.
    _, recovery = search_with_recovery(engine, "glass drill", k=3)
    assert not recovery.relaxed and recovery.searched == "glass drill"


def test_when_no_word_is_known_the_dense_retriever_ranks_alone(engine: SearchEngine) -> None:
    results, recovery = search_with_recovery(engine, "qzxv wplk", k=3)
    assert recovery.dense_only and recovery.relaxed
    assert len(results.hits) == 3 and all(hit.lexical_rank is None for hit in results.hits)


def test_a_query_that_matches_is_searched_unchanged(engine: SearchEngine) -> None:
    results, recovery = search_with_recovery(engine, "glass beaker", k=3)
    assert recovery.searched == "glass beaker" and not recovery.relaxed and not recovery.corrections
    assert [hit.item_id for hit in results.hits] == [hit.item_id for hit in engine.search("glass beaker", 3).hits]
