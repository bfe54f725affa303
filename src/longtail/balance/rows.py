"""Row-local work of the balancing and augmentation components, run batch by batch through a table mapper.

Every row gets a stable key before the table is split: a hash of its content and, among rows identical in every
column, its rank by input position. Its random draws come from that key (core.rowrandom), so the rows that come out
do not depend on how the table is split into batches or where they run. Identical rows meet in one batch (the key
is the mapper's group key), which the rank needs. The result comes back in input order: every kept original row
(copy 0) in input position, then the first copies of rows, then the second copies, and so on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import polars as pl

from longtail.core.executors import OutputSchema, TableMapper
from longtail.core.rowrandom import combine_keys, row_generator, stream_key, uniforms
from longtail.data.columns import SYNTHETIC

ROW_KEY, POSITION, COPY = "__row_key", "__position", "__copy"
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


def map_rows(table: pl.DataFrame, function: RowFunction, map_table: TableMapper, stream: int) -> pl.DataFrame:
    """Run a row-local `function` over `table` through `map_table`; it returns each batch's rows with COPY (see `repeat`)."""
    keyed = table.with_columns(table.hash_rows(seed=_HASH_SEED).reinterpret(signed=True).alias(ROW_KEY), pl.int_range(pl.len(), dtype=pl.Int64).alias(POSITION))
    output: OutputSchema = {**table.schema, POSITION: pl.Int64, COPY: pl.Int64}
    mapped = map_table(keyed, partial(_run_batch, function=function, stream=stream, columns=list(output)), output, ROW_KEY)
    return mapped.sort(COPY, POSITION).drop(POSITION, COPY)


def _run_batch(batch: pl.DataFrame, function: RowFunction, stream: int, columns: Sequence[str]) -> pl.DataFrame:
    """One batch: the rows' keys (content hash, then rank among identical rows by position), then the row function."""
    occurrence = batch.select(pl.col(POSITION).rank("ordinal").over(ROW_KEY)).to_series().to_numpy().astype(np.uint64)
    keys = combine_keys(batch[ROW_KEY].reinterpret(signed=False).to_numpy(), occurrence)
    return function(batch.drop(ROW_KEY), RowDraws(stream, keys)).select(columns)


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


def value_counts(table: pl.DataFrame, column: str, map_table: TableMapper) -> dict:
    """Rows per value of `column`, counted batch by batch through `map_table`, in value order."""
    schema: OutputSchema = {column: table.schema[column], "count": pl.Int64}
    counted = map_table(table.select(column), partial(_count_values, column=column), schema)
    totals = counted.group_by(column).agg(pl.col("count").sum()).sort(column)
    return dict(zip(totals[column].to_list(), totals["count"].to_list(), strict=True))


def _count_values(batch: pl.DataFrame, column: str) -> pl.DataFrame:
    return batch.group_by(column).agg(pl.len().cast(pl.Int64).alias("count"))
