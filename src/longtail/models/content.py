"""Content-based retrieval: items whose text vectors are closest to the user's recent items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np

from longtail.core.config import RecommendConfig
from longtail.core.errors import LongtailError
from longtail.models.base import Recommender, TrainData, Validator, register
from longtail.models.similar import similar_items


def recent_text_scores(vectors: np.ndarray, histories: Sequence[np.ndarray], recent: int) -> np.ndarray:
    """(users, items) cosine between each item's text vector and a recency-weighted mean of the user's last `recent` items'."""
    queries = np.zeros((len(histories), vectors.shape[1]), dtype=np.float32)
    for row, history in enumerate(histories):
        last = history[-recent:]
        if len(last):
            # the latest item says most about the next one: weights 1, 1/2, 1/3 ... from the end
            weights = 1.0 / np.arange(len(last), 0, -1, dtype=np.float32)
            queries[row] = weights @ vectors[last]
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    return queries @ vectors.T


@register
class Content(Recommender):
    """Cosine similarity between item text vectors and a recency-weighted mean of the user's last items.

    Needs no interactions for the candidate item, so cold and tail items score as well as popular ones.
    """

    name = "content"

    def __init__(self, recent: int = 5) -> None:
        self.recent = recent

    @classmethod
    def from_config(cls, config: RecommendConfig) -> Self:
        return cls(config.content_recent)

    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        if data.item_vectors is None:
            raise LongtailError("the content recommender needs item text vectors (TrainData.item_vectors)")
        self.vectors_ = np.asarray(data.item_vectors, dtype=np.float32)
        return self

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return recent_text_scores(self.vectors_, histories, self.recent)

    def similar_items(self, item: int, k: int = 10) -> np.ndarray:
        """The k items whose text vectors are closest (cosine) to `item`'s, best first."""
        return similar_items(self.vectors_, item, k)[0]
