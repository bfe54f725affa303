"""Reciprocal-rank fusion order, weight tuning, filter parsing and masks, facet counts."""

from __future__ import annotations

import numpy as np
import pytest

from longtail.core.errors import LongtailError
from longtail.search.filters import SearchFilter, allowed_rows, facet_counts, filter_columns, parse_filters
from longtail.search.fusion import reciprocal_rank_fusion, tune_fusion


def test_rrf_rewards_rows_that_both_lists_rank_high():
    lexical = np.array([10, 20, 30])
    dense = np.array([20, 40, 10])
    rows, scores = reciprocal_rank_fusion([lexical, dense], k=60)
    # 20: 1/62 + 1/61; 10: 1/61 + 1/63; 40: 1/62; 30: 1/63
    assert rows.tolist() == [20, 10, 40, 30]
    assert scores[0] == pytest.approx(1 / 62 + 1 / 61)


def test_rrf_weights_shift_the_order_and_padding_rows_are_ignored():
    lexical = np.array([1, 2])
    dense = np.array([3, -1])
    assert reciprocal_rank_fusion([lexical, dense], [2.0, 1.0])[0].tolist() == [1, 2, 3]
    assert reciprocal_rank_fusion([lexical, dense], [1.0, 3.0])[0].tolist() == [3, 1, 2]
    assert reciprocal_rank_fusion([np.array([], dtype=np.int64)])[0].tolist() == []


def test_fusion_tuning_picks_the_best_grid_point_and_prefers_the_defaults_on_ties():
    choice = tune_fusion(lambda k, w: -abs(w - 0.5) - abs(k - 10) / 100, ks=(10, 60), weights=(0.5, 1.0, 2.0))
    assert (choice.rrf_k, choice.lexical_weight) == (10, 0.5)
    assert choice.objective == 0.0 and choice.grid[(60, 1.0)] == pytest.approx(-1.0)
    flat = tune_fusion(lambda k, w: 1.0, ks=(10, 60, 100), weights=(0.5, 1.0, 2.0))
    assert (flat.rrf_k, flat.lexical_weight) == (60, 1.0)


def test_parse_filters_reads_category_brand_and_price_range():
    parsed = parse_filters(["category=Lab > Glassware", "brand=Pyrex", "price>=5", "price<=20"])
    assert parsed == SearchFilter(category="Lab > Glassware", brand="Pyrex", price_min=5.0, price_max=20.0)
    assert parse_filters([]).is_empty()
    with pytest.raises(LongtailError, match="bad filter"):
        parse_filters(["colour=red"])
    with pytest.raises(LongtailError, match="price must be a number"):
        parse_filters(["price<=cheap"])


def test_category_filter_includes_subcategories_and_combines_with_price(catalogue):
    mask = allowed_rows(filter_columns(catalogue), SearchFilter(category="lab"))
    assert catalogue.filter(mask)["item_id"].to_list() == ["beaker", "pipette", "gloves", "goggles", "flask"]
    mask = allowed_rows(filter_columns(catalogue), SearchFilter(category="Lab > Glassware", price_max=10))
    assert catalogue.filter(mask)["item_id"].to_list() == ["pipette", "flask"]
    mask = allowed_rows(filter_columns(catalogue), SearchFilter(brand="pyrex", price_min=10))
    assert catalogue.filter(mask)["item_id"].to_list() == ["beaker"]
    assert allowed_rows(filter_columns(catalogue), SearchFilter()) is None
    assert not allowed_rows(filter_columns(catalogue), SearchFilter(category="Lab > Glass")).any()  # a prefix of a word is not a parent


def test_filters_on_columns_a_catalogue_lacks_match_nothing(catalogue):
    bare = catalogue.select("item_id", "title")
    assert not allowed_rows(filter_columns(bare), SearchFilter(brand="pyrex")).any()


def test_facet_counts_count_values_among_result_rows(catalogue):
    facets = facet_counts(catalogue, np.array([0, 1, 6, 2]), ["category", "brand", "missing"])
    assert facets["category"] == [("Lab > Glassware", 3), ("Lab > Safety", 1)]
    assert dict(facets["brand"]) == {"Pyrex": 2, "Kimble": 1, "Ansell": 1}
    assert "missing" not in facets
    assert facet_counts(catalogue, np.array([], dtype=np.int64), ["brand"]) == {"brand": []}
