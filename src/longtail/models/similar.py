"""Similar items for an item: nearest neighbours by cosine over the same item vectors a model recommends with."""

from __future__ import annotations

import numpy as np

from longtail.core.errors import LongtailError
from longtail.models.base import top_k


def similar_items(vectors: np.ndarray, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The k items most similar to `item` (itself excluded), best first, with their cosine similarities.

    `vectors` is (n_items, dim): text vectors, or a fitted model's item table (e.g. `SASRec.item_vectors()`).
    """
    if not 0 <= item < len(vectors):
        raise LongtailError(f"item index {item} is outside the catalogue of {len(vectors)} items")
    normalised = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = normalised @ normalised[item]
    similarity[item] = -np.inf
    top = top_k(similarity[None, :], min(k, len(vectors) - 1))[0]
    return top, similarity[top]
