"""Gaussian noise injection into item or user vectors: noisy synthetic copies of (selected) rows, noise scaled to the vectors' spread."""

from __future__ import annotations

import numpy as np
import polars as pl

from longtail.balance.component import Component, register
from longtail.balance.rows import RowDraws, component_stream, map_rows, with_copies
from longtail.core.errors import ConfigError
from longtail.core.executors import OutputSchema, Rows, RowsT, TableMapper, map_in_process

UNIT_NORM_TOLERANCE = 1e-3


def vector_matrix(table: pl.DataFrame, column: str) -> np.ndarray:
    """The vectors of a list/array column as a rows x dimensions float32 matrix."""
    if column not in table.columns:
        raise ConfigError(f"embedding noise: no vector column {column!r}; columns: {', '.join(table.columns)}")
    vectors = np.asarray(table[column].to_list(), dtype=np.float32).reshape(table.height, -1)
    if not np.all(np.isfinite(vectors)):
        raise ConfigError(f"embedding noise: column {column!r} holds missing or non-finite vector values")
    return vectors


def add_gaussian_noise(vectors: np.ndarray, scale: float, spread: np.ndarray, normals: np.ndarray, renormalise: bool) -> np.ndarray:
    """vectors + `normals` x scale x spread per dimension (N(0, (scale * spread)^2)); back onto the unit sphere when `renormalise`."""
    noisy = vectors + normals.astype(np.float32) * (scale * spread).astype(np.float32)
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

    def moments(self, table: Rows, map_table: TableMapper = map_in_process) -> tuple[np.ndarray, bool]:
        """Each dimension's standard deviation over all rows, and whether every vector has unit length, batch by batch.

        Batches add up their row count, sums and sums of squares (float64); the standard deviation is float32 like
        the vectors, so a different split changes it only in the last bits of a float64 sum, below float32 rounding.
        """
        schema: OutputSchema = {"rows": pl.Int64, "off_unit": pl.Int64, "sums": pl.List(pl.Float64), "squares": pl.List(pl.Float64)}
        parts = map_table(table.select(self.column), self._batch_moments, schema).filter(pl.col("rows") > 0)
        dimensions = len(parts["sums"][0]) if parts.height else 0
        rows = int(parts["rows"].sum())
        sums = np.asarray(parts["sums"].to_list(), dtype=np.float64).reshape(-1, dimensions).sum(axis=0)
        squares = np.asarray(parts["squares"].to_list(), dtype=np.float64).reshape(-1, dimensions).sum(axis=0)
        mean = sums / max(rows, 1)
        spread = np.sqrt(np.maximum(squares / max(rows, 1) - mean**2, 0.0)).astype(np.float32)
        return spread, int(parts["off_unit"].sum()) == 0

    def _batch_moments(self, batch: pl.DataFrame) -> pl.DataFrame:
        vectors = vector_matrix(batch, self.column).astype(np.float64)
        off_unit = int(np.sum(np.abs(np.linalg.norm(vectors, axis=1) - 1) >= UNIT_NORM_TOLERANCE))
        sums, squares = vectors.sum(axis=0).tolist(), (vectors**2).sum(axis=0).tolist()
        return pl.DataFrame({"rows": [batch.height], "off_unit": [off_unit], "sums": [sums], "squares": [squares]})

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        spread, renormalise = self.moments(table, map_table)
        dtype = table.schema[self.column]

        def add_copies(batch: pl.DataFrame, draws: RowDraws) -> pl.DataFrame:
            rows = np.flatnonzero(batch[self.only].to_numpy()) if self.only is not None else np.arange(batch.height)
            chosen = batch[rows]
            base = vector_matrix(chosen, self.column)
            copies = []
            for copy in range(1, self.copies + 1):
                normals = np.stack([draws.generator(int(row), copy).standard_normal(base.shape[1]) for row in rows]) if rows.size else base
                copies.append(chosen.with_columns(pl.Series(self.column, add_gaussian_noise(base, self.scale, spread, normals, renormalise)).cast(dtype)))
            return with_copies(batch, copies)

        return map_rows(table, add_copies, map_table, component_stream(rng, self.name))
