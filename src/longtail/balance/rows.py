"""Row-local work of the balancing and augmentation components, run batch by batch through a table mapper.

Every row gets a stable key before the table is split: a hash of its content and, among rows identical in every
column, its rank by input position. Its random draws come from that key (core.rowrandom), so the rows that come out
do not depend on how the table is split into batches or where they run. Identical rows meet in one batch (the key
is the mapper's group key), which the rank needs. The result comes back in input order: every kept original row
(copy 0) in input position, then the first copies of rows, then the second copies, and so on.

The order is carried in columns: ORDER0 is a row's input position and each row mapping adds the copy number it gave
as the next ORDER column. A table the process holds is sorted by them and they are dropped at once; a table that
stays partitioned (core.executors.PartitionedTable, e.g. Parquet parts on Spark executors) keeps them, so its
written rows, sorted by `order_columns` (`in_row_order`), are the in-process result row for row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import cast

import numpy as np
import polars as pl

from longtail.core.errors import ExecutorError
from longtail.core.executors import OutputSchema, PartitionedTable, Rows, RowsT, TableMapper
from longtail.core.rowrandom import combine_keys, row_generator, stream_key, uniforms
from longtail.data.columns import SYNTHETIC

ROW_KEY, COPY, ORDER = "__row_key", "__copy", "__order"
POSITION = f"{ORDER}0"
# A fixed hash seed: keys must be the same in every process that computes them.
_HASH_SEED = 17


@dataclass(frozen=True)
class RowDraws:
    """The random draws of the rows of one batch, in batch order."""

    stream: int
    keys: np.ndarray

    def uniform(self, draw: int = 0) -> np.ndarray:
        """The `draw`-th uniform in [0, 1) of every row."""
        return uniforms(self.stream, self.keys, draw)

    def generator(self, row: int, draw: int = 0) -> np.random.Generator:
        """A generator of one row's own (for row-wise work that needs many draws, e.g. an augmentation)."""
        return row_generator(self.stream, int(self.keys[row]), draw)


RowFunction = Callable[[pl.DataFrame, RowDraws], pl.DataFrame]


def component_stream(rng: np.random.Generator, name: str) -> int:
    """The stream key of one component's application: one draw from the run's generator, mixed with its name."""
    return stream_key(int(rng.integers(2**63 - 1)), name)


def order_columns(columns: Sequence[str]) -> list[str]:
    """The ORDER columns among `columns`, most significant (the newest copy number) first, the input position last."""
    return sorted((c for c in columns if c.startswith(ORDER) and c.removeprefix(ORDER).isdigit()), key=lambda c: -int(c.removeprefix(ORDER)))


def in_row_order(table: pl.DataFrame) -> pl.DataFrame:
    """A table with ORDER columns (e.g. read back from a partitioned run's Parquet parts) in input order, without them."""
    order = order_columns(table.columns)
    return table.sort(order).drop(order)


def row_keys(batch: pl.DataFrame, content: Sequence[str]) -> pl.Series:
    """Each row's content hash over `content` (fixed seed: the same in every process), as ROW_KEY."""
    return batch.select(content).hash_rows(seed=_HASH_SEED).reinterpret(signed=True).alias(ROW_KEY)


def map_rows(table: RowsT, function: RowFunction, map_table: TableMapper, stream: int) -> RowsT:
    """Run a row-local `function` over `table` through `map_table`; it returns each batch's rows with COPY (see `repeat`).

    A held table comes back in input order; a PartitionedTable stays partitioned with one more ORDER column.
    """
    if isinstance(table, pl.DataFrame):
        positioned = table.with_columns(row_keys(table, table.columns), pl.int_range(pl.len(), dtype=pl.Int64).alias(POSITION))
        return cast(RowsT, in_row_order(_map_keyed(positioned, function, map_table, stream, [POSITION], list(table.columns))))
    if not isinstance(table, PartitionedTable):
        raise ExecutorError(f"cannot map the rows of a {type(table).__name__}: a polars DataFrame or a PartitionedTable is needed")
    order = order_columns(table.schema.names())
    if not order:
        raise ExecutorError(f"the partitioned table has no {POSITION} column (its input position), so its rows have no order")
    content = [c for c in table.schema.names() if c not in order]
    keyed: PartitionedTable = table.transform(lambda batch: batch.with_columns(row_keys(batch, content)), {**table.schema, ROW_KEY: pl.Int64})
    return cast(RowsT, _map_keyed(keyed, function, _transform, stream, order, content))


def _map_keyed(keyed: RowsT, function: RowFunction, map_table: Callable[..., RowsT], stream: int, order: list[str], content: list[str]) -> RowsT:
    """The row function batch by batch, identical rows (one ROW_KEY) together; its COPY becomes the next ORDER column."""
    copy = f"{ORDER}{len(order)}"
    output: OutputSchema = {**{c: keyed.schema[c] for c in content}, **{c: pl.Int64 for c in order}, copy: pl.Int64}
    return map_table(keyed, partial(_run_batch, function=function, stream=stream, order=order, copy=copy, columns=list(output)), output, ROW_KEY)


def _transform(table: PartitionedTable, function: Callable[[pl.DataFrame], pl.DataFrame], output: OutputSchema, group_key: str) -> PartitionedTable:
    """The rows' mapping on a partitioned table: they stay where they are, grouped by `group_key`."""
    return table.transform(function, output, group_key)


def _run_batch(batch: pl.DataFrame, function: RowFunction, stream: int, order: Sequence[str], copy: str, columns: Sequence[str]) -> pl.DataFrame:
    """One batch: the rows' keys (content hash, then rank among identical rows in input order), then the row function."""
    ranked = batch.select(ROW_KEY, *order).with_row_index("__row").sort(order)
    occurrence = ranked.select("__row", (pl.int_range(pl.len()).over(ROW_KEY) + 1).alias("rank")).sort("__row")["rank"]
    keys = combine_keys(batch[ROW_KEY].reinterpret(signed=False).to_numpy(), occurrence.to_numpy().astype(np.uint64))
    return function(batch.drop(ROW_KEY), RowDraws(stream, keys)).rename({COPY: copy}).select(columns)


def repeat(batch: pl.DataFrame, counts: np.ndarray) -> pl.DataFrame:
    """Each row `counts` times (0 drops it), numbered by COPY; every copy after the first is marked synthetic."""
    counts = np.asarray(counts, dtype=np.int64)
    rows = np.repeat(np.arange(batch.height), counts)
    copy = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return batch[rows].with_columns(pl.Series(COPY, copy, dtype=pl.Int64), (pl.col(SYNTHETIC) | pl.Series(copy > 0)).alias(SYNTHETIC))


def with_copies(batch: pl.DataFrame, copies: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The batch's rows (COPY 0) followed by made-up rows (COPY 1, 2, … in the order given), marked synthetic."""
    numbered = [frame.with_columns(pl.lit(number, dtype=pl.Int64).alias(COPY), pl.lit(True).alias(SYNTHETIC)) for number, frame in enumerate(copies, 1)]
    return pl.concat([batch.with_columns(pl.lit(0, dtype=pl.Int64).alias(COPY)), *numbered])


def keep_with_probability(batch: pl.DataFrame, probability: np.ndarray, draws: RowDraws) -> pl.DataFrame:
    """Each row kept with its own probability (independent Bernoulli draws)."""
    return repeat(batch, (draws.uniform() < probability).astype(np.int64))


def poisson_counts(mean: np.ndarray, draws: RowDraws) -> np.ndarray:
    """How often each row is drawn when draws with replacement are made per row: Poisson(mean), by inversion of its uniform."""
    from scipy.stats import poisson

    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), draws.keys.shape)
    counts = np.zeros(mean.shape, dtype=np.int64)
    drawn = mean > 0  # a row with mean 0 is never drawn (scipy has no Poisson(0))
    counts[drawn] = np.maximum(poisson.ppf(draws.uniform()[drawn], mean[drawn]), 0)
    return counts


def value_counts(table: Rows, column: str, map_table: TableMapper) -> dict:
    """Rows per value of `column`, counted batch by batch through `map_table`, in value order."""
    schema: OutputSchema = {column: table.schema[column], "count": pl.Int64}
    counted = map_table(table.select(column), partial(_count_values, column=column), schema)
    totals = counted.group_by(column).agg(pl.col("count").sum()).sort(column)
    return dict(zip(totals[column].to_list(), totals["count"].to_list(), strict=True))


def _count_values(batch: pl.DataFrame, column: str) -> pl.DataFrame:
    return batch.group_by(column).agg(pl.len().cast(pl.Int64).alias("count"))
