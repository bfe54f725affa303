"""Random, stratified and weighted sampling of the rows of a training table (labelled rows or behaviour sequences).

Every decision is per row (balance.rows): a row is kept with its own probability, or drawn a Poisson number of
times when drawing with replacement, so the components run per partition and the number of rows that come out is
the requested one in expectation (binomial / Poisson spread around it), not exactly.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import polars as pl

from longtail.balance.component import Component, register
from longtail.balance.rows import RowDraws, component_stream, keep_with_probability, map_rows, poisson_counts, repeat, value_counts
from longtail.balance.sequences import item_counts, last_item_counts, last_items
from longtail.core.errors import ConfigError
from longtail.core.executors import Rows, RowsT, TableMapper, map_in_process
from longtail.data.columns import SYNTHETIC


def repeat_rows(table: pl.DataFrame, indices: np.ndarray) -> pl.DataFrame:
    """The table's rows at `indices`, in that order; every repeat of a row after its first is marked synthetic."""
    indices = np.asarray(indices, dtype=np.int64)
    _, first = np.unique(indices, return_index=True)
    repeat_mask = np.ones(len(indices), dtype=bool)
    repeat_mask[first] = False
    picked = table[indices]
    return picked.with_columns((pl.col(SYNTHETIC) | pl.Series(values=repeat_mask)).alias(SYNTHETIC))


def class_sizes(labels: np.ndarray) -> dict:
    """Rows per class label, in label order."""
    values, counts = np.unique(labels, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def _target_size(rows: int, fraction: float | None, size: int | None) -> int:
    if size is not None and fraction is None:
        return size
    if fraction is not None and size is None:
        return round(fraction * rows)
    raise ConfigError("give exactly one of fraction or size for a sampler")


def _per_class(batch: pl.DataFrame, label: str, values: dict) -> np.ndarray:
    """Each row's entry of a per-class mapping."""
    return batch[label].replace_strict(values, return_dtype=pl.Float64).to_numpy()


def _draw(batch: pl.DataFrame, mean: np.ndarray, replace: bool, draws: RowDraws) -> pl.DataFrame:
    """Rows drawn `mean` times on average: a Poisson count with replacement, else kept with probability min(mean, 1)."""
    if replace:
        return repeat(batch, poisson_counts(mean, draws))
    return keep_with_probability(batch, np.minimum(mean, 1.0), draws)


@register
class RandomSample(Component):
    """Uniform random rows: `fraction` or `size` of the table, or `per_class` rows of every class (all of a smaller class,
    unless `replace`), in expectation; with `replace`, rows are drawn with replacement and a repeat is a synthetic copy."""

    name = "random-sample"

    def __init__(
        self, fraction: float | None = None, size: int | None = None, per_class: int | None = None, label: str = "label", replace: bool = False
    ) -> None:
        self.fraction, self.size, self.per_class, self.label, self.replace = fraction, size, per_class, label, replace

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        stream = component_stream(rng, self.name)
        if self.per_class is None:
            share = _target_size(table.height, self.fraction, self.size) / max(table.height, 1)
            return map_rows(table, lambda batch, draws: _draw(batch, np.full(batch.height, share), self.replace, draws), map_table, stream)
        per_class = self.per_class
        shares = {value: per_class / count for value, count in value_counts(table, self.label, map_table).items()}
        return map_rows(table, lambda batch, draws: _draw(batch, _per_class(batch, self.label, shares), self.replace, draws), map_table, stream)


@register
class StratifiedSample(Component):
    """A `fraction` or `size` of the table that keeps every class's share in expectation (a class expects at least one row)."""

    name = "stratified-sample"

    def __init__(self, label: str = "label", fraction: float | None = None, size: int | None = None) -> None:
        self.label, self.fraction, self.size = label, fraction, size

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        stream = component_stream(rng, self.name)
        share = min(_target_size(table.height, self.fraction, self.size) / max(table.height, 1), 1.0)
        keep = {value: min(count, max(1, round(share * count))) / count for value, count in value_counts(table, self.label, map_table).items()}
        return map_rows(table, lambda batch, draws: keep_with_probability(batch, _per_class(batch, self.label, keep), draws), map_table, stream)


@register
class WeightedSampling(Component):
    """Rows drawn with replacement, each with probability proportional to a per-row weight; a row drawn again is a
    synthetic copy, a row never drawn leaves the table.

    The weight: `by="class"` 1 / (its class size ** exponent) over the `label` column (1 balances the classes in
    expectation); `by="last-item"` popularity(last item) ** -exponent of a behaviour sequence (1 gives every last item
    the same expected number of rows); `by="column"` the values of `weight_column`. Exponent 0 is a plain bootstrap.
    `size` rows are drawn, or `fraction` x the table's rows (default: as many rows as the table), in expectation:
    each row is drawn a Poisson(draws x its probability) number of times (the Poisson bootstrap), so rows are
    decided one at a time.
    """

    name = "weighted-sampling"

    def __init__(
        self,
        by: Literal["class", "last-item", "column"] = "class",
        exponent: float = 1.0,
        label: str = "label",
        weight_column: str | None = None,
        size: int | None = None,
        fraction: float | None = None,
    ) -> None:
        if by not in ("class", "last-item", "column") or (by == "column") != (weight_column is not None):
            raise ConfigError(f"weighted-sampling: by must be class, last-item or column (got {by!r}), with weight_column exactly when by is column")
        if exponent < 0 or (size is not None and size <= 0) or (fraction is not None and fraction <= 0):
            raise ConfigError("weighted-sampling: exponent must be >= 0, size and fraction > 0")
        self.by, self.exponent, self.label, self.weight_column, self.size, self.fraction = by, exponent, label, weight_column, size, fraction

    def weigher(self, table: Rows, map_table: TableMapper) -> tuple[dict | np.ndarray | None, float]:
        """What a batch needs to weigh its rows (class sizes, item popularity, or nothing for a column) and the weights' total."""
        if self.by == "column":
            assert self.weight_column is not None  # __init__ requires it exactly when by is column
            totals = map_table(table.select(self.weight_column), self._column_total, {"total": pl.Float64})
            return None, math.fsum(totals["total"].to_list())
        if self.by == "last-item":
            popularity = item_counts(table, map_table).astype(np.float64)
            items, rows = last_item_counts(table, map_table)
            return popularity, float(np.sum(rows * np.maximum(popularity[items], 1.0) ** -self.exponent))
        sizes = value_counts(table, self.label, map_table)
        return sizes, float(sum(count * float(count) ** -self.exponent for count in sizes.values()))

    def _column_total(self, batch: pl.DataFrame) -> pl.DataFrame:
        return pl.DataFrame({"total": [math.fsum(self.weights(batch, None).tolist())]})

    def weights(self, batch: pl.DataFrame, statistic: dict | np.ndarray | None) -> np.ndarray:
        """Each row's (unnormalised) weight; raises ConfigError on a negative or non-finite one."""
        if self.by == "column":
            assert self.weight_column is not None
            weights = batch[self.weight_column].cast(pl.Float64).to_numpy()
        elif self.by == "last-item":
            assert isinstance(statistic, np.ndarray)
            weights = np.maximum(statistic[last_items(batch)], 1.0) ** -self.exponent
        else:
            assert isinstance(statistic, dict)
            weights = _per_class(batch, self.label, statistic) ** -self.exponent
        if not np.all(np.isfinite(weights)) or (weights.size and weights.min() < 0):
            raise ConfigError(f"weighted-sampling needs finite, non-negative weights (by {self.by})")
        return weights

    def probabilities(self, table: pl.DataFrame, map_table: TableMapper = map_in_process) -> np.ndarray:
        """Each row's probability of being drawn (in one draw)."""
        statistic, total = self.weigher(table, map_table)
        return self.weights(table, statistic) / _positive(total)

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        stream = component_stream(rng, self.name)
        draws = self.size if self.size is not None else round((1.0 if self.fraction is None else self.fraction) * table.height)
        statistic, total = self.weigher(table, map_table)
        scale = draws / _positive(total)
        return map_rows(table, lambda batch, row_draws: repeat(batch, poisson_counts(self.weights(batch, statistic) * scale, row_draws)), map_table, stream)


def _positive(total: float) -> float:
    if not total > 0:
        raise ConfigError("weighted-sampling needs weights with a positive sum")
    return total
