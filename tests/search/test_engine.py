"""The hybrid engine end to end on tiny catalogues: fused order, filters, facets, personalisation, persistence, Chinese."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import polars as pl
import pytest

from longtail.core.config import LongtailConfig
from longtail.core.errors import LongtailError
from longtail.data.adapters import load_dataset
from longtail.search.engine import SearchEngine, SearchResults, recent_items_by_user
from longtail.search.filters import SearchFilter

import builders


@pytest.fixture(scope="module")
def engine(catalogue, fast_config) -> SearchEngine:
    return SearchEngine.build(catalogue, fast_config)


def _ids(results: SearchResults) -> list[str]:
    return [hit.item_id for hit in results.hits]


def test_hybrid_puts_items_both_retrievers_agree_on_first(engine):
    results = engine.search("glass beaker", k=3)
    assert _ids(results)[0] == "beaker"
    top = results.hits[0]
    assert top.lexical_rank == 1 and top.dense_rank == 1
    assert all(a.score >= b.score for a, b in pairwise(results.hits))


def test_dense_finds_items_that_share_no_word_with_the_query(engine):
    assert _ids(engine.search("latex hand protection", k=1, mode="lexical")) == []
    assert _ids(engine.search("latex hand protection", k=1, mode="dense")) == ["gloves"]
    assert _ids(engine.search("latex hand protection", k=1)) == ["gloves"]


def test_typo_query_still_finds_the_item(engine):
    results = engine.search("erlenmayer flsk", k=1)
    assert _ids(results) == ["flask"]
    assert results.query_terms == ["erlenmeyer", "flask"]


def test_filters_apply_to_both_retrievers_and_facets_count_the_results(engine):
    results = engine.search("glass", k=10, search_filter=SearchFilter(category="Lab > Glassware", price_max=10))
    assert sorted(_ids(results)) == ["flask", "pipette"]
    assert sorted(results.facets["brand"]) == [("Kimble", 1), ("Pyrex", 1)]
    assert results.facets["category"] == [("Lab > Glassware", 2)]


def test_profile_of_recent_items_reorders_candidates_without_adding_new_ones(catalogue, fast_config):
    events = builders.events([("tools_fan", "drill", "view"), ("tools_fan", "caliper", "purchase"), ("tools_fan", "tape", "click")])
    engine = SearchEngine.build(catalogue, fast_config, events=events)
    plain = engine.search("steel measuring", k=8, mode="lexical")
    personal = engine.search("steel measuring", k=8, mode="lexical", user_id="tools_fan")
    assert personal.personalised and not plain.personalised
    assert set(_ids(personal)) == set(_ids(plain))
    assert engine.profile_vector("nobody") is None
    assert engine.search("steel", user_id="nobody").personalised is False


def test_recent_items_keep_the_newest_and_skip_searches():
    events = builders.events([("u", "a", "view"), ("u", None, "search"), ("u", "b", "click"), ("u", "c", "view")])
    assert recent_items_by_user(events, 2)["item_id"].to_list() == ["c", "b"]


def test_index_folder_round_trips(catalogue, fast_config, tmp_path):
    built = SearchEngine.build(catalogue, fast_config, directory=tmp_path / "index")
    reopened = SearchEngine.open(tmp_path / "index")
    assert reopened.config == fast_config
    assert _ids(reopened.search("safety goggles", k=3)) == _ids(built.search("safety goggles", k=3))
    with pytest.raises(LongtailError, match="not a search index"):
        SearchEngine.open(tmp_path)


def test_duplicate_item_ids_are_refused(catalogue, fast_config):
    with pytest.raises(LongtailError, match="unique"):
        SearchEngine.build(pl.concat([catalogue, catalogue.head(1)]), fast_config)


@pytest.mark.slow
def test_chinese_reviews_are_found_from_chinese_queries_lexically_and_densely(datasets_root):
    reviews = load_dataset("zh-reviews", datasets_root).items
    # A balanced slice of real Chinese shop texts, 12 per category, plus hand-made product titles to look for.
    sample = reviews.filter(pl.col("title").str.len_chars().is_between(8, 60)).group_by("category", maintain_order=True).head(12)
    titles = pl.DataFrame(
        {
            "item_id": ["t-earbuds", "t-cup", "t-apple"],
            "title": ["无线蓝牙耳机 主动降噪 超长续航", "不锈钢真空保温杯 500毫升 男女通用", "烟台红富士苹果 新鲜水果 5斤装"],
            "category": ["数码", "家居", "水果"],
        }
    )
    items = pl.concat([sample.select("item_id", "title", "category"), titles])
    config = LongtailConfig.model_validate({"encode": {"encoder": "e5-multilingual", "cache_dir": None}})
    engine = SearchEngine.build(items, config)
    assert _ids(engine.search("蓝牙耳机", k=1, mode="lexical")) == ["t-earbuds"]
    assert _ids(engine.search("保温杯", k=1, mode="lexical")) == ["t-cup"]
    # Dense: a paraphrase sharing few words with the title.
    assert "t-earbuds" in _ids(engine.search("降噪耳塞", k=3, mode="dense"))
    assert "t-apple" in _ids(engine.search("新鲜的苹果", k=3, mode="dense"))
    assert _ids(engine.search("保温水杯", k=1))[0] == "t-cup"
    hotel = engine.search("酒店 房间 干净", k=10, mode="lexical")
    assert np.mean([engine.items["category"][hit.row] == "酒店" for hit in hotel.hits]) >= 0.7


def test_rebuilding_with_a_cache_encodes_nothing_new(catalogue, tmp_path):
    config = LongtailConfig.model_validate({"encode": {"encoder": "minilm-int8", "cache_dir": str(tmp_path / "cache")}})
    first = SearchEngine.build(catalogue, config)
    assert first.encoder.encoded_last_call == catalogue.height
    changed = catalogue.with_columns(pl.when(pl.col("item_id") == "tape").then(pl.lit("Measuring tape 8 m")).otherwise(pl.col("title")).alias("title"))
    second = SearchEngine.build(changed, config)
    assert second.encoder.encoded_last_call == 1  # only the edited title
    np.testing.assert_array_equal(second.dense.vectors[0], first.dense.vectors[0])
    assert _ids(second.search("erlenmeyer", k=1)) == ["flask"]
