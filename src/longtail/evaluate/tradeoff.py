"""The long-tail knob's trade-off curve: accuracy overall, on head and on tail items, and tail exposure per knob value."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from longtail.core.config import RecommendConfig
from longtail.data.splits import Split, Stage
from longtail.evaluate.harness import BATCH, evaluate_scorer
from longtail.recommend.longtail import LongTailReranker, Scorer


def tradeoff_curve(scorer: Scorer, split: Split, config: RecommendConfig, weights: Sequence[float], stage: Stage = "test") -> list[dict]:
    """For each knob value: NDCG@10 overall, on head and on tail items, tail exposure in the top 10, coverage.

    On the `stage` targets: "valid" to choose the knob's weight, "test" to report it.
    The base model scores every user once; each knob value only re-ranks those scores.
    """
    histories, targets, counts = split.histories(stage), split.targets(stage), split.train_counts()
    base = np.vstack([scorer(histories[start : start + BATCH]) for start in range(0, len(histories), BATCH)])
    row_of = {id(history): row for row, history in enumerate(histories)}

    def precomputed(chunk: Sequence[np.ndarray]) -> np.ndarray:
        return base[[row_of[id(history)] for history in chunk]]

    points = []
    for weight in weights:
        reranker = LongTailReranker(precomputed, counts, weight, config.longtail_candidates)
        evaluation = evaluate_scorer(reranker.score, histories, targets, counts, config)
        metrics = evaluation.metrics
        points.append(
            {
                "weight": weight,
                "metrics": metrics,
                "NDCG@10": metrics["NDCG@10"],
                "HR@10": metrics["HR@10"],
                "tail_NDCG@10": evaluation.segments["tail"]["NDCG@10"],
                "tail_HR@10": evaluation.segments["tail"]["HR@10"],
                "head_NDCG@10": evaluation.segments["head"]["NDCG@10"],
                "tail_exposure@10": metrics["tail_exposure@10"],
                "coverage@10": metrics["coverage@10"],
            }
        )
    return points
