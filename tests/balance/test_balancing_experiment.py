"""The balancing experiment on a small real zh-reviews slice: per-class scores, and balancing lifts the smallest class."""

from __future__ import annotations

import pytest

from longtail.balance.component import build_chain
from longtail.core.config import ComponentSpec, TabularBalanceConfig
from longtail.evaluate.balancing import BASELINE, compare_strategies
from longtail.pipeline.balance_step import build_strategies


def test_class_weights_raise_minority_recall_over_the_baseline(zh_split) -> None:
    train, test = zh_split
    strategies = {
        BASELINE: build_chain([]),
        "class_weights": build_chain([ComponentSpec(name="class-weights", params={"method": "inverse"})]),
        "random_under": build_chain([ComponentSpec(name="random-under")]),
    }
    # on this slice the baseline finds 3 of the 9 test reviews of the smallest class, inverse class weights 5
    rows = compare_strategies(train, test, strategies, seed=7, bootstrap_samples=200)
    baseline, weighted, under = rows
    assert [r["strategy"] for r in rows] == [BASELINE, "class_weights", "random_under"]
    assert baseline["minority_class"] == "热水器" and "vs_baseline" not in baseline
    assert set(baseline["per_class"]) == set(train["label"].unique())
    assert 0.5 < baseline["macro_auc"] <= 1 and all(0 <= c["auc"] <= 1 for c in baseline["per_class"].values())
    assert sum(c["support"] for c in baseline["per_class"].values()) == test.height
    assert weighted["minority_recall"] > baseline["minority_recall"]
    compared = weighted["vs_baseline"]["minority_recall"]
    assert compared["difference"] == pytest.approx(weighted["minority_recall"] - baseline["minority_recall"], abs=2e-4)
    assert compared["low"] <= compared["difference"] <= compared["high"]
    assert weighted["vs_baseline"]["macro_f1"]["difference"] == pytest.approx(weighted["macro_f1"] - baseline["macro_f1"], abs=2e-4)
    assert under["train_rows"] == 10 * min(under["train_class_rows"].values()) < train.height


def test_default_config_names_a_baseline_first_and_only_registered_components() -> None:
    config = TabularBalanceConfig()
    assert next(iter(config.strategies)) == BASELINE
    assert list(build_strategies(config)) == list(config.strategies)
