"""The audit on real Chinese reviews: the known duplicates and the empty review are found."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from longtail.core.config import LongtailConfig
from longtail.data.adapters import load_dataset
from longtail.data.loaders import to_canonical
from longtail.data.schema import EVENTS, ITEMS
from longtail.quality.audit import audit


@pytest.mark.slow
def test_known_duplicate_and_empty_reviews_are_caught(datasets_root: Path) -> None:
    data = load_dataset("zh-reviews", datasets_root)
    items = to_canonical(data.items, ITEMS, "zh-reviews")
    result = audit(items, to_canonical(data.events, EVENTS, "zh-reviews"), LongtailConfig())
    outcome = result.tables["items"]

    quarantined = outcome.quarantine.select("title", "reason").rows()
    assert quarantined == [(None, "missing_title")]

    # The dataset's README counts 49 reviews that repeat an earlier one verbatim (same category and label).
    raw = data.items.with_columns(pl.col("title").str.strip_chars())
    verbatim = raw.filter(pl.col("title").is_duplicated() & ~pl.col("title").is_first_distinct() & (pl.col("title") != ""))
    assert verbatim.height >= 49
    flagged = outcome.flags.filter(pl.col("reason") == "duplicate_item")["item_id"]
    assert verbatim["item_id"].is_in(flagged.implode()).mean() >= 0.95
    assert outcome.kept.height + outcome.quarantine.height == data.items.height
    assert outcome.kept["title"].str.contains("[\u4e00-\u9fff]").mean() > 0.99


def test_chinese_near_duplicates_are_found_by_characters() -> None:
    items = pl.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "title": ["华为 MateBook 14 笔记本电脑 16G 512G 深空灰", "华为MateBook14笔记本电脑16G 512G 深空灰色", "小米 电饭煲 4L 智能预约"],
        }
    )
    result = audit(to_canonical(items, ITEMS, "t"), to_canonical(pl.DataFrame(schema=EVENTS.columns), EVENTS, "t"), LongtailConfig())
    flags = result.tables["items"].flags.select("item_id", "reason").rows()
    assert flags == [("b", "near_duplicate_item")]
