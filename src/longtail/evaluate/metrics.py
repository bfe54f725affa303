"""Full-ranking accuracy metrics (HR, Recall, NDCG, MRR) and beyond-accuracy metrics (coverage, Gini, novelty).

Protocol: every catalogue item is ranked (no sampled negatives); items already in the user's history are
excluded from the ranking, so a held-out item the user had already seen counts as a miss. Ties are broken
pessimistically: an item with the same score as a held-out item ranks above it, so a constant scorer earns 0.
Scores must be finite or -inf (an excluded item): NaN or +inf is refused, since a NaN target would rank first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from longtail.core.errors import NonFiniteScoreError


def reject_non_finite(scores: np.ndarray, users: Sequence[int] | np.ndarray | None = None) -> None:
    """Raise NonFiniteScoreError naming the first user row and item with a NaN or +inf score (-inf marks an excluded item)."""
    bad = np.isnan(scores) | np.isposinf(scores)
    if not bad.any():
        return
    row, item = (int(i) for i in np.argwhere(bad)[0])
    user = row if users is None else int(users[row])
    raise NonFiniteScoreError(
        f"user {user}, item {item}: score {scores[row, item]} ({int(bad.sum())} non-finite scores in this batch); "
        "a recommender must return finite scores (or -inf for an item it never recommends)"
    )


def target_ranks(masked_scores: np.ndarray, targets: Sequence[np.ndarray], users: Sequence[int] | np.ndarray | None = None) -> list[np.ndarray]:
    """1-based rank of each target item among all items; ties and excluded targets count against the target.

    `users` (the rows' user indices) only names the user in the error a NaN or +inf score raises.
    """
    reject_non_finite(masked_scores, users)
    rows = np.repeat(np.arange(len(targets)), [len(t) for t in targets])
    if rows.size == 0:
        return [np.zeros(0, dtype=np.int64) for _ in targets]
    items = np.concatenate(targets)
    target_scores = masked_scores[rows, items]
    ranks = (masked_scores[rows] >= target_scores[:, None]).sum(axis=1)
    return np.split(ranks.astype(np.int64), np.cumsum([len(t) for t in targets])[:-1])


def ranking_metrics(ranks: Sequence[np.ndarray], ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-user HR@K, Recall@K, NDCG@K and MRR from target ranks; NaN for users with no target.

    HR@K: 1 if any target is in the top K. Recall@K: share of the user's targets in the top K.
    NDCG@K: DCG of the targets in the top K over the ideal DCG of min(#targets, K) hits (gain 1/log2(rank+1)).
    MRR: 1 / rank of the best-ranked target (no cut-off).
    """
    width = max((len(r) for r in ranks), default=0)
    padded = np.full((len(ranks), max(width, 1)), np.inf)
    for row, user_ranks in enumerate(ranks):
        padded[row, : len(user_ranks)] = user_ranks
    relevant = np.array([len(r) for r in ranks], dtype=np.float64)
    has_target = relevant > 0
    gains = np.where(np.isfinite(padded), 1.0 / np.log2(padded + 1.0), 0.0)
    ideal_gains = np.cumsum(1.0 / np.log2(np.arange(2, max(ks) + 2)))
    result: dict[str, np.ndarray] = {}
    for k in ks:
        hits = padded <= k
        ideal = ideal_gains[np.minimum(relevant, k).astype(int) - 1]
        result[f"HR@{k}"] = np.where(has_target, hits.any(axis=1), np.nan)
        result[f"Recall@{k}"] = np.where(has_target, hits.sum(axis=1) / np.maximum(relevant, 1), np.nan)
        result[f"NDCG@{k}"] = np.where(has_target, (gains * hits).sum(axis=1) / np.where(has_target, ideal, 1.0), np.nan)
    result["MRR"] = np.where(has_target, 1.0 / padded.min(axis=1), np.nan)
    return result


def catalogue_coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's top list."""
    return float(np.unique(top).size / n_items) if top.size else 0.0


def exposure_gini(top: np.ndarray, n_items: int) -> float:
    """Gini coefficient of how often each catalogue item is recommended: 0 = equal exposure, near 1 = a few items take all."""
    exposure = np.sort(np.bincount(top.ravel(), minlength=n_items).astype(np.float64))
    if exposure.sum() == 0:
        return 0.0
    position = np.arange(1, n_items + 1)
    return float(((2 * position - n_items - 1) * exposure).sum() / (n_items * exposure.sum()))


def novelty(top: np.ndarray, train_counts: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2 p(i) of recommended items, p(i) = (training users of i + 1) / (users + 1)."""
    if top.size == 0:
        return 0.0
    probability = (train_counts[top] + 1.0) / (n_users + 1.0)
    return float(np.mean(-np.log2(probability)))
