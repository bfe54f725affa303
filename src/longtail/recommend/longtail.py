"""Long-tail re-ranking with one knob: blend each candidate's relevance with how unpopular it is."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from longtail.config import RecommendConfig
from longtail.data.splits import Split
from longtail.evaluate.harness import BATCH, evaluate_scorer
from longtail.evaluate.metrics import mask_history
from longtail.models.base import top_k

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


def tradeoff_curve(scorer: Scorer, split: Split, config: RecommendConfig, weights: Sequence[float]) -> list[dict]:
    """For each knob value: test NDCG@10 overall, on head and on tail items, tail exposure in the top 10, coverage.

    The base model scores every user once; each knob value only re-ranks those scores.
    """
    histories, targets, counts = split.histories("test"), split.targets("test"), split.train_counts()
    base = np.vstack([scorer(histories[start : start + BATCH]) for start in range(0, len(histories), BATCH)])
    row_of = {id(history): row for row, history in enumerate(histories)}

    def precomputed(chunk: Sequence[np.ndarray]) -> np.ndarray:
        return base[[row_of[id(history)] for history in chunk]]

    points = []
    for weight in weights:
        reranker = LongTailReranker(precomputed, counts, weight, config.longtail_candidates)
        evaluation = evaluate_scorer(reranker.score, histories, targets, counts, config)
        metrics = evaluation.metrics
        points.append({
            "weight": weight,
            "metrics": metrics,
            "NDCG@10": metrics["NDCG@10"],
            "HR@10": metrics["HR@10"],
            "tail_NDCG@10": evaluation.segments["tail"]["NDCG@10"],
            "tail_HR@10": evaluation.segments["tail"]["HR@10"],
            "head_NDCG@10": evaluation.segments["head"]["NDCG@10"],
            "tail_exposure@10": metrics["tail_exposure@10"],
            "coverage@10": metrics["coverage@10"],
        })
    return points
