"""Training tables in Parquet parts on a Spark cluster, the driver never holding rows: per-user sequences built from event
parts, and balancing and augmentation of a training table.

Executors read the parts (numbering each row by its part and place, like the audit's `source_row`), compute the
row keys, run the components' row functions per partition and write the result as Parquet parts; the driver
receives only the components' statistics (per-partition counts) and row totals. The components and their row
functions are the in-process ones (balance.rows): the written rows, sorted by their ORDER columns, are the
in-process result on the parts concatenated in name order, row for row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import polars as pl

from longtail.balance.component import Chain, Component, as_training_table
from longtail.balance.rows import POSITION, order_columns
from longtail.balance.sequences import ITEMS
from longtail.core.artifacts import atomic_folder
from longtail.core.config import LongtailConfig, PipelineConfig
from longtail.core.errors import InputDataError
from longtail.core.executors import BatchFunction, OutputSchema, map_partitioned
from longtail.data.columns import SYNTHETIC
from longtail.data.loaders import PARQUET_SUFFIXES, PART_ROW_STRIDE, part_files, read_raw
from longtail.data.schema import SOURCE_ROW
from longtail.data.splits import leave_one_out_train, user_sequence_rows
from longtail.pipeline.spark import conform, run_partition, spark_ddl, start_session
from longtail.pipeline.spark_audit import event_schema, read_event_parts

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

ROWS_FOLDER = "rows"
CATALOGUE_FILE = "catalogue.parquet"
TRAINING_SEQUENCES_SCHEMA: OutputSchema = {"user_id": pl.String, ITEMS: pl.List(pl.Int64)}


class ClusterTable:
    """A table whose rows stay on the Spark executors (a core.executors.PartitionedTable); `returned` lists what came back."""

    def __init__(self, frame: DataFrame, schema: OutputSchema, partitions: int, returned: list[tuple[tuple[str, ...], int]]) -> None:
        self.frame = frame
        self._schema = pl.Schema(schema)
        self.partitions = partitions
        # (columns, rows) of every frame brought to the driver, shared by the tables derived from this one
        self.returned = returned
        self._height: int | None = None

    @property
    def height(self) -> int:
        """Rows, counted on the executors."""
        if self._height is None:
            self._height = int(self.frame.count())
        return self._height

    @property
    def schema(self) -> pl.Schema:
        """The columns as polars types (ORDER columns included)."""
        return self._schema

    def select(self, *columns: str) -> Self:
        """The named columns, plus the ORDER columns that keep the rows' in-process order."""
        kept = [*columns, *(c for c in order_columns(self._schema.names()) if c not in columns)]
        return type(self)(self.frame.select(*kept), {c: self._schema[c] for c in kept}, self.partitions, self.returned)

    def _mapped(self, function: BatchFunction, output_schema: OutputSchema, group_key: str | None) -> DataFrame:
        frame = self.frame.repartition(self.partitions, group_key) if group_key else self.frame
        return frame.mapInPandas(
            partial(run_partition, function=function, input_schema=dict(self._schema), output_schema=output_schema), spark_ddl(output_schema)
        )

    def gather(self, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> pl.DataFrame:
        """`function` per partition; only its results (e.g. per-partition counts) come to the driver."""
        collected = pl.from_arrow(self._mapped(function, output_schema, group_key).toArrow())
        assert isinstance(collected, pl.DataFrame)  # a Spark result is a table, never a single column
        self.returned.append((tuple(output_schema), collected.height))
        return conform(collected, output_schema)

    def transform(self, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> Self:
        """`function` per partition, its rows staying on the executors (kept there once computed when grouped, for the next step's statistics)."""
        from pyspark import StorageLevel

        frame = self._mapped(function, output_schema, group_key)
        if group_key is not None:
            frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        return type(self)(frame, output_schema, self.partitions, self.returned)

    def write_parquet(self, folder: Path) -> None:
        """The rows as Parquet parts in `folder`, written by the executors."""
        self.frame.write.parquet(str(folder))


def _read_parts(listing: Iterator[pd.DataFrame], schema: OutputSchema) -> Iterator[pd.DataFrame]:
    """Worker side: each assigned part as a training table whose POSITION is part index x PART_ROW_STRIDE + row."""
    for frame in listing:
        for index, path in zip(frame["part"], frame["path"], strict=True):
            table = as_training_table(read_raw(path))
            if table.height >= PART_ROW_STRIDE:
                raise InputDataError(path, f"{table.height:,} rows in one part file; split it into parts of under {PART_ROW_STRIDE:,} rows")
            position = pl.int_range(pl.len(), dtype=pl.Int64) + int(index) * PART_ROW_STRIDE
            yield conform(table.with_columns(position.alias(POSITION)), schema).to_pandas()


def part_schema(path: Path) -> OutputSchema:
    """The training table's columns as the first part gives them (a Parquet footer, else that one file), with POSITION."""
    first = part_files(path)[0]
    sample = pl.DataFrame(schema=pl.read_parquet_schema(first)) if first.suffix.lower() in PARQUET_SUFFIXES else read_raw(first).head(0)
    return {**as_training_table(sample).schema, POSITION: pl.Int64}


def read_training_parts(session: SparkSession, path: str | Path, partitions: int) -> ClusterTable:
    """A training table in a file or a folder of part files, read by the executors (one task per part)."""
    parts = part_files(Path(path).resolve())
    schema = part_schema(Path(path).resolve())
    listing = session.sparkContext.parallelize([(index, str(part)) for index, part in enumerate(parts)], len(parts))
    frame = listing.toDF("part int, path string").mapInPandas(partial(_read_parts, schema=schema), spark_ddl(schema))
    return ClusterTable(frame, schema, partitions, [])


def apply_to_parts(component: Component, table: ClusterTable, seed: int) -> ClusterTable:
    """`component` over a cluster table with a generator seeded by `seed` (as balance.component.run in-process)."""
    return component.apply_mapped(table, np.random.default_rng(seed), map_partitioned)


def balance_files(components: Sequence[Component], input_path: str | Path, out_dir: str | Path, seed: int, config: PipelineConfig) -> dict[str, Any]:
    """Apply the components in order to the training table in `input_path` on the cluster; executors write `out_dir/rows`.

    Returns the figures the driver gathered: input and output rows, synthetic rows, the ORDER columns to sort the
    written rows by for the in-process order, and how many rows of aggregates came back to the driver.
    """
    from pyspark.sql import functions as F

    out_dir = Path(out_dir).resolve()  # executors run in their own working folders
    session = start_session(config, "longtail-balance-files")
    try:
        table = read_training_parts(session, input_path, config.spark_partitions)
        balanced = apply_to_parts(Chain(components), table, seed)
        with atomic_folder(out_dir) as staging:
            balanced.write_parquet(staging / ROWS_FOLDER)
        written = session.read.parquet(str(out_dir / ROWS_FOLDER))
        totals = written.agg(F.count(F.lit(1)).alias("rows"), F.sum(F.col(SYNTHETIC).cast("long")).alias("synthetic")).first()
        assert totals is not None  # an aggregate without grouping always has one row
        return {
            "input_rows": table.height,
            "output_rows": int(totals["rows"]),
            "synthetic_rows": int(totals["synthetic"] or 0),
            "order_columns": order_columns(balanced.schema.names()),
            "returned_to_driver": {
                "frames": len(balanced.returned),
                "rows": sum(rows for _, rows in balanced.returned),
                "columns": sorted({column for columns, _ in balanced.returned for column in columns}),
            },
        }
    finally:
        session.stop()


def _training_sequences(batch: pl.DataFrame) -> pl.DataFrame:
    """Worker side: each user's items in time order (data.splits.user_sequence_rows), cut to the leave-one-out training part."""
    return user_sequence_rows(batch).select("user_id", leave_one_out_train(pl.col("item")).alias(ITEMS))


def sequence_parts(items: pl.DataFrame, events_path: str | Path, out_dir: str | Path, config: LongtailConfig) -> dict[str, Any]:
    """Leave-one-out training sequences per user (user_id, items) from event parts, built and written by the executors.

    The item indices are data.splits' (the catalogue's items in order, then unknown items in first-seen order), so
    `out_dir/rows` sorted by user_id holds `leave_one_out(items, events).train` for the same events; the driver holds
    the catalogue (written as `out_dir/catalogue.parquet`, item_id by index) and the unknown items' first positions.
    """
    from pyspark.sql import functions as F

    events_path, out_dir = Path(events_path).resolve(), Path(out_dir).resolve()
    schema = event_schema(events_path, config)
    session = start_session(config.pipeline, "longtail-sequences")
    try:
        events = read_event_parts(session, events_path, schema, config)
        interactions = events.where(F.col("item_id").isNotNull()).select("user_id", "item_id", "timestamp", F.col(SOURCE_ROW).alias("order"))
        known = list(dict.fromkeys(items["item_id"].to_list()))
        index = session.createDataFrame(pl.DataFrame({"item_id": known, "item": range(len(known))}, schema={"item_id": pl.String, "item": pl.Int64}).to_arrow())
        unseen = interactions.join(F.broadcast(index), "item_id", "left_anti").groupBy("item_id").agg(F.min("order").alias("first"))
        unknown = pl.from_arrow(unseen.toArrow())
        assert isinstance(unknown, pl.DataFrame)  # a Spark result is a table, never a single column
        catalogue = [*known, *unknown.sort("first")["item_id"].to_list()]
        full = pl.DataFrame({"item_id": catalogue, "item": range(len(catalogue))}, schema={"item_id": pl.String, "item": pl.Int64})
        indexed = interactions.join(F.broadcast(session.createDataFrame(full.to_arrow())), "item_id").select("user_id", "item", "timestamp", "order")
        input_schema: OutputSchema = {"user_id": pl.String, "item": pl.Int64, "timestamp": schema["timestamp"], "order": pl.Int64}
        by_user = indexed.repartition(config.pipeline.spark_partitions, "user_id")
        sequences = by_user.mapInPandas(
            partial(run_partition, function=_training_sequences, input_schema=input_schema, output_schema=TRAINING_SEQUENCES_SCHEMA),
            spark_ddl(TRAINING_SEQUENCES_SCHEMA),
        )
        with atomic_folder(out_dir) as staging:
            sequences.write.parquet(str(staging / ROWS_FOLDER))
            full.write_parquet(staging / CATALOGUE_FILE)
        users = session.read.parquet(str(out_dir / ROWS_FOLDER)).count()
        return {"users": int(users), "items": len(catalogue), "unknown_items": unknown.height}
    finally:
        session.stop()
