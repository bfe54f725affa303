"""Sampling, re-sampling and class weights on real data: the class distribution each promises, reproducible, originals untouched, no leakage."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from longtail.balance.component import build, run
from longtail.balance.leakage import check_disjoint, overlapping_keys
from longtail.balance.sampling import class_sizes
from longtail.balance.weights import class_weights
from longtail.core.config import ComponentSpec
from longtail.core.errors import LeakageError
from longtail.data.columns import SYNTHETIC, WEIGHT
from longtail.pipeline.balance_step import balance_training_table

ALL_COMPONENTS = [
    ("random-sample", {"fraction": 0.5}),
    ("random-sample", {"per_class": 30, "replace": True}),
    ("stratified-sample", {"fraction": 0.4}),
    ("weighted-sampling", {"size": 2000}),
    ("random-under", {}),
    ("random-over", {}),
    ("smote", {}),
    ("smote-tomek", {}),
    ("smote-enn", {}),
    ("class-weights", {"method": "effective", "beta": 0.99}),
]


def within_binomial(count: int, trials: int, probability: float) -> bool:
    """`count` is within 4 standard deviations of a Binomial(trials, probability) draw's mean (fails ~1 in 16,000)."""
    return abs(count - trials * probability) <= 4 * np.sqrt(trials * probability * (1 - probability))


def sizes(table: pl.DataFrame) -> dict[str, int]:
    return class_sizes(table["label"].to_numpy())


def assert_originals_unchanged(result: pl.DataFrame, train: pl.DataFrame) -> None:
    """Every non-synthetic row (weight aside) is a row of the input, value for value, and appears once."""
    originals = result.filter(~pl.col(SYNTHETIC)).drop(WEIGHT)
    assert originals["item_id"].n_unique() == originals.height
    assert originals.join(train.drop(WEIGHT), on=originals.columns, how="anti").height == 0


@pytest.mark.parametrize(("name", "params"), ALL_COMPONENTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ALL_COMPONENTS)])
def test_every_component_is_reproducible_keeps_originals_and_never_leaks(zh_split, name: str, params: dict) -> None:
    train, test = zh_split
    first = run(build(name, **params), train, seed=3)
    assert first.equals(run(build(name, **params), train, seed=3))
    assert first.columns == train.columns
    assert_originals_unchanged(first, train)
    check_disjoint(first, test, ["item_id"])
    assert set(first["label"].unique()) <= set(train["label"].unique())


def test_random_and_stratified_samples_keep_sizes_and_shares(zh_split) -> None:
    train, _ = zh_split
    # every row is kept on its own draw, so sizes are binomial around the target
    half = run(build("random-sample", fraction=0.5), train, seed=1)
    assert within_binomial(half.height, train.height, 0.5) and half.height != train.height and not half[SYNTHETIC].any()
    assert not half.equals(run(build("random-sample", fraction=0.5), train, seed=2))
    per_class = run(build("random-sample", per_class=20), train, seed=1)
    for label, count in sizes(train).items():
        assert within_binomial(sizes(per_class).get(label, 0), count, min(1.0, 20 / count)), label
    assert any(count <= 20 for count in sizes(train).values())  # a small class is kept whole: probability 1
    stratified = run(build("stratified-sample", fraction=0.4), train, seed=1)
    for label, count in sizes(train).items():
        assert within_binomial(sizes(stratified).get(label, 0), count, max(1, round(0.4 * count)) / count), label


def test_weighted_sample_balances_classes_in_expectation(zh_split) -> None:
    train, _ = zh_split
    assert max(sizes(train).values()) / min(sizes(train).values()) > 15
    sample = run(build("weighted-sampling", size=5000), train, seed=4)
    assert abs(sample.height - 5000) <= 4 * np.sqrt(5000)  # a sum of per-row Poisson counts: Poisson(5000)
    shares = {label: count / sample.height for label, count in sizes(sample).items()}
    assert len(shares) == 10 and all(abs(share - 0.1) < 0.02 for share in shares.values())
    assert sample.filter(~pl.col(SYNTHETIC))["item_id"].n_unique() == sample.filter(~pl.col(SYNTHETIC)).height
    assert sample[SYNTHETIC].sum() == sample.height - sample["item_id"].n_unique()


def test_under_and_over_sampling_equalise_classes(zh_split) -> None:
    train, _ = zh_split
    smallest, largest = min(sizes(train).values()), max(sizes(train).values())
    under = run(build("random-under"), train, seed=5)
    assert set(sizes(under).values()) == {smallest} and not under[SYNTHETIC].any()
    over = run(build("random-over"), train, seed=5)
    assert set(sizes(over).values()) == {largest}
    assert over[SYNTHETIC].sum() == sum(largest - n for n in sizes(train).values())
    assert over.filter(~pl.col(SYNTHETIC)).height == train.height  # every original row is kept


def test_smote_generates_new_flagged_rows_not_copies(zh_split) -> None:
    train, _ = zh_split
    smote = run(build("smote", k_neighbors=3), train, seed=6)
    assert set(sizes(smote).values()) == {max(sizes(train).values())}
    generated = smote.filter(pl.col(SYNTHETIC))
    assert generated["item_id"].null_count() == generated.height
    features = [c for c in train.columns if c.startswith("x")]
    assert generated.select(features).join(train.select(features), on=features, how="semi").height == 0


def test_combined_methods_grow_the_minority_and_clean_borders(zh_split) -> None:
    train, _ = zh_split
    minority = min(sizes(train), key=sizes(train).get)
    largest = max(sizes(train).values())
    tomek = run(build("smote-tomek"), train, seed=8)
    assert sizes(tomek)[minority] >= 0.95 * largest
    assert tomek.height <= 10 * largest  # Tomek links removed some rows
    enn = run(build("smote-enn"), train, seed=8)
    assert sizes(enn)[minority] > 5 * sizes(train)[minority]
    assert enn.filter(~pl.col(SYNTHETIC)).height < train.height  # ENN also drops real rows whose neighbours disagree


def test_class_weights_inverse_equalises_class_totals_and_effective_interpolates(zh_split) -> None:
    train, _ = zh_split
    weighted = run(build("class-weights", method="inverse"), train, seed=0)
    totals = weighted.group_by("label").agg(pl.col(WEIGHT).sum())[WEIGHT].to_numpy()
    assert np.allclose(totals, train.height / 10)
    assert weighted[WEIGHT].mean() == pytest.approx(1.0)
    assert weighted.drop(WEIGHT).equals(train.drop(WEIGHT))
    counts = {"big": 1000, "small": 10}
    assert class_weights(counts, "effective", beta=0.0) == pytest.approx({"big": 1.0, "small": 1.0})
    inverse = class_weights(counts, "inverse")
    effective = class_weights(counts, "effective", beta=0.99)
    assert inverse["small"] / inverse["big"] == pytest.approx(100)
    assert 1 < effective["small"] / effective["big"] < 100
    assert effective["small"] / effective["big"] == pytest.approx((1 - 0.99**1000) / (1 - 0.99**10))


def test_leakage_check_catches_an_evaluation_row_copied_into_training(zh_split) -> None:
    train, test = zh_split
    leaked = pl.concat([train, test.head(2).with_columns(pl.lit(False).alias(SYNTHETIC), pl.lit(1.0).alias(WEIGHT)).select(train.columns)])
    assert overlapping_keys(leaked, test, ["item_id"]).height == 2
    with pytest.raises(LeakageError, match="2 evaluation keys"):
        check_disjoint(leaked, test, ["item_id"])
    with pytest.raises(LeakageError, match="missing"):
        check_disjoint(train, test, ["user_id"])


def test_the_balance_step_refuses_a_training_split_that_overlaps_evaluation(zh_split) -> None:
    train, test = zh_split
    specs = [ComponentSpec(name="random-over", params={"sampling_strategy": "minority"}), ComponentSpec(name="class-weights", params={"method": "inverse"})]
    balanced = balance_training_table(train, test, ["item_id"], specs, seed=1)
    assert balanced[SYNTHETIC].sum() == max(sizes(train).values()) - min(sizes(train).values())
    assert balanced[WEIGHT].min() < 1 < balanced[WEIGHT].max()
    overlapping = pl.concat([train, test.head(1).with_columns(pl.lit(False).alias(SYNTHETIC), pl.lit(1.0).alias(WEIGHT)).select(train.columns)])
    with pytest.raises(LeakageError):
        balance_training_table(overlapping, test, ["item_id"], specs, seed=1)
