"""Reciprocal-rank fusion order, weight tuning, filter parsing and masks, facet counts."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from longtail.core.errors import LongtailError
from longtail.search.filters import FacetCodes, SearchFilter, allowed_rows, facet_counts, filter_columns, parse_filters
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


def test_facet_codes_count_as_value_counts_and_break_ties_by_first_appearance(catalogue):
    codes = FacetCodes(catalogue, ["category", "brand"])
    generator = np.random.default_rng(5)
    for _ in range(20):
        rows = generator.choice(catalogue.height, size=int(generator.integers(0, 12)), replace=True)
        for field, counted in codes.counts(rows, top=100).items():
            expected = catalogue.get_column(field).gather(rows).drop_nulls().value_counts()
            assert dict(counted) == {str(value): count for value, count in expected.iter_rows()}
            assert [count for _, count in counted] == sorted((count for _, count in counted), reverse=True)
    # Pyrex (rows 0, 6) and Kimble (row 1) twice each: the value of the better-ranked result comes first.
    assert codes.counts(np.array([1, 0, 6, 1]))["brand"] == [("Kimble", 2), ("Pyrex", 2)]
    assert codes.counts(np.array([0, 1, 1, 6]))["brand"] == [("Pyrex", 2), ("Kimble", 2)]
    assert codes.counts(np.array([0, 1, 6]), top=1) == {"category": [("Lab > Glassware", 3)], "brand": [("Pyrex", 2)]}


def test_facet_codes_skip_missing_values_and_fields():
    items = pl.DataFrame({"item_id": ["a", "b", "c"], "brand": ["Acme", None, "Acme"], "price": [1.5, 2.0, 1.5]})
    codes = FacetCodes(items, ["brand", "price", "colour"])
    assert codes.counts(np.array([0, 1, 2])) == {"brand": [("Acme", 2)], "price": [("1.5", 2), ("2.0", 1)]}
