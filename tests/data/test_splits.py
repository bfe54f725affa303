"""Leave-one-out and temporal splits: exact hold-outs and no leakage of held-out items into training."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from longtail.core.errors import LongtailError
from longtail.data.adapters import load_dataset, sequences_to_events
from longtail.data.splits import leave_one_out, split_events, temporal_split

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
