"""Training-table preparation and sequence balancing through a table mapper give exactly the in-process results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from longtail.balance.component import build_chain, run
from longtail.balance.sequences import item_counts, last_item_buckets, sequence_table
from longtail.core.config import ComponentSpec
from longtail.core.executors import BatchFunction, OutputSchema
from longtail.data.loaders import load_table
from longtail.data.schema import EVENTS, ITEMS
from longtail.data.segments import item_segments
from longtail.data.splits import leave_one_out, temporal_split

SPECS = [
    ComponentSpec(name="head-undersampling", params={"max_share": 0.2}),
    ComponentSpec(name="tail-oversampling", params={"ratio": 0.5}),
    ComponentSpec(name="inverse-popularity-weights", params={"exponent": 0.5}),
]


def three_batches(table: pl.DataFrame, function: BatchFunction, output_schema: OutputSchema, group_key: str | None = None) -> pl.DataFrame:
    """A mapper like Spark's: three batches (each key's rows together), results concatenated in reverse order."""
    keys = table[group_key].hash() if group_key else pl.Series(np.arange(table.height, dtype=np.uint64))
    batches = [table.filter((keys % 3) == part) for part in range(3)]
    return pl.concat([function(batch).cast(pl.Schema(output_schema)) for batch in reversed(batches)])


@pytest.fixture(scope="module")
def demo(demo_data: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    return load_table(demo_data / "items.csv", ITEMS), load_table(demo_data / "events.parquet", EVENTS)


def test_sequences_per_user_through_batches_equal_the_in_process_split(demo: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    items, events = demo
    for split in (leave_one_out, temporal_split):
        local, mapped = split(items, events), split(items, events, map_table=three_batches)
        assert mapped.user_ids == local.user_ids and mapped.item_ids == local.item_ids and mapped.protocol == local.protocol
        for stage in ("train", "valid", "test"):
            assert all(np.array_equal(a, b) for a, b in zip(getattr(mapped, stage), getattr(local, stage), strict=True)), stage
    assert len(local.user_ids) > 1000


def test_popularity_segments_and_balancing_through_batches_equal_in_process(demo: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    items, events = demo
    table = sequence_table(leave_one_out(items, events).train)
    counts = item_counts(table, three_batches)
    np.testing.assert_array_equal(counts, item_counts(table))
    assert counts.sum() == table["items"].list.len().sum()
    np.testing.assert_array_equal(item_segments(counts), item_segments(item_counts(table)))
    np.testing.assert_array_equal(last_item_buckets(table, map_table=three_batches), last_item_buckets(table))
    local = run(build_chain(SPECS), table, seed=3)
    mapped = run(build_chain(SPECS), table, seed=3, map_table=three_batches)
    assert mapped.equals(local)
    assert local.height != table.height and local["weight"].n_unique() > 1  # the chain really re-samples and re-weights
