"""Every metric against values computed by hand on tiny cases, including ties and users without targets."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from longtail.core.config import RecommendConfig
from longtail.core.errors import NonFiniteScoreError
from longtail.data.segments import item_segments, user_segments
from longtail.evaluate.harness import evaluate_scorer
from longtail.evaluate.metrics import catalogue_coverage, exposure_gini, novelty, ranking_metrics, target_ranks
from longtail.evaluate.significance import bootstrap_ci, paired_bootstrap
from longtail.models.base import mask_history


def _ranks(scores: list[list[float]], histories: list[list[int]], targets: list[list[int]]) -> list[np.ndarray]:
    matrix = mask_history(np.array(scores, dtype=np.float32), [np.array(h, dtype=np.int64) for h in histories])
    return target_ranks(matrix, [np.array(t, dtype=np.int64) for t in targets])


def test_rank_skips_history_items_and_counts_ties_against_the_target() -> None:
    scores = [[0.9, 0.8, 0.7, 0.6, 0.5], [0.5, 0.5, 0.5, 0.1, 0.0], [1.0, 0.2, 0.3, 0.4, 0.0]]
    ranks = _ranks(scores, histories=[[0], [], [0]], targets=[[2], [1], [0]])
    assert ranks[0].tolist() == [2]  # item 0 (higher) is history, so only item 1 is above the target
    assert ranks[1].tolist() == [3]  # tied with items 0 and 2: pessimistic rank 3, not 1 or 2
    assert ranks[2].tolist() == [5]  # the target is in the history: excluded, ranked last


def test_constant_scores_earn_nothing() -> None:
    ranks = _ranks([[0.0] * 30], histories=[[]], targets=[[7]])
    metrics = ranking_metrics(ranks, ks=[5, 10, 20])
    assert metrics["HR@20"][0] == 0 and metrics["NDCG@20"][0] == 0 and metrics["MRR"][0] == pytest.approx(1 / 30)


def test_single_target_metrics_by_hand() -> None:
    metrics = ranking_metrics([np.array([3]), np.array([12])], ks=[5, 10])
    assert metrics["HR@5"].tolist() == [1.0, 0.0]
    assert metrics["Recall@10"].tolist() == [1.0, 0.0]
    assert metrics["NDCG@5"][0] == pytest.approx(1 / math.log2(4)) and metrics["NDCG@10"][1] == 0.0
    assert metrics["MRR"].tolist() == pytest.approx([1 / 3, 1 / 12])


def test_several_targets_and_a_user_without_targets() -> None:
    metrics = ranking_metrics([np.array([1, 4, 30]), np.array([], dtype=np.int64)], ks=[5])
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics["HR@5"][0] == 1.0
    assert metrics["Recall@5"][0] == pytest.approx(2 / 3)
    assert metrics["NDCG@5"][0] == pytest.approx((1 + 1 / math.log2(5)) / ideal)
    assert metrics["MRR"][0] == 1.0
    # no relevant item: NaN, so averages leave the user out instead of counting a zero
    assert all(math.isnan(values[1]) for values in metrics.values())
    assert np.nanmean(metrics["HR@5"]) == 1.0


def test_beyond_accuracy_metrics_by_hand() -> None:
    top = np.array([[0, 1], [0, 2]])
    assert catalogue_coverage(top, n_items=4) == 0.75
    # exposure counts sorted: [0, 1, 1, 2]; Gini = sum((2i - n - 1) x_i) / (n sum x) = (-1 + 1 + 6) / 16
    assert exposure_gini(top, n_items=4) == pytest.approx(6 / 16)
    assert exposure_gini(np.array([[0], [1], [2], [3]]), n_items=4) == pytest.approx(0.0)
    assert exposure_gini(np.array([[0], [0]]), n_items=4) == pytest.approx(0.75)
    counts = np.array([3, 1, 0, 0])
    expected = np.mean([-math.log2(4 / 5), -math.log2(2 / 5), -math.log2(4 / 5), -math.log2(1 / 5)])
    assert novelty(top, counts, n_users=4) == pytest.approx(expected)


def test_item_segments_by_training_popularity() -> None:
    counts = np.array([50, 30, 10, 5, 3, 1, 1, 0, 0, 0])
    labels = item_segments(counts, head_item_share=0.2, tail_interaction_share=0.1)
    # head: top 2 items; tail: least popular items while their running total stays <= 10 (0,0,0,1,1,3 -> 5; +5 -> 10)
    assert labels.tolist() == ["head", "head", "torso", "tail", "tail", "tail", "tail", "tail", "tail", "tail"]
    assert user_segments(np.array([1, 4, 5, 40]), cold_user_max_history=4).tolist() == ["cold", "cold", "active", "active"]


def test_bootstrap_intervals() -> None:
    values = np.array([0.0, 1.0] * 500)
    interval = bootstrap_ci(np.append(values, np.nan), samples=500)
    assert interval["mean"] == 0.5 and interval["users"] == 1000 and interval["low"] < 0.5 < interval["high"]
    same = paired_bootstrap(values, values, samples=200)
    assert same["difference"] == 0 and same["low"] == 0 and same["high"] == 0 and not same["significant"]
    better = paired_bootstrap(values + 0.1, values, samples=200)
    assert better["difference"] == pytest.approx(0.1) and better["significant"]
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap(values, values[:10])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_nan_or_infinite_score_is_refused_never_counted_as_a_hit(bad: float) -> None:
    scores = np.array([[0.1, 0.2, 0.3], [0.3, bad, 0.1]], dtype=np.float32)
    with pytest.raises(NonFiniteScoreError, match="user 7, item 1"):
        target_ranks(scores, [np.array([2]), np.array([1])], users=[3, 7])


def test_minus_infinity_marks_an_excluded_item_and_is_allowed() -> None:
    scores = np.array([[0.1, -np.inf, 0.3]], dtype=np.float32)
    assert target_ranks(scores, [np.array([1])])[0].tolist() == [3]


def test_the_harness_refuses_a_scorer_that_returns_nan() -> None:
    histories = [np.array([0]), np.array([1])]
    targets = [np.array([2]), np.array([0])]

    def scorer(chunk: Sequence[np.ndarray]) -> np.ndarray:
        return np.full((len(chunk), 3), np.nan, dtype=np.float32)

    with pytest.raises(NonFiniteScoreError, match="user 0, item"):
        evaluate_scorer(scorer, histories, targets, np.array([1, 1, 0]), RecommendConfig(ks=[1]))
