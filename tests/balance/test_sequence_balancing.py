"""Sequence balancing on real Beauty users: each sampler delivers the bucket mix it promises, reproducibly, without leaks."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from longtail.balance.component import build, run
from longtail.balance.sampling import WeightedSampling
from longtail.balance.sequences import (
    BUCKETS,
    ITEMS,
    HeadUnderSampling,
    TailOverSampling,
    check_training_only,
    item_counts,
    last_item_buckets,
    last_items,
    sequence_table,
    table_histories,
)
from longtail.core.errors import LongtailError
from longtail.data.columns import SYNTHETIC, WEIGHT


@pytest.fixture(scope="module")
def train(beauty_slice) -> list[np.ndarray]:
    return beauty_slice[1].train


@pytest.fixture(scope="module")
def table(train) -> pl.DataFrame:
    return sequence_table(train)


def within_binomial(count: int, trials: int, probability: float) -> bool:
    """`count` is within 4 standard deviations of a Binomial(trials, probability) draw's mean (fails ~1 in 16,000)."""
    return abs(count - trials * probability) <= 4 * np.sqrt(trials * probability * (1 - probability))


def _shares(labels: np.ndarray) -> dict[str, float]:
    return {bucket: float(np.mean(labels == bucket)) for bucket in BUCKETS}


def _originals(table: pl.DataFrame) -> pl.DataFrame:
    return table.filter(~pl.col(SYNTHETIC)).sort("user")


def test_the_slice_is_skewed_as_the_buckets_say(table) -> None:
    shares = _shares(last_item_buckets(table))
    assert shares["head"] > 0.4 and shares["tail"] > 0.05
    counts = item_counts(table)
    assert counts.sum() == sum(len(items) for items in table[ITEMS].to_list())


def test_weighted_sampling_draws_buckets_in_proportion_to_inverse_popularity(table) -> None:
    sampler = WeightedSampling(by="last-item", exponent=0.5, fraction=4.0)
    probabilities = sampler.probabilities(table)
    labels = last_item_buckets(table)
    promised = {bucket: float(probabilities[labels == bucket].sum()) for bucket in BUCKETS}
    sampled = run(sampler, table, seed=3)
    # buckets are recomputed from the input table: copies must not shift what counts as head
    drawn = last_item_buckets(table)[np.searchsorted(table["user"].to_numpy(), sampled["user"].to_numpy())]
    assert abs(len(sampled) - 4 * len(table)) <= 4 * np.sqrt(4 * len(table))  # per-row Poisson counts add up to Poisson(4n)
    for bucket in BUCKETS:
        assert _shares(drawn)[bucket] == pytest.approx(promised[bucket], abs=0.03)
    assert promised["tail"] > _shares(labels)["tail"] + 0.05  # the tail really gains
    assert sampled.filter(~pl.col(SYNTHETIC))["user"].is_unique().all()
    assert sampled.equals(run(sampler, table, seed=3)) and not sampled.equals(run(sampler, table, seed=4))


def test_exponent_zero_is_a_plain_bootstrap(table) -> None:
    probabilities = WeightedSampling(by="last-item", exponent=0.0).probabilities(table)
    np.testing.assert_allclose(probabilities, 1 / len(table))


def test_tail_oversampling_reaches_the_promised_bucket_counts(table) -> None:
    component = TailOverSampling(ratio=0.8, buckets=["tail", "torso"])
    targets = component.targets(table)
    grown = run(component, table, seed=1)
    labels = last_item_buckets(table)
    by_user = dict(zip(table["user"].to_list(), labels, strict=True))
    after = np.array([by_user[u] for u in grown["user"].to_list()])
    largest = max(int(np.sum(labels == b)) for b in BUCKETS)
    assert targets["head"] == int(np.sum(labels == "head")) == largest
    for bucket in BUCKETS:
        # every row of the bucket gets floor(r) copies and one more with probability r - floor(r): binomial around the target
        rows = int(np.sum(labels == bucket))
        rate = targets[bucket] / rows - 1
        whole = int(np.floor(rate))
        assert within_binomial(int(np.sum(after == bucket)) - rows * (1 + whole), rows, rate - whole), bucket
        assert targets[bucket] >= round(0.8 * largest) * (bucket != "head")
    assert _originals(grown).equals(table.sort("user"))
    assert grown.filter(pl.col(SYNTHETIC))[ITEMS].to_list() == [table[ITEMS][u].to_list() for u in grown.filter(pl.col(SYNTHETIC))["user"]]
    assert grown.equals(run(component, table, seed=1))


def test_head_undersampling_caps_the_share_of_head_dominated_sequences(table) -> None:
    component = HeadUnderSampling(max_share=0.2, head_fraction=0.6)
    before = component.head_dominated(table)
    assert before.mean() > 0.3
    kept = run(component, table, seed=5)
    dominated_users = set(table.filter(pl.Series(before))["user"].to_list())
    kept_dominated = sum(u in dominated_users for u in kept["user"].to_list())
    others = len(table) - len(dominated_users)
    assert len(kept) - kept_dominated == others  # only head-dominated rows go
    # the largest number k with k / (others + k) <= 0.2 is what is kept in expectation: each such row on its own draw
    keep = int(np.floor(0.2 * others / 0.8))
    assert within_binomial(kept_dominated, len(dominated_users), keep / len(dominated_users)) and kept_dominated < len(dominated_users)
    assert not kept[SYNTHETIC].any() and kept.equals(run(component, table, seed=5))


def test_inverse_popularity_weights_average_one_and_favour_rare_targets(table) -> None:
    weighted = run(build("inverse-popularity-weights", exponent=1.0), table, seed=0)
    weights = weighted[WEIGHT].to_numpy()
    popularity = item_counts(table)[last_items(table)]
    assert weights.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(weights * popularity, (weights * popularity)[0])
    histories, loss_weights = table_histories(weighted)
    assert len(histories) == len(table) and loss_weights is not None
    assert table_histories(table)[1] is None  # unweighted tables train the unweighted model


@pytest.mark.parametrize(
    ("name", "params"),
    [("weighted-sampling", {"by": "last-item"}), ("tail-oversampling", {}), ("head-undersampling", {}), ("crop", {}), ("mask", {}), ("reorder", {})],
)
def test_no_component_lets_a_held_out_item_into_training(beauty_slice, table, train, name, params) -> None:
    split = beauty_slice[1]
    output = run(build(name, **params), table, seed=11)
    check_training_only(output, train)
    for user, items in zip(output["user"].to_list(), output[ITEMS].to_list(), strict=True):
        held_out = set(split.valid[user]) | set(split.test[user])
        assert not (held_out - set(train[user])) & set(items)


def test_the_leak_check_catches_a_validation_item(beauty_slice, train) -> None:
    split = beauty_slice[1]
    user = next(u for u in range(len(train)) if len(split.valid[u]) and split.valid[u][0] not in train[u])
    leaked = [np.append(h, split.valid[u]) if u == user else h for u, h in enumerate(train)]
    with pytest.raises(LongtailError, match="outside their user's training history"):
        check_training_only(sequence_table(leaked), train)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(LongtailError):
        TailOverSampling(buckets=["middle"])
    with pytest.raises(LongtailError):
        HeadUnderSampling(max_share=1.0)
