"""The executor protocol batch steps are written against, and its in-process default (Spark lives in pipeline/)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import polars as pl

BatchFunction = Callable[[pl.DataFrame], pl.DataFrame]


class TableMapper(Protocol):
    """Runs a pure batch function over a table; with `group_key`, all rows sharing a key meet in one call."""

    def __call__(self, table: pl.DataFrame, function: BatchFunction, output_schema: dict[str, pl.DataType], group_key: str | None = None) -> pl.DataFrame: ...


def map_in_process(table: pl.DataFrame, function: BatchFunction, output_schema: dict[str, pl.DataType], group_key: str | None = None) -> pl.DataFrame:
    """The default executor: the whole table is one batch (which also holds every group whole)."""
    return function(table).cast(output_schema)
