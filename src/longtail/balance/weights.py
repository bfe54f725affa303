"""Class-balanced loss weights (inverse frequency, or Cui et al. 2019 effective number of samples) in the `weight` column."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from longtail.balance.component import Component, register
from longtail.balance.rows import RowDraws, component_stream, map_rows, repeat, value_counts
from longtail.core.executors import RowsT, TableMapper
from longtail.data.columns import WEIGHT

WeightMethod = Literal["inverse", "effective"]


def class_weights(sizes: dict, method: WeightMethod = "effective", beta: float = 0.999) -> dict:
    """Per-class loss weights, scaled so the weighted row count equals the row count (the loss keeps its scale).

    inverse: w_c proportional to 1 / n_c, so every class carries the same total weight.
    effective: w_c proportional to (1 - beta) / (1 - beta ** n_c), the inverse of the "effective number" of samples
    (Cui et al., CVPR 2019); beta 0 gives equal weights, beta -> 1 approaches inverse frequency.
    """
    counts = np.array(list(sizes.values()), dtype=np.float64)
    if method == "inverse":
        raw = 1.0 / counts
    elif method == "effective":
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1); got {beta}")
        raw = (1.0 - beta) / (1.0 - np.power(beta, counts))
    else:
        raise ValueError(f"unknown class-weight method {method!r}; use inverse or effective")
    scaled = raw * counts.sum() / (raw * counts).sum()
    return dict(zip(sizes, scaled.tolist(), strict=True))


@register
class ClassBalancedWeights(Component):
    """Multiply every row's `weight` by its class's balanced loss weight; rows and their values are untouched."""

    name = "class-weights"

    def __init__(self, label: str = "label", method: WeightMethod = "effective", beta: float = 0.999) -> None:
        self.label, self.method, self.beta = label, method, beta

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        weights = class_weights(value_counts(table, self.label, map_table), self.method, self.beta)

        def reweight(batch: pl.DataFrame, draws: RowDraws) -> pl.DataFrame:
            factor = batch[self.label].replace_strict(weights, return_dtype=pl.Float64)
            return repeat(batch.with_columns((pl.col(WEIGHT) * factor).alias(WEIGHT)), np.ones(batch.height, dtype=np.int64))

        return map_rows(table, reweight, map_table, component_stream(rng, self.name))
