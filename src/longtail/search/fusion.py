"""Reciprocal-rank fusion of ranked lists, and a grid search for the per-retriever weights."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def reciprocal_rank_fusion(rankings: Sequence[np.ndarray], weights: Sequence[float] | None = None, k: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Fuse ranked row lists: score(row) = sum over lists of weight / (k + rank); best first, ties by first appearance."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, row in enumerate(ranking.tolist(), start=1):
            if row >= 0:
                scores[row] = scores.get(row, 0.0) + weight / (k + rank)
    # Python's sort is stable, so equal scores keep the order in which rows were first seen.
    ordered = sorted(scores.items(), key=lambda pair: -pair[1])
    rows = np.fromiter((row for row, _ in ordered), dtype=np.int64, count=len(ordered))
    return rows, np.fromiter((score for _, score in ordered), dtype=np.float64, count=len(ordered))


def tune_lexical_weight(
    objective: Callable[[float], float], grid: Sequence[float] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
) -> tuple[float, dict[float, float]]:
    """The lexical weight (dense weight fixed at 1) that maximises an objective such as NDCG@10 on training queries."""
    results = {weight: objective(weight) for weight in grid}
    best = max(results, key=lambda weight: (results[weight], -abs(weight - 1.0)))
    return best, results
