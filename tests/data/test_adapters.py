"""Dataset adapters reproduce the published sizes of the public datasets."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from longtail.core.errors import InputDataError
from longtail.data.adapters import load_dataset
from longtail.data.schema import EVENTS, ITEMS


@pytest.mark.parametrize(
    ("name", "users", "items", "interactions"),
    [
        ("beauty", 22_363, 12_101, 198_502),
        ("sports", 35_598, 18_357, 296_337),
        ("toys", 19_412, 11_924, 167_597),
        ("gram-beauty", 22_363, 12_101, 198_502),
        ("gram-toys", 19_412, 11_924, 167_597),
        ("scientific", 8_442, 4_385, 59_384),
    ],
)
def test_sequence_datasets_match_published_sizes(datasets_root: Path, name: str, users: int, items: int, interactions: int) -> None:
    data = load_dataset(name, datasets_root)
    assert data.events.height == interactions
    assert data.events["user_id"].n_unique() == users
    assert data.items.height == items
    assert data.items.schema == ITEMS.columns
    assert data.events.schema == EVENTS.columns
    assert set(data.events["item_id"].unique()) <= set(data.items["item_id"])


def test_beauty_and_toys_items_read_as_their_real_titles(datasets_root: Path) -> None:
    beauty = load_dataset("beauty", datasets_root).items.sort(pl.col("item_id").cast(pl.Int64))
    first = beauty.row(0, named=True)
    assert first["title"] == "OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce"
    assert first["category"] == "Beauty > Makeup > Nails > Nail Polish" and first["brand"] is None
    # the 7 items without a title in the source keep their attribute tokens rather than an empty text
    assert beauty.filter(pl.col("title").str.starts_with("attr")).height == 7
    toys = load_dataset("toys", datasets_root).items
    assert toys.filter(pl.col("item_id") == "2")["title"].item() == "LEGO Star Wars Clone Troopers vs Droidekas 75000"
    assert toys["brand"].null_count() == toys.height


def test_sequence_order_is_kept_in_timestamps(datasets_root: Path) -> None:
    events = load_dataset("beauty", datasets_root).events
    first_user = events.filter(pl.col("user_id") == "1")
    assert first_user["item_id"].to_list() == ["1", "2", "3", "4", "5"]
    assert first_user["timestamp"].is_sorted()


def test_scientific_splits_title_category_brand(datasets_root: Path) -> None:
    items = load_dataset("scientific", datasets_root).items
    glue = items.filter(pl.col("item_id") == "B0000223UV").row(0, named=True)
    assert glue["title"].startswith("Gorilla Original Gorilla Glue")
    assert glue["brand"] == "Gorilla"
    assert glue["category"].startswith("Industrial & Scientific")


def test_chinese_reviews_keep_unicode_and_categories(datasets_root: Path) -> None:
    items = load_dataset("zh-reviews", datasets_root).items
    assert items.height == 62_774
    counts = dict(items.group_by("category").len().iter_rows())
    assert counts["平板"] == 10_000 and counts["热水器"] == 575
    assert items["title"].str.contains("[\u4e00-\u9fff]").mean() > 0.99


def test_unknown_dataset_lists_the_known_ones(datasets_root: Path) -> None:
    with pytest.raises(InputDataError, match="known: beauty"):
        load_dataset("imagenet", datasets_root)
