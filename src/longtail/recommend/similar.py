"""Similar items for an item: nearest neighbours by cosine over the same item vectors a model recommends with."""

from __future__ import annotations

import numpy as np

from longtail.errors import LongtailError


def similar_items(vectors: np.ndarray, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The k items most similar to `item` (itself excluded), best first, with their cosine similarities.

    `vectors` is (n_items, dim): text vectors, or a fitted model's item table (e.g. `SASRec.item_vectors()`).
    """
    if not 0 <= item < len(vectors):
        raise LongtailError(f"item index {item} is outside the catalogue of {len(vectors)} items")
    normalised = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = normalised @ normalised[item]
    similarity[item] = -np.inf
    k = min(k, len(vectors) - 1)
    top = np.argpartition(-similarity, kth=k - 1)[:k] if k > 0 else np.zeros(0, dtype=np.int64)
    top = top[np.argsort(-similarity[top], kind="stable")]
    return top, similarity[top]
