"""CTGAN on a small real interaction-feature table (Scientific): scarce-class rows with the schema, flagged, and no copies of real rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from longtail.augment.tabular_gan import CtganSynthesis
from longtail.balance.component import run
from longtail.core.errors import ConfigError
from longtail.data.adapters import load_dataset
from longtail.data.columns import SYNTHETIC, WEIGHT
from longtail.data.segments import item_segments


@pytest.fixture(scope="module")
def interactions(datasets_root: Path) -> pl.DataFrame:
    """400 Scientific interactions: user activity, item popularity, department; label = the item's head/torso/tail segment."""
    data = load_dataset("scientific", datasets_root)
    popularity = data.events.group_by("item_id").agg(pl.len().alias("item_interactions")).sort("item_id")
    segment = dict(zip(popularity["item_id"], item_segments(popularity["item_interactions"].to_numpy()), strict=True))
    items = data.items.select("item_id", pl.col("category").str.split(" ").list.get(3, null_on_oob=True).alias("department"))
    return (
        data.events.head(400)
        .with_columns(pl.len().over("user_id").alias("user_events"))
        .join(popularity, on="item_id")
        .join(items, on="item_id")
        .select("user_id", "item_id", "user_events", "item_interactions", "department", pl.col("item_id").replace_strict(segment).alias("label"))
    )


@pytest.mark.slow
def test_ctgan_fills_scarce_classes_with_flagged_new_rows(interactions: pl.DataFrame) -> None:
    sizes = dict(interactions.group_by("label").len().iter_rows())
    assert sizes["head"] > sizes["torso"] > sizes["tail"]
    component = CtganSynthesis(columns=["user_events", "department"], rows_per_class=60, epochs=2, batch_size=100, embedding_dim=16, layer_width=32)
    out = run(component, interactions, seed=0)
    assert out.columns == [*interactions.columns, SYNTHETIC, WEIGHT] and out.drop(SYNTHETIC, WEIGHT).schema == interactions.schema
    assert out.head(interactions.height).drop(SYNTHETIC, WEIGHT).equals(interactions)
    generated = out.filter(pl.col(SYNTHETIC))
    assert set(generated["label"]) == {"torso", "tail"}
    assert all(40 <= count <= 60 for count in generated.group_by("label").len()["len"])  # 60 asked, exact copies of real rows dropped
    assert generated["item_id"].null_count() == generated.height and generated["item_interactions"].null_count() == generated.height
    assert generated.join(interactions, on=["user_events", "department", "label"], how="semi").height == 0
    assert generated["user_events"].min() >= interactions["user_events"].min()
    assert set(generated["department"].drop_nulls()) <= set(interactions["department"].drop_nulls())


def test_ctgan_validates_its_settings(interactions: pl.DataFrame) -> None:
    with pytest.raises(ConfigError, match="multiple of pac"):
        CtganSynthesis(batch_size=105)
    with pytest.raises(ConfigError, match="no rows"):
        CtganSynthesis(classes=["unknown"]).wanted(interactions)
    wanted = CtganSynthesis().wanted(interactions)
    largest = interactions.group_by("label").len()["len"].max()
    assert wanted == {label: largest - n for label, n in interactions.group_by("label").len().iter_rows() if n < largest}
