"""Random, stratified and weighted sampling of the rows of a training table (labelled rows or behaviour sequences)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from longtail.balance.component import Component, register
from longtail.balance.sequences import item_counts, last_items
from longtail.core.errors import ConfigError
from longtail.data.columns import SYNTHETIC


def repeat_rows(table: pl.DataFrame, indices: np.ndarray) -> pl.DataFrame:
    """The table's rows at `indices`, in that order; every repeat of a row after its first is marked synthetic."""
    indices = np.asarray(indices, dtype=np.int64)
    _, first = np.unique(indices, return_index=True)
    repeat = np.ones(len(indices), dtype=bool)
    repeat[first] = False
    picked = table[indices]
    return picked.with_columns((pl.col(SYNTHETIC) | pl.Series(values=repeat)).alias(SYNTHETIC))


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


@register
class RandomSample(Component):
    """Uniform random rows: `fraction` or `size` of the table, or `per_class` rows of every class (fewer if a class is smaller,
    unless `replace`); with `replace`, drawing a row again adds a synthetic copy."""

    name = "random-sample"

    def __init__(self, fraction: float | None = None, size: int | None = None, per_class: int | None = None,
                 label: str = "label", replace: bool = False) -> None:
        self.fraction, self.size, self.per_class, self.label, self.replace = fraction, size, per_class, label, replace

    def apply(self, table: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
        if self.per_class is None:
            target = _target_size(table.height, self.fraction, self.size)
            if not self.replace:
                target = min(target, table.height)
            return repeat_rows(table, rng.choice(table.height, size=target, replace=self.replace))
        labels = table[self.label].to_numpy()
        chosen = []
        for value in class_sizes(labels):
            members = np.flatnonzero(labels == value)
            take = self.per_class if self.replace else min(self.per_class, len(members))
            chosen.append(rng.choice(members, size=take, replace=self.replace))
        return repeat_rows(table, np.sort(np.concatenate(chosen)))


@register
class StratifiedSample(Component):
    """A `fraction` or `size` of the table that keeps every class's share (each class keeps at least one row)."""

    name = "stratified-sample"

    def __init__(self, label: str = "label", fraction: float | None = None, size: int | None = None) -> None:
        self.label, self.fraction, self.size = label, fraction, size

    def apply(self, table: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
        share = min(_target_size(table.height, self.fraction, self.size) / max(table.height, 1), 1.0)
        labels = table[self.label].to_numpy()
        chosen = []
        for value, count in class_sizes(labels).items():
            members = np.flatnonzero(labels == value)
            chosen.append(rng.choice(members, size=min(count, max(1, round(share * count))), replace=False))
        return repeat_rows(table, np.sort(np.concatenate(chosen)))


@register
class WeightedSampling(Component):
    """Rows drawn with replacement, each with probability proportional to a per-row weight; a row drawn again is a
    synthetic copy, a row never drawn leaves the table.

    The weight: `by="class"` 1 / (its class size ** exponent) over the `label` column (1 balances the classes in
    expectation); `by="last-item"` popularity(last item) ** -exponent of a behaviour sequence (1 gives every last item
    the same expected number of rows); `by="column"` the values of `weight_column`. Exponent 0 is a plain bootstrap.
    `size` rows are drawn, or `fraction` x the table's rows (default: as many rows as the table).
    """

    name = "weighted-sampling"

    def __init__(self, by: Literal["class", "last-item", "column"] = "class", exponent: float = 1.0, label: str = "label",
                 weight_column: str | None = None, size: int | None = None, fraction: float | None = None) -> None:
        if by not in ("class", "last-item", "column") or (by == "column") != (weight_column is not None):
            raise ConfigError(f"weighted-sampling: by must be class, last-item or column (got {by!r}), with weight_column exactly when by is column")
        if exponent < 0 or (size is not None and size <= 0) or (fraction is not None and fraction <= 0):
            raise ConfigError("weighted-sampling: exponent must be >= 0, size and fraction > 0")
        self.by, self.exponent, self.label, self.weight_column, self.size, self.fraction = by, exponent, label, weight_column, size, fraction

    def probabilities(self, table: pl.DataFrame) -> np.ndarray:
        """Each row's probability of being drawn."""
        if self.by == "column":
            assert self.weight_column is not None  # __init__ requires it exactly when by is column
            weights = table[self.weight_column].cast(pl.Float64).to_numpy()
        elif self.by == "last-item":
            popularity = item_counts(table)[last_items(table)].astype(np.float64)
            weights = np.maximum(popularity, 1.0) ** -self.exponent
        else:
            labels = table[self.label].to_numpy()
            sizes = class_sizes(labels)
            weights = np.array([sizes[value] for value in labels.tolist()], dtype=np.float64) ** -self.exponent
        if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.sum() <= 0:
            raise ConfigError("weighted-sampling needs finite, non-negative weights with a positive sum")
        return weights / weights.sum()

    def apply(self, table: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
        draws = self.size if self.size is not None else round((1.0 if self.fraction is None else self.fraction) * table.height)
        picks = rng.choice(table.height, size=draws, replace=True, p=self.probabilities(table))
        return repeat_rows(table, np.sort(picks))
