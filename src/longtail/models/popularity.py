"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np

from longtail.core.config import RecommendConfig
from longtail.models.base import Recommender, TrainData, Validator, register


@register
class Popularity(Recommender):
    """Scores an item by its training interaction count, the same for every user."""

    name = "popularity"

    @classmethod
    def from_config(cls, config: RecommendConfig) -> Self:
        return cls()

    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        self.counts_ = data.counts().astype(np.float32)
        return self

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.tile(self.counts_, (len(histories), 1))
