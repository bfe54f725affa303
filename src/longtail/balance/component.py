"""The one interface every balancing and augmentation component implements, and how components compose."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, cast

import numpy as np
import polars as pl

from longtail.core.config import ComponentSpec
from longtail.core.errors import NotMappableError
from longtail.core.executors import RowsT, TableMapper, map_in_process
from longtail.core.registry import Registry
from longtail.data.columns import SYNTHETIC, WEIGHT


class Component(ABC):
    """A step from one training table to another: re-sample, re-weight or add synthetic rows.

    The table is whatever the model trains on — behaviour sequences (a list column of item indices),
    a tabular set with a label column, or item texts — plus two bookkeeping columns that
    `as_training_table` adds: `synthetic` (rows a component made up) and `weight` (per-row loss weight).
    Components never change an original row's values, only its weight or how often it appears,
    and every row they create has `synthetic = True`. Parameters go in `__init__`; randomness comes
    only from the generator passed to `apply`, so a seed reproduces the result.

    There is one implementation, `apply_mapped`: table-wide statistics and then the row-level work run batch by
    batch through a table mapper (balance.rows), and `apply` is that with the in-process mapper.
    """

    name: ClassVar[str]

    def apply(self, table: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
        """The transformed training table (same columns as the input), in this process."""
        return self.apply_mapped(table, rng, map_in_process)

    @abstractmethod
    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        """The transformed training table, its statistics and row-level work run batch by batch through `map_table`."""


class WholeTableComponent(Component):
    """A component that needs every row in one place (e.g. nearest neighbours across rows, a model fitted on them).

    It runs only in-process: through any other mapper it refuses with NotMappableError rather than collect the
    table to the driver, because a table worth a cluster would not fit there.
    """

    needs_whole_table: ClassVar[str]  # why, in a few words, for the error message

    @abstractmethod
    def apply(self, table: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
        """The transformed training table, computed over the whole table at once."""

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        if map_table is not map_in_process or not isinstance(table, pl.DataFrame):
            raise NotMappableError(
                f"component {self.name!r} cannot run per partition: {self.needs_whole_table}; run it with pipeline.executor: local "
                "on a table that fits in memory, or use a row-local component (random-sample, stratified-sample, weighted-sampling, "
                "class-weights) on the cluster"
            )
        return cast(RowsT, self.apply(table, rng))


COMPONENTS: Registry[type[Component]] = Registry("balancing/augmentation component")
register = COMPONENTS.register


def build(name: str, **parameters: Any) -> Component:
    """The registered component called `name`, built with `parameters`."""
    return COMPONENTS.get(name)(**parameters)


def build_chain(specs: Sequence[ComponentSpec]) -> Chain:
    """The components a config lists, built by name and chained in order (an empty list changes nothing)."""
    return Chain([build(spec.name, **spec.params) for spec in specs])


def as_training_table(table: pl.DataFrame) -> pl.DataFrame:
    """The table with `synthetic` (False) and `weight` (1.0) columns added where missing."""
    missing = []
    if SYNTHETIC not in table.columns:
        missing.append(pl.lit(False).alias(SYNTHETIC))
    if WEIGHT not in table.columns:
        missing.append(pl.lit(1.0, dtype=pl.Float64).alias(WEIGHT))
    return table.with_columns(missing) if missing else table


class Chain(Component):
    """Components applied in order, each to the previous one's output."""

    name = "chain"

    def __init__(self, components: Sequence[Component]) -> None:
        self.components = list(components)

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        for component in self.components:
            table = component.apply_mapped(table, rng, map_table)
        return table


def run(
    component: Component, table: pl.DataFrame, seed: int, on_step: Callable[[str], None] | None = None, map_table: TableMapper = map_in_process
) -> pl.DataFrame:
    """Apply `component` to the training table with a generator seeded by `seed`, its statistics and rows through `map_table`."""
    if on_step is not None:
        on_step(component.name)
    return component.apply_mapped(as_training_table(table), np.random.default_rng(seed), map_table)
