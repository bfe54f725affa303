"""The executor protocol batch steps are written against, and its in-process default (Spark lives in pipeline/)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, Self, TypeAlias, TypeVar, runtime_checkable

import polars as pl

from longtail.core.errors import ExecutorError

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

BatchFunction = Callable[[pl.DataFrame], pl.DataFrame]
# Column name -> dtype; a dtype may be given as a class (pl.String) or an instance (pl.Datetime("us", "UTC")).
OutputSchema: TypeAlias = "Mapping[str, PolarsDataType]"


class Rows(Protocol):
    """What a component reads of its table: a polars DataFrame the process holds, or a PartitionedTable that stays put."""

    @property
    def height(self) -> int: ...

    @property
    def schema(self) -> pl.Schema: ...

    def select(self, *columns: str) -> Self: ...


RowsT = TypeVar("RowsT", bound=Rows)


@runtime_checkable
class PartitionedTable(Rows, Protocol):
    """A table whose rows stay where they are (e.g. Parquet parts on a cluster's executors): functions go to the rows."""

    def gather(self, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> pl.DataFrame:
        """`function` run on every partition, its (small: e.g. per-partition counts) results brought back."""
        ...

    def transform(self, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> Self:
        """`function` run on every partition (rows sharing `group_key` in one), its rows staying partitioned."""
        ...


class TableMapper(Protocol):
    """Runs a pure batch function over a table; with `group_key`, all rows sharing a key meet in one call."""

    def __call__(self, table: Rows, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> pl.DataFrame: ...


def held_table(table: Rows) -> pl.DataFrame:
    """The table as the DataFrame this process holds; raises ExecutorError for a table that stays on a cluster."""
    if not isinstance(table, pl.DataFrame):
        raise ExecutorError(f"a {type(table).__name__} stays partitioned: map it with map_partitioned, not a mapper over a held table")
    return table


def map_in_process(table: Rows, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> pl.DataFrame:
    """The default executor: the whole table is one batch (which also holds every group whole)."""
    return function(held_table(table)).cast(pl.Schema(output_schema))


def map_partitioned(table: Rows, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> pl.DataFrame:
    """The mapper of a PartitionedTable: `function` runs where the rows are and only its results come back."""
    if not isinstance(table, PartitionedTable):
        raise ExecutorError(f"map_partitioned needs a partitioned table, got a {type(table).__name__}; use map_in_process")
    return table.gather(function, output_schema, group_key)
