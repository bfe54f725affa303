"""`evaluate`, `train` and `update` encode item text with the encoder and cache folder the config's `encode` section names."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from longtail.core.config import LongtailConfig
from longtail.data.adapters import load_dataset
from longtail.data.splits import leave_one_out
from longtail.encode.item_text import texts_for
from longtail.pipeline.evaluate_step import evaluate_models
from longtail.pipeline.incremental import (
    hold_back,
    train_model_folder,
    update_model_folder,
)

TINY = {"hidden": 16, "blocks": 1, "heads": 1, "max_len": 10, "epochs": 2, "threads": 1, "text_init": "freeze"}


def _config(cache_dir: Path) -> LongtailConfig:
    return LongtailConfig.model_validate(
        {
            "encode": {"encoder": "minilm-int8", "cache_dir": str(cache_dir)},
            "recommend": {"bootstrap_samples": 50, "sequential": TINY},
            "incremental": {"epochs": 1, "tolerance": 1.0},
        }
    )


def _cached_texts(cache_dir: Path) -> int:
    """How many distinct texts the int8 encoder left in a cache folder."""
    return len((cache_dir / "minilm-int8" / "keys.txt").read_text(encoding="utf-8").split())


@pytest.fixture(scope="module")
def scientific(datasets_root):
    data = load_dataset("scientific", datasets_root)
    users = data.events["user_id"].unique().sort().head(150)
    events = data.events.filter(pl.col("user_id").is_in(users.implode()))
    return data.items.filter(pl.col("item_id").is_in(events["item_id"].unique().implode())), events


def test_evaluate_encodes_with_the_configured_encoder_and_cache(tmp_path, scientific):
    items, events = scientific
    evaluate_models(items, events, ["content"], _config(tmp_path / "cache"), tmp_path / "out")
    item_ids = leave_one_out(items, events).item_ids
    assert _cached_texts(tmp_path / "cache") == len(set(texts_for(item_ids, items)))


def test_train_and_update_encode_with_the_configured_encoder_and_cache(tmp_path, scientific):
    items, events = scientific
    past, new = hold_back(events, 2)
    known = items.filter(pl.col("item_id").is_in(past["item_id"].implode()))
    train_model_folder(known, past, _config(tmp_path / "train-cache"), tmp_path / "model")
    assert _cached_texts(tmp_path / "train-cache") == len(set(texts_for(known["item_id"].to_list(), known)))
    decision = update_model_folder(tmp_path / "model", new, items, _config(tmp_path / "update-cache"))
    # the update encodes the grown catalogue: every item the model knew plus the new ones
    assert decision["items_added"] > 0
    assert _cached_texts(tmp_path / "update-cache") == len(set(texts_for(items["item_id"].to_list(), items)))
