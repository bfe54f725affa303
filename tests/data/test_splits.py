"""Leave-one-out and temporal splits: exact hold-outs and no leakage of held-out items into training."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from longtail.core.config import RecommendConfig
from longtail.core.errors import LongtailError
from longtail.data.adapters import load_dataset, sequences_to_events
from longtail.data.splits import hold_out_new_items, leave_one_out, split_events, temporal_split
from longtail.evaluate.harness import evaluate_split

import builders


def test_leave_one_out_holds_out_last_two_items_in_time_order() -> None:
    events = sequences_to_events({"u1": ["a", "b", "c", "d"], "u2": ["c", "a", "b"], "u3": ["a", "b"]})
    split = leave_one_out(builders.items(["a", "b", "c", "d", "e"]), events.reverse())

    def names(indices: np.ndarray) -> list[str]:
        return [split.item_ids[i] for i in indices]

    by_user = dict(zip(split.user_ids, range(len(split.user_ids)), strict=True))
    u1, u2, u3 = by_user["u1"], by_user["u2"], by_user["u3"]
    assert names(split.train[u1]) == ["a", "b"] and names(split.valid[u1]) == ["c"] and names(split.test[u1]) == ["d"]
    assert names(split.train[u2]) == ["c"] and names(split.valid[u2]) == ["a"] and names(split.test[u2]) == ["b"]
    assert names(split.histories("test")[u1]) == ["a", "b", "c"]
    assert names(split.histories("valid")[u1]) == ["a", "b"]
    # too short to evaluate: kept whole for training, no targets
    assert names(split.train[u3]) == ["a", "b"] and len(split.valid[u3]) == 0 and len(split.test[u3]) == 0
    assert split.n_items == 5 and split.train_counts()[split.item_ids.index("e")] == 0


def test_leave_one_out_on_beauty_reassembles_every_sequence(datasets_root) -> None:
    data = load_dataset("beauty", datasets_root)
    split = leave_one_out(data.items, data.events)
    assert len(split.user_ids) == 22363 and split.n_items == 12101
    assert sum(map(len, split.train)) + sum(map(len, split.valid)) + sum(map(len, split.test)) == 198502
    first_line = (datasets_root / "amazon-s3rec" / "Beauty.txt").read_text().splitlines()[0].split()
    user = split.user_ids.index(first_line[0])
    rebuilt = [split.item_ids[i] for i in np.concatenate([split.train[user], split.valid[user], split.test[user]])]
    assert rebuilt == first_line[1:]


def test_new_item_split_keeps_held_out_items_out_of_every_model_input(datasets_root) -> None:
    data = load_dataset("scientific", datasets_root)
    split = leave_one_out(data.items, data.events)
    inductive = hold_out_new_items(split, share=0.1, seed=7)
    new = inductive.new_items
    assert new is not None and new.sum() == round(0.1 * split.n_items)
    for stage in ("valid", "test"):
        assert not any(new[history].any() for history in inductive.histories(stage))
    assert not any(new[targets].any() for targets in inductive.valid)
    assert inductive.train_counts()[new].sum() == 0
    # test targets are untouched, so some of them are new items, and every other interaction is kept in order
    assert all(np.array_equal(a, b) for a, b in zip(inductive.test, split.test, strict=True))
    assert 0 < sum(int(new[t].sum()) for t in inductive.test) < len(split.user_ids)
    user = next(u for u, history in enumerate(split.train) if new[history].any())
    assert inductive.train[user].tolist() == [i for i in split.train[user] if not new[i]]
    assert inductive.subset(np.array([user])).new_items is new
    assert hold_out_new_items(split, 0.1, seed=7).new_items.tolist() == new.tolist()


def test_new_items_segment_scores_only_targets_that_are_new() -> None:
    events = sequences_to_events({"u1": ["a", "b", "c", "d"], "u2": ["b", "a", "c", "e"], "u3": ["a", "c", "b", "d"]})
    split = leave_one_out(builders.items(["a", "b", "c", "d", "e"]), events)
    # "d" is only ever a test target (of u1 and u3), so holding it out changes no model input
    split = replace(split, new_items=np.array([item == "d" for item in split.item_ids]))

    def scorer(histories: list[np.ndarray]) -> np.ndarray:
        return np.tile(np.asarray(split.new_items, dtype=np.float32), (len(histories), 1))

    evaluation = evaluate_split(scorer, split, "test", RecommendConfig(ks=[1]))
    assert evaluation.segments["new_items"]["users"] == 2 and evaluation.segments["new_items"]["HR@1"] == 1.0
    # u2's target "e" ties with every other item at 0 and ties count against the target
    assert evaluation.metrics["HR@1"] == 2 / 3


def test_temporal_split_keeps_the_future_out_of_training() -> None:
    days = [*range(10), 9, 0]
    users = ["u1"] * 10 + ["u2", "u2"]
    events = builders.events([(user, f"i{day}", "view") for user, day in zip(users, days, strict=True)], at=[timedelta(days=day) for day in days])
    split = temporal_split(builders.items([f"i{d}" for d in range(10)]), events, valid_share=0.25, test_share=0.25)
    u1, u2 = split.user_ids.index("u1"), split.user_ids.index("u2")
    # 12 sorted times (days 0,0,1,...,8,9,9): the lower 50% and 75% quantiles fall on days 4 and 7
    assert [split.item_ids[i] for i in split.train[u1]] == [f"i{d}" for d in range(4)]
    assert sorted(split.item_ids[i] for i in split.valid[u1]) == ["i4", "i5", "i6"]
    assert sorted(split.item_ids[i] for i in split.test[u1]) == ["i7", "i8", "i9"]
    assert [split.item_ids[i] for i in split.train[u2]] == ["i0"] and [split.item_ids[i] for i in split.test[u2]] == ["i9"]
    assert split.protocol.startswith("temporal")


def test_split_rejects_unknown_protocol_and_bad_shares() -> None:
    events = sequences_to_events({"u": ["a", "b", "c"]})
    with pytest.raises(LongtailError, match="unknown split protocol"):
        split_events(builders.items(["a", "b", "c"]), events, "random")  # type: ignore[arg-type]
    with pytest.raises(LongtailError, match="sum to less than 1"):
        temporal_split(builders.items(["a", "b", "c"]), events, valid_share=0.6, test_share=0.5)
