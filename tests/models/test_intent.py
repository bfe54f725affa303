"""Intent model: label definitions, no leakage from the predicted event, the next-action head on a typed log, save/load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from longtail.core.config import IntentConfig
from longtail.data.adapters import load_dataset
from longtail.models.intent import (
    ACTIONS,
    FEATURES,
    IntentModel,
    intent_table,
    latest_step_baseline,
    majority_baseline,
    step_intents,
)
from longtail.pipeline.intent_step import assign_users

import builders

START = datetime(2024, 3, 1, tzinfo=UTC)


def _events(rows: list[tuple[str, str | None, str]], minutes: int = 5) -> pl.DataFrame:
    """Canonical events from (user, item, event_type) in time order per user."""
    return builders.events(rows, start=START, step=timedelta(minutes=minutes))


ITEMS = builders.items(
    ["a", "b", "c", "d", "e"],
    title=["drill", "other drill", "saw", "glue", "tape"],
    category=["tools > drills", "tools > drills", "tools > saws", "adhesives", None],
    brand=["Acme", "Bosk", "Acme", "Gluco", None],
)


def test_step_intents_follow_the_documented_definition() -> None:
    events = _events(
        [("u", "a", "view"), ("u", "b", "view"), ("u", "c", "view"), ("u", "d", "view"), ("u", None, "search"), ("u", "b", "purchase"), ("u", "e", "view")]
    )
    steps = step_intents(ITEMS, events, window=5)
    # a: nothing before; b: same category as a, new brand; c: brand Acme seen (a); d: new category and brand;
    # search: no item; b again: repeat item; e: unknown category and brand
    assert steps["intent"].to_list() == ["browse", "compare", "buy", "browse", None, "buy", "browse"]
    assert steps["action"].to_list() == ["view", "view", "view", "view", "search", "purchase", "view"]


def test_compare_looks_only_at_the_recent_window() -> None:
    events = _events([("u", "a", "view"), ("u", "d", "view"), ("u", "e", "view"), ("u", "b", "view")])
    assert step_intents(ITEMS, events, window=3)["intent"].to_list()[-1] == "compare"
    assert step_intents(ITEMS, events, window=2)["intent"].to_list()[-1] == "browse"


@pytest.fixture(scope="module")
def scientific_slice(datasets_root):
    data = load_dataset("scientific", datasets_root)
    users = data.events["user_id"].unique().sort().head(400)
    return data.items, data.events.filter(pl.col("user_id").is_in(users.implode()))


def test_features_never_see_the_event_they_predict(scientific_slice) -> None:
    items, events = scientific_slice
    config = IntentConfig()
    popularity = dict(events["item_id"].value_counts().iter_rows())
    full = intent_table(items, events, config, popularity)
    # change every user's last event to an item of a category and brand none of them has: only that row's label may move
    last = events.with_row_index("row").group_by("user_id").agg(pl.col("row").max())["row"]
    stranger = items.filter(pl.col("category").is_not_null() & pl.col("brand").is_not_null())["item_id"][0]
    changed_events = (
        events.with_row_index("row")
        .with_columns(pl.when(pl.col("row").is_in(last.implode())).then(pl.lit(stranger)).otherwise(pl.col("item_id")).alias("item_id"))
        .drop("row")
    )
    changed = intent_table(items, changed_events, config, popularity)
    assert full.select("user_id", "position", *FEATURES).equals(changed.select("user_id", "position", *FEATURES))
    is_last = full.with_columns((pl.col("position") == pl.col("position").max().over("user_id")).alias("last"))["last"]
    assert full.filter(~is_last)["intent"].equals(changed.filter(~is_last)["intent"])
    assert (full.filter(is_last)["intent"] != changed.filter(is_last)["intent"]).sum() > 20
    # and dropping the future entirely leaves every earlier row as it was
    truncated = intent_table(items, events.with_row_index("row").filter(~pl.col("row").is_in(last.implode())).drop("row"), config, popularity)
    assert truncated.equals(full.filter(~is_last))


def test_table_shape_labels_and_a_single_event_type(scientific_slice) -> None:
    items, events = scientific_slice
    table = intent_table(items, events, IntentConfig(min_history=3))
    per_user = events.group_by("user_id").len()
    assert table.height == int(np.maximum(per_user["len"].to_numpy() - 3, 0).sum())
    assert table["position"].min() == 3 and set(table["intent"].unique()) == {"browse", "compare", "buy"}
    assert table["next_action"].unique().to_list() == ["purchase"]  # reviews count as purchases
    model = IntentModel(IntentConfig(trees=20, threads=1)).fit(table)
    assert model.evaluable("intent") and not model.evaluable("next_action")
    assert set(model.predict(table.head(50), "next_action")) == {"purchase"}


def _typed_log(users: int, seed: int) -> pl.DataFrame:
    """A shop's funnel: search -> view -> (view | click) -> add_to_cart -> purchase, with seeded noise."""
    generator = np.random.default_rng(seed)
    follows = {
        "search": (["view", "search"], [0.85, 0.15]),
        "view": (["view", "click", "search"], [0.3, 0.6, 0.1]),
        "click": (["add_to_cart", "view"], [0.7, 0.3]),
        "add_to_cart": (["purchase", "view"], [0.75, 0.25]),
        "purchase": (["search"], [1.0]),
    }
    rows = []
    for user in range(users):
        action = "search"
        for _ in range(10):
            item = None if action == "search" else str(generator.choice(list(ITEMS["item_id"])))
            rows.append((f"u{user}", item, action))
            choices, weights = follows[action]
            action = str(generator.choice(choices, p=weights))
    return _events(rows, minutes=2)


def test_next_action_head_learns_a_typed_event_log() -> None:
    events = _typed_log(300, seed=7)
    table = intent_table(ITEMS, events, IntentConfig()).join(assign_users(events["user_id"].to_list(), 0.3, 0.1, 42), on="user_id")
    train, valid, test = (table.filter(pl.col("role") == role) for role in ("train", "valid", "test"))
    model = IntentModel(IntentConfig(trees=60, min_child_samples=10, threads=1)).fit(train, valid)
    assert model.evaluable("next_action") and set(model.classes_["next_action"]) == set(ACTIONS)
    truth = np.array(test["next_action"].to_list())
    accuracy = float(np.mean(np.array(model.predict(test, "next_action")) == truth))
    majority = majority_baseline(train["next_action"], test.height, "next_action")
    majority_accuracy = float(np.mean(np.array(ACTIONS)[majority.argmax(axis=1)] == truth))
    # the funnel's best possible accuracy is about 0.7; always guessing the commonest action gets about 0.3
    assert accuracy > majority_accuracy + 0.25
    latest = latest_step_baseline(test, majority[0], "next_action")
    assert np.all(latest[test["latest_action"].to_numpy() == ACTIONS.index("click"), ACTIONS.index("click")] == 1.0)


def test_save_and_load_predict_identically(tmp_path, scientific_slice) -> None:
    items, events = scientific_slice
    table = intent_table(items, events, IntentConfig())
    model = IntentModel(IntentConfig(trees=30, threads=1)).fit(table.head(2000), table.tail(600))
    restored = IntentModel.load(model.save(tmp_path / "intent.json"))
    np.testing.assert_allclose(restored.predict_proba(table, "intent"), model.predict_proba(table, "intent"))
    assert restored.predict(table, "intent") == model.predict(table, "intent")
    assert restored.decision_weights_ == model.decision_weights_


def test_a_weight_column_weights_the_loss(scientific_slice) -> None:
    items, events = scientific_slice
    table = intent_table(items, events, IntentConfig())
    config = IntentConfig(trees=40, threads=1)
    plain = IntentModel(config).fit(table).predict_proba(table)[:, 1]
    # a balancing component could up-weight the rare class: compare rows count five times
    weighted = table.with_columns(pl.when(pl.col("intent") == "compare").then(5.0).otherwise(1.0).alias("weight"))
    boosted = IntentModel(config).fit(weighted).predict_proba(table)[:, 1]
    assert boosted.mean() > 2 * plain.mean()
