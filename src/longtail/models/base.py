"""The one small interface every recommender shares, and the registry that lets a config pick one by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp

from longtail.balance.component import MASKED
from longtail.core.config import RecommendConfig
from longtail.core.errors import ConfigError


@dataclass
class TrainData:
    """What a recommender learns from: per-user item histories over a catalogue of `n_items` indices.

    `weights` (one per history) scale each history's share of the loss in models that support it (SASRec);
    None means every history counts the same. Balancing and augmentation may add histories that are not a
    real user's (re-sampled copies, crops, masks); a masked position holds `MASKED` (-1).
    """

    n_items: int
    histories: list[np.ndarray]
    valid_targets: list[np.ndarray] | None = None
    item_vectors: np.ndarray | None = None
    seed: int = 42
    weights: np.ndarray | None = None

    def counts(self) -> np.ndarray:
        """Interactions per item in the histories; masked positions (negative indices) are not interactions."""
        if not self.histories:
            return np.zeros(self.n_items, np.int64)
        items = np.concatenate(self.histories)
        return np.bincount(items[items >= 0], minlength=self.n_items)


Validator = Callable[["Recommender"], float]


def interaction_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary users x items matrix; repeated interactions count once."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    columns = np.concatenate(histories) if len(histories) else np.zeros(0, np.int64)
    matrix = sp.csr_matrix((np.ones(len(columns), np.float32), (rows, columns)), shape=(len(histories), n_items))
    matrix.data[:] = 1.0
    return matrix


class Recommender(ABC):
    """sklearn-like: parameters in __init__, learned state with a trailing underscore, `fit` returns self.

    A user is represented by their item history, so a fitted model scores users it never saw in training.
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_config(cls, config: RecommendConfig) -> Self:
        """Build the model with the parameters the config names."""

    @abstractmethod
    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        """Learn from histories; models with early stopping call `validate(self)` (higher is better)."""

    @abstractmethod
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """A (users, n_items) float32 matrix: higher means recommend sooner."""

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> np.ndarray:
        """Top-k item indices per user, best first, never an item already in the user's history."""
        return top_k(mask_history(self.score(histories), histories), k)


def mask_history(scores: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
    """Set each user's history items to -inf in place (they are never recommended again)."""
    for row, history in enumerate(histories):
        scores[row, history] = -np.inf
    return scores


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k highest scores, best first (k is capped at the number of columns)."""
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    top = np.argpartition(-scores, kth=k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


REGISTRY: dict[str, type[Recommender]] = {}


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make a recommender selectable by its `name` in config."""
    REGISTRY[cls.name] = cls
    return cls


def make_recommender(name: str, config: RecommendConfig) -> Recommender:
    """A fresh, unfitted recommender by registered name."""
    import longtail.models.collaborative  # noqa: F401  (importing registers the models)
    import longtail.models.content  # noqa: F401
    import longtail.models.popularity  # noqa: F401
    import longtail.models.sequential  # noqa: F401

    if name not in REGISTRY:
        raise ConfigError(f"unknown recommender '{name}'; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name].from_config(config)
