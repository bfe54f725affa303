"""Did-you-mean and zero-result recovery on a tiny real index."""

from __future__ import annotations

import polars as pl
import pytest

from longtail.core.config import LongtailConfig
from longtail.search.engine import SearchEngine
from longtail.search.filters import SearchFilter
from longtail.search.recovery import search_with_recovery


@pytest.fixture(scope="module")
def engine(catalogue: pl.DataFrame, fast_config: LongtailConfig) -> SearchEngine:
    return SearchEngine.build(catalogue, fast_config)


@pytest.fixture(scope="module")
def strict_engine(catalogue: pl.DataFrame, fast_config: LongtailConfig) -> SearchEngine:
    """An engine whose lexical side matches only items holding every query word (`search.match: all`)."""
    return SearchEngine.build(catalogue, fast_config.model_copy(update={"search": fast_config.search.model_copy(update={"match": "all"})}))


def test_a_misspelt_word_is_corrected_and_reported(engine: SearchEngine) -> None:
    results, recovery = search_with_recovery(engine, "nitrile gloevs", k=3)
    assert recovery.corrections == {"gloevs": "gloves"}
    assert recovery.searched == "nitrile gloves" and not recovery.relaxed
    assert results.hits[0].item_id == "gloves"


def test_searching_as_typed_makes_no_correction(engine: SearchEngine) -> None:
    _, recovery = search_with_recovery(engine, "nitrile gloevs", k=3, correct=False)
    assert recovery.corrections == {} and recovery.dropped == ["gloevs"] and recovery.step == "unknown_dropped"
    assert recovery.searched == "nitrile"


def test_a_word_no_item_holds_is_dropped_and_reported(engine: SearchEngine) -> None:
    # "zqxvw" is in no title and is no typo of an indexed word; "glass" is in three titles.
    results, recovery = search_with_recovery(engine, "glass zqxvw", k=3)
    assert recovery.dropped == ["zqxvw"] and recovery.searched == "glass" and recovery.step == "unknown_dropped"
    assert {hit.item_id for hit in results.hits} == {"beaker", "pipette", "flask"}


def test_when_no_item_holds_every_word_the_rarest_words_are_dropped_until_one_does(strict_engine: SearchEngine) -> None:
    # "pipette" is in 1 title, "borosilicate" in 2, "glass" in 3; no title holds all three, two hold the last two.
    results, recovery = search_with_recovery(strict_engine, "borosilicate glass pipette", k=3)
    assert recovery.step == "rarest_dropped" and recovery.dropped == ["pipette"] and recovery.searched == "borosilicate glass"
    # BM25 matches only items holding both kept words; the dense side still reads all three.
    assert {hit.item_id for hit in results.hits if hit.lexical_rank is not None} == {"beaker", "flask"}
    # Two words in no common title: the rarer goes ("drill", 1 title), the commoner stays ("glass", 3).
    _, recovery = search_with_recovery(strict_engine, "glass drill", k=3)
    assert recovery.dropped == ["drill"] and recovery.searched == "glass"
    # A query some item matches whole is searched as asked.
    _, recovery = search_with_recovery(strict_engine, "borosilicate glass beaker", k=3)
    assert not recovery.relaxed
    # A corrected word must match too (as any of its corrections).
    results, recovery = search_with_recovery(strict_engine, "borosilcate glass", k=3)
    assert recovery.corrections == {"borosilcate": "borosilicate"} and not recovery.relaxed
    assert {hit.item_id for hit in results.hits if hit.lexical_rank is not None} == {"beaker", "flask"}


def test_unknown_words_go_first_then_the_rarest(strict_engine: SearchEngine) -> None:
    _, recovery = search_with_recovery(strict_engine, "zqxvw borosilicate pipette", k=3)
    assert recovery.dropped == ["zqxvw", "pipette"] and recovery.searched == "borosilicate" and recovery.step == "rarest_dropped"


def test_partial_matches_are_results_when_any_word_matches(engine: SearchEngine) -> None:
    # Under `search.match: any` (BM25 over any word) items holding some of the words are results: nothing is relaxed,
    # so the rarest, telling word ("pipette") still ranks its item first.
    results, recovery = search_with_recovery(engine, "borosilicate glass pipette", k=3)
    assert not recovery.relaxed and recovery.searched == "borosilicate glass pipette"
    assert next(hit for hit in results.hits if hit.lexical_rank == 1).item_id == "pipette"


def test_words_only_filtered_out_items_hold_fall_back_to_dense_within_the_filter(engine: SearchEngine) -> None:
    # "glass" is in three Lab titles and no Tools title: under the Tools filter nothing holds it.
    tools = SearchFilter(category="Tools")
    results, recovery = search_with_recovery(engine, "glass", k=3, search_filter=tools)
    assert recovery.step == "dense_only" and recovery.dropped == ["glass"]
    assert len(results.hits) == 3 and {hit.item_id for hit in results.hits} <= {"caliper", "drill", "tape"}
    # Within the Lab filter the same query matches as asked; under Tools only "drill" is left of "glass drill".
    _, recovery = search_with_recovery(engine, "glass", k=3, search_filter=SearchFilter(category="Lab"))
    assert not recovery.relaxed
    results, recovery = search_with_recovery(engine, "glass drill", k=3, search_filter=tools)
    assert recovery.step == "unknown_dropped" and recovery.dropped == ["glass"] and recovery.searched == "drill"
    assert next(hit for hit in results.hits if hit.lexical_rank == 1).item_id == "drill"


def test_a_filter_no_item_passes_is_not_a_reason_to_relax(engine: SearchEngine) -> None:
    results, recovery = search_with_recovery(engine, "glass beaker", k=3, search_filter=SearchFilter(category="Garden"))
    assert results.hits == [] and not recovery.relaxed and recovery.dropped == []


def test_personalisation_never_relaxes_a_query_that_matches(engine: SearchEngine) -> None:
    profile = engine.profile_vector(item_ids=["drill"])
    results, recovery = search_with_recovery(engine, "glass beaker", k=3, profile=profile)
    assert not recovery.relaxed and results.personalised and results.hits[0].item_id == "beaker"


def test_when_no_word_is_known_the_dense_retriever_ranks_alone(engine: SearchEngine) -> None:
    results, recovery = search_with_recovery(engine, "qzxv wplk", k=3)
    assert recovery.dense_only and recovery.step == "dense_only" and recovery.dropped == ["qzxv", "wplk"]
    assert len(results.hits) == 3 and all(hit.lexical_rank is None for hit in results.hits)


def test_a_query_that_matches_is_searched_unchanged(engine: SearchEngine) -> None:
    results, recovery = search_with_recovery(engine, "glass beaker", k=3)
    assert recovery.searched == "glass beaker" and not recovery.relaxed and not recovery.corrections
    assert [hit.item_id for hit in results.hits] == [hit.item_id for hit in engine.search("glass beaker", 3).hits]
