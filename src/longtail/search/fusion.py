"""Reciprocal-rank fusion of ranked lists, and a grid search for its k and the lexical weight on judged queries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Small k lets the top ranks of each list dominate; the grid reaches down to 1 so that a best point is not on its edge.
RRF_K_GRID = (1, 2, 3, 5, 10, 20, 40, 60, 100)
LEXICAL_WEIGHT_GRID = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)


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


@dataclass(frozen=True)
class FusionChoice:
    """The RRF k and lexical weight (dense weight 1) a grid search picked, and the objective of every grid point."""

    rrf_k: int
    lexical_weight: float
    objective: float
    grid: dict[tuple[int, float], float]


def tune_fusion(objective: Callable[[int, float], float], ks: Sequence[int] = RRF_K_GRID, weights: Sequence[float] = LEXICAL_WEIGHT_GRID) -> FusionChoice:
    """The (k, lexical weight) that maximises an objective such as validation NDCG@10; ties go to the point nearest the
    defaults (k 60, equal weights), so a flat objective leaves fusion as it was."""
    grid = {(k, weight): objective(k, weight) for k in ks for weight in weights}
    best = max(grid, key=lambda point: (round(grid[point], 12), -abs(point[1] - 1.0), -abs(point[0] - 60)))
    return FusionChoice(best[0], best[1], grid[best], grid)
