"""The executor protocol batch steps are written against, and its in-process default (Spark lives in pipeline/)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, TypeAlias

import polars as pl

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

BatchFunction = Callable[[pl.DataFrame], pl.DataFrame]
# Column name -> dtype; a dtype may be given as a class (pl.String) or an instance (pl.Datetime("us", "UTC")).
OutputSchema: TypeAlias = "Mapping[str, PolarsDataType]"


class TableMapper(Protocol):
    """Runs a pure batch function over a table; with `group_key`, all rows sharing a key meet in one call."""

    def __call__(self, table: pl.DataFrame, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> pl.DataFrame: ...


def map_in_process(table: pl.DataFrame, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> pl.DataFrame:
    """The default executor: the whole table is one batch (which also holds every group whole)."""
    return function(table).cast(pl.Schema(output_schema))
