"""Item segments (head / torso / tail by training popularity) and user segments (cold / active)."""

from __future__ import annotations

import math

import numpy as np

HEAD, TORSO, TAIL = "head", "torso", "tail"


def item_segments(train_counts: np.ndarray, head_item_share: float = 0.2, tail_interaction_share: float = 0.2) -> np.ndarray:
    """Label every item head, torso or tail.

    head: the ceil(head_item_share x items) most interacted-with items. tail: starting from the least
    interacted-with item, every item while the running total stays within tail_interaction_share of all
    training interactions (items never seen in training are always tail). torso: everything else.
    """
    n_items = len(train_counts)
    labels = np.full(n_items, TORSO, dtype=object)
    descending = np.argsort(-train_counts, kind="stable")
    labels[descending[: math.ceil(head_item_share * n_items)]] = HEAD
    ascending = descending[::-1]
    within_share = np.cumsum(train_counts[ascending]) <= tail_interaction_share * train_counts.sum()
    tail = ascending[within_share | (train_counts[ascending] == 0)]
    labels[tail[labels[tail] != HEAD]] = TAIL
    return labels


def user_segments(history_lengths: np.ndarray, cold_user_max_history: int = 4) -> np.ndarray:
    """Label users cold (at most cold_user_max_history history items at evaluation time) or active."""
    return np.where(np.asarray(history_lengths) <= cold_user_max_history, "cold", "active").astype(object)
