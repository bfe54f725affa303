"""Gaussian noise injection into item or user vectors: noisy synthetic copies of (selected) rows, noise scaled to the vectors' spread."""

from __future__ import annotations

import numpy as np
import polars as pl

from longtail.balance.component import Component, register
from longtail.core.errors import ConfigError
from longtail.data.columns import SYNTHETIC

UNIT_NORM_TOLERANCE = 1e-3


def vector_matrix(table: pl.DataFrame, column: str) -> np.ndarray:
    """The vectors of a list/array column as a rows x dimensions float32 matrix."""
    if column not in table.columns:
        raise ConfigError(f"embedding noise: no vector column {column!r}; columns: {', '.join(table.columns)}")
    vectors = np.asarray(table[column].to_list(), dtype=np.float32).reshape(table.height, -1)
    if not np.all(np.isfinite(vectors)):
        raise ConfigError(f"embedding noise: column {column!r} holds missing or non-finite vector values")
    return vectors


def add_gaussian_noise(vectors: np.ndarray, scale: float, spread: np.ndarray, rng: np.random.Generator, renormalise: bool) -> np.ndarray:
    """vectors + N(0, (scale * spread)^2) per dimension; back onto the unit sphere when `renormalise`."""
    noisy = vectors + rng.normal(size=vectors.shape).astype(np.float32) * (scale * spread).astype(np.float32)
    if renormalise:
        noisy /= np.maximum(np.linalg.norm(noisy, axis=1, keepdims=True), 1e-12)
    return noisy


@register
class EmbeddingNoise(Component):
    """Append `copies` noisy copies of every row (or of the rows where boolean column `only` is true).

    The noise on each dimension has standard deviation `scale` times that dimension's standard deviation over all
    rows of the input, so `scale` means the same for any encoder. L2-normalised inputs stay normalised. Copies keep
    every other column (the same item or user, seen slightly differently) and are marked synthetic.
    """

    name = "embedding-noise"

    def __init__(self, column: str = "vector", scale: float = 0.1, copies: int = 1, only: str | None = None) -> None:
        if scale < 0 or copies < 1:
            raise ConfigError("embedding noise needs scale >= 0 and copies >= 1")
        self.column, self.scale, self.copies, self.only = column, scale, copies, only

    def apply(self, table: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
        vectors = vector_matrix(table, self.column)
        spread = vectors.std(axis=0)
        renormalise = bool(np.all(np.abs(np.linalg.norm(vectors, axis=1) - 1) < UNIT_NORM_TOLERANCE))
        chosen = table.filter(pl.col(self.only)) if self.only is not None else table
        base = vector_matrix(chosen, self.column)
        dtype = table.schema[self.column]
        copies = [
            chosen.with_columns(
                pl.Series(self.column, add_gaussian_noise(base, self.scale, spread, rng, renormalise)).cast(dtype), pl.lit(True).alias(SYNTHETIC)
            )
            for _ in range(self.copies)
        ]
        return pl.concat([table, *copies])
