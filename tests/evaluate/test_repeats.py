"""Repeat consumption: with `recommend.repeats` a re-bought history item can be a hit; without it, it never is."""

from __future__ import annotations

import numpy as np

from longtail.core.config import RecommendConfig
from longtail.evaluate.harness import evaluate_scorer


def _favourite_first(histories: list[np.ndarray]) -> np.ndarray:
    """Scores that put item 0 (every user's past purchase) first, then items by index."""
    scores = np.tile(-np.arange(5, dtype=float), (len(histories), 1))
    scores[:, 0] = 10.0
    return scores


def test_repeat_purchases_count_only_when_repeats_are_on() -> None:
    histories = [np.array([0, 3]), np.array([0])]
    targets = [np.array([0]), np.array([1])]
    counts = np.array([5, 1, 1, 1, 0])
    masked = evaluate_scorer(_favourite_first, histories, targets, counts, RecommendConfig(ks=[1]), segments=False)
    repeats = evaluate_scorer(_favourite_first, histories, targets, counts, RecommendConfig(ks=[1], repeats=True), segments=False)
    # Masked: user 0's target (item 0) is hidden from its own ranking, a miss; user 1's item 1 ranks first once item 0 is masked.
    assert masked.metrics["HR@1"] == 0.5
    # Repeats: user 0 re-buys item 0 (a hit); user 1's item 0 is ranked above item 1 (a miss).
    assert repeats.metrics["HR@1"] == 0.5
    assert repeats.per_user["all"]["HR@1"].tolist() == [1.0, 0.0]
    assert masked.per_user["all"]["HR@1"].tolist() == [0.0, 1.0]
