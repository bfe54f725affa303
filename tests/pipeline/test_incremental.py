"""Incremental job on real users: good new events replace the model (and fusion ranker), corrupted ones are rolled back untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from longtail.core.config import IncrementalConfig, LongtailConfig, RecommendConfig, SequentialConfig
from longtail.data.adapters import load_dataset
from longtail.encode.item_text import texts_for
from longtail.models.fusion import BOOSTER_FILE, STATE_FILE
from longtail.models.sequential import SASRec
from longtail.pipeline.incremental import (
    DECISION_FILE,
    DECISION_LOG,
    HISTORY_FILE,
    ITEMS_FILE,
    MODEL_FILE,
    hold_back,
    load_ranker,
    recent_slice,
    train_model_folder,
    update_model_folder,
)

import builders

TINY = SequentialConfig(hidden=32, blocks=1, heads=1, max_len=20, dropout=0.2, epochs=15, patience=5, lr=3e-3, threads=1)
CONFIG = LongtailConfig(recommend=RecommendConfig(sequential=TINY, bootstrap_samples=200), incremental=IncrementalConfig(epochs=10, lr=1e-2))
RANKED = CONFIG.model_copy(update={"recommend": CONFIG.recommend.model_copy(update={"fusion_candidates": 20, "fusion_trees": 50})})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, datasets_root):
    """800 real users; each one's 3 newest reviews arrive later as new events. The model knows only the older items."""
    data = load_dataset("scientific", datasets_root)
    users = data.events["user_id"].unique().sort().head(800)
    past, new = hold_back(data.events.filter(pl.col("user_id").is_in(users.implode())), 3)
    folder = tmp_path_factory.mktemp("incremental") / "model"
    train_model_folder(data.items.filter(pl.col("item_id").is_in(past["item_id"].implode())), past, CONFIG, folder)
    return data.items, past, new, folder


def _text_encoder(items: pl.DataFrame):
    """Item text as a hashed bag of words: real text vectors without loading a transformer."""
    from sklearn.feature_extraction.text import HashingVectorizer

    hashing = HashingVectorizer(n_features=256, alternate_sign=False)
    return lambda item_ids: hashing.transform(texts_for(item_ids, items)).toarray().astype(np.float32)


@pytest.fixture(scope="module")
def trained_with_ranker(tmp_path_factory, datasets_root):
    """The same 800 users and held-back events; the folder also holds a fusion ranker (50 trees), its catalogue
    the items these users touch."""
    data = load_dataset("scientific", datasets_root)
    users = data.events["user_id"].unique().sort().head(800)
    events = data.events.filter(pl.col("user_id").is_in(users.implode()))
    past, new = hold_back(events, 3)
    folder = tmp_path_factory.mktemp("incremental_ranker") / "model"
    encode = _text_encoder(data.items)
    # the catalogue is the items these users touch: EASE inverts an items x items matrix at every load
    items = data.items.filter(pl.col("item_id").is_in(events["item_id"].implode()))
    train_model_folder(items.filter(pl.col("item_id").is_in(past["item_id"].implode())), past, RANKED, folder, encode, fusion=True)
    return items, new, folder, encode


def _copy(folder, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(folder, target)
    return target


def _digest(folder, names=(MODEL_FILE, ITEMS_FILE, HISTORY_FILE)) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in names}


def _relabel_trained_on(new: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """An id-mapping bug: every trained-on event points at the wrong item (a fixed random relabelling of the catalogue)."""
    ids = items["item_id"].to_list()
    relabel = dict(zip(ids, np.random.default_rng(1).permutation(ids).tolist(), strict=True))
    newest = pl.col("timestamp").rank("ordinal", descending=True).over("user_id") == 1
    return new.with_columns(pl.when(newest).then(pl.col("item_id")).otherwise(pl.col("item_id").replace_strict(relabel)).alias("item_id"))


@pytest.mark.slow
def test_good_new_events_replace_the_model_and_new_items_get_rows(trained, tmp_path) -> None:
    items, past, new, folder = trained
    folder = _copy(folder, tmp_path)
    before = json.loads((folder / ITEMS_FILE).read_text())
    decision = update_model_folder(folder, new, items, CONFIG)
    assert decision["decision"] == "replaced" and decision["new"] > decision["old"]
    assert decision["evaluated_users"] == 800 and decision["held_out_events"] == 800 and decision["trained_events"] == 1600
    after = json.loads((folder / ITEMS_FILE).read_text())
    assert after[: len(before)] == before and len(after) == len(before) + decision["items_added"] > len(before)
    assert SASRec.load(folder).n_items_ == len(after)
    assert pl.read_parquet(folder / HISTORY_FILE).height == past.height + new.height
    written = json.loads((folder / DECISION_FILE).read_text())
    assert written["decision"] == "replaced" and written["config"]["incremental"]["tolerance"] == CONFIG.incremental.tolerance


@pytest.mark.slow
def test_corrupted_new_events_are_rolled_back_and_the_model_stays_untouched(trained, tmp_path) -> None:
    items, _, new, folder = trained
    folder = _copy(folder, tmp_path)
    untouched = _digest(folder)
    decision = update_model_folder(folder, _relabel_trained_on(new, items), items, CONFIG)
    assert decision["decision"] == "rolled_back" and decision["new"] < decision["old"] - decision["tolerance"]
    assert _digest(folder) == untouched
    assert json.loads((folder / DECISION_FILE).read_text())["decision"] == "rolled_back"
    assert len((folder / DECISION_LOG).read_text().splitlines()) == 1


@pytest.mark.slow
def test_good_new_events_replace_the_ranker_with_more_trees(trained_with_ranker, tmp_path) -> None:
    items, new, folder, encode = trained_with_ranker
    folder = _copy(folder, tmp_path)
    decision = update_model_folder(folder, new, items, RANKED, encode)
    part = decision["ranker"]
    assert decision["decision"] == "replaced" and part["passed"] and part["new"] >= part["old"] - part["tolerance"]
    assert part["trees"] == RANKED.recommend.fusion_trees + RANKED.incremental.ranker_trees and part["training_lists"] > 100
    assert json.loads((folder / STATE_FILE).read_text())["trees"] == part["trees"]
    ranker = load_ranker(folder, items, RANKED, encode)
    assert ranker.booster_.num_trees() == part["trees"] and len(ranker.item_ids) == decision["items_before"] + decision["items_added"]
    assert json.loads((folder / DECISION_FILE).read_text())["ranker"]["new"] == part["new"]


@pytest.mark.slow
def test_corrupted_new_events_roll_the_ranker_back_byte_for_byte(trained_with_ranker, tmp_path) -> None:
    items, new, folder, encode = trained_with_ranker
    folder = _copy(folder, tmp_path)
    names = (MODEL_FILE, ITEMS_FILE, HISTORY_FILE, BOOSTER_FILE, STATE_FILE)
    untouched = _digest(folder, names)
    decision = update_model_folder(folder, _relabel_trained_on(new, items), items, RANKED, encode)
    part = decision["ranker"]
    assert decision["decision"] == "rolled_back" and not part["passed"] and part["new"] < part["old"] - part["tolerance"]
    assert _digest(folder, names) == untouched


def _frame(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    """Views from (user, item, hours after the start) rows."""
    return builders.events([(user, item, "view") for user, item, _ in rows], at=[timedelta(hours=hours) for *_, hours in rows])


def test_hold_back_and_recent_slices() -> None:
    events = _frame([("a", "i1", 1), ("a", "i2", 2), ("b", "i3", 5), ("a", "i4", 3), ("b", "i5", 9), ("b", "i6", 7)])
    past, new = hold_back(events, 1)
    assert new["item_id"].to_list() == ["i4", "i5"] and past["item_id"].to_list() == ["i1", "i2", "i3", "i6"]
    same_time = _frame([("a", "i1", 1), ("a", "i2", 1), ("a", "i3", 1)])
    assert hold_back(same_time, 1)[1]["item_id"].to_list() == ["i3"]  # equal times: the later row is the newer
    train, recent = recent_slice(events, IncrementalConfig(holdout="last"))
    assert sorted(recent["item_id"].to_list()) == ["i4", "i5"] and train.height == 4
    train, recent = recent_slice(events, IncrementalConfig(holdout="time", holdout_share=0.34))
    assert recent["item_id"].to_list() == ["i5", "i6"] and train["item_id"].to_list() == ["i1", "i2", "i3", "i4"]
