"""Synthetic queries on real Scientific items and Chinese review text: every item gets flagged queries built from its own words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from longtail.augment.queries import category_leaf, generate_queries, join_terms, partial, salient_keywords
from longtail.balance.component import build, run
from longtail.data.adapters import load_dataset
from longtail.data.columns import SYNTHETIC
from longtail.data.tokenize import tokenize


@pytest.fixture(scope="module")
def scientific_items(datasets_root: Path) -> pl.DataFrame:
    return load_dataset("scientific", datasets_root).items.head(400)


def test_scientific_items_get_flagged_queries_from_their_own_words(scientific_items: pl.DataFrame) -> None:
    queries = generate_queries(scientific_items, per_item=3)
    assert queries.columns == ["item_id", "query", "template", SYNTHETIC] and queries[SYNTHETIC].all()
    assert queries["item_id"].n_unique() == scientific_items.height
    assert queries.group_by("item_id").len()["len"].max() == 3
    assert queries.unique(["item_id", "query"]).height == queries.height
    texts = dict(scientific_items.select("item_id", pl.concat_str("title", "category", "brand", separator=" ", ignore_nulls=True)).rows())
    for item_id, query, template in queries.select("item_id", "query", "template").rows():
        words = set(tokenize(texts[item_id]))
        if template != "partial":
            assert set(tokenize(query)) <= words, (item_id, query)


def test_known_scientific_item_queries(scientific_items: pl.DataFrame) -> None:
    queries = generate_queries(scientific_items, per_item=5)
    gorilla = scientific_items.filter(pl.col("title").str.starts_with("Gorilla Original"))["item_id"][0]
    made = dict(queries.filter(pl.col("item_id") == gorilla).select("template", "query").rows())
    assert set(made) >= {"keywords", "category", "partial"}
    assert made["partial"] != made["keywords"] and made["keywords"].startswith(made["partial"])


def test_chinese_text_gives_unspaced_chinese_queries(datasets_root: Path) -> None:
    reviews = load_dataset("zh-reviews", datasets_root).items.filter(pl.col("category") == "热水器").head(150)
    queries = generate_queries(reviews, per_item=2)
    assert queries["item_id"].n_unique() >= 140
    chinese = queries.filter(pl.col("query").str.contains(r"[\u4e00-\u9fff]"))
    assert chinese.height > 0.9 * queries.height
    assert not chinese["query"].str.contains(r"[\u4e00-\u9fff] [\u4e00-\u9fff]").any()
    assert "热水器" in set(queries.filter(pl.col("template") == "category")["query"].str.slice(-3).to_list())


def test_salient_keywords_prefer_distinctive_words_and_skip_contained_terms() -> None:
    texts = ["不锈钢保温杯 500ml 保温杯", "玻璃杯 500ml", "陶瓷杯 500ml"]
    keywords = salient_keywords(texts, top_k=2)
    assert keywords[0][0] == "不锈钢" and "保温杯" in keywords[0] and "保温" not in keywords[0]
    assert join_terms(["stainless", "保温杯"]) == "stainless保温杯" and join_terms(["heat", "shrink"]) == "heat shrink"
    assert partial("heat shrink") == "heat shr" and partial("heat ab") is None
    assert category_leaf("Home > Kitchen > Cups") == "Cups" and category_leaf("Industrial & Scientific Lifting Clamps") == "lifting clamps"


def test_component_adds_queries_only_for_items_without_any(scientific_items: pl.DataFrame) -> None:
    known = pl.DataFrame({"item_id": scientific_items["item_id"].head(10).to_list(), "query": ["real query"] * 10})
    component = build("synthetic-queries", items=scientific_items, per_item=2)
    pairs = run(component, known, seed=0)
    assert pairs.filter(~pl.col(SYNTHETIC)).equals(known.with_columns(pl.lit(False).alias(SYNTHETIC), pl.lit(1.0).alias("weight")))
    generated = pairs.filter(pl.col(SYNTHETIC))
    assert set(generated["item_id"]) == set(scientific_items["item_id"].to_list()[10:])
    assert np.all(generated.group_by("item_id").len()["len"].to_numpy() <= 2)
