"""Long-tail re-ranking with one knob: blend each candidate's relevance with how unpopular it is."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from longtail.models.base import mask_history, top_k

Scorer = Callable[[Sequence[np.ndarray]], np.ndarray]


def popularity_penalised(scores: np.ndarray, histories: Sequence[np.ndarray], train_counts: np.ndarray, weight: float, depth: int) -> np.ndarray:
    """Re-order each user's top `depth` items by (1 - weight) x relevance + weight x unpopularity.

    Relevance is the base score min-max scaled to [0, 1] within the user's top list; unpopularity is
    1 - log(1 + count) / log(1 + max count), so weight 0 keeps the base order and weight 1 sorts the list
    from least to most popular. Items outside the top list stay below it.
    """
    scores = mask_history(scores.astype(np.float32, copy=True), histories)
    if weight == 0:
        return scores
    unpopularity = 1 - np.log1p(train_counts) / np.log1p(max(train_counts.max(), 1))
    top = top_k(scores, depth)
    top_scores = np.take_along_axis(scores, top, axis=1)
    finite = np.isfinite(top_scores)
    low = np.where(finite, top_scores, np.inf).min(axis=1, keepdims=True)
    high = np.where(finite, top_scores, -np.inf).max(axis=1, keepdims=True)
    relevance = (top_scores - low) / np.maximum(high - low, 1e-12)
    blended = np.where(finite, (1 - weight) * relevance + weight * unpopularity[top], -np.inf)
    # outside the re-ranked list keep the base order, strictly below every blended value (which lie in [0, 1])
    output = np.where(np.isfinite(scores), -1 - np.argsort(np.argsort(-scores, axis=1), axis=1).astype(np.float32), -np.inf)
    np.put_along_axis(output, top, blended.astype(np.float32), axis=1)
    return output


class LongTailReranker:
    """Wraps a scorer so its top lists trade some accuracy for exposure of tail items (the knob: `weight`)."""

    def __init__(self, scorer: Scorer, train_counts: np.ndarray, weight: float, depth: int = 100) -> None:
        self.scorer = scorer
        self.train_counts = train_counts
        self.weight = weight
        self.depth = depth

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Re-ranked scores for these users."""
        return popularity_penalised(self.scorer(histories), histories, self.train_counts, self.weight, self.depth)
