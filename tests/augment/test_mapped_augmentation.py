"""Row-local augmentation on real data: the same rows in-process and through 1 or many batches; whole-table ones refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from longtail.augment.noise import vector_matrix
from longtail.balance.component import as_training_table, build, run
from longtail.balance.sequences import sequence_table
from longtail.core.errors import NotMappableError
from longtail.data.columns import SYNTHETIC
from longtail.data.loaders import load_table
from longtail.data.schema import ITEMS

from builders import batch_mapper, hashed_encoder

PARTS = (1, 2, 7)


@pytest.fixture(scope="module")
def items(demo_data: Path) -> pl.DataFrame:
    """The first 600 demo items: title as text and a 128-d hashed bag-of-words vector (a list column, as Spark carries it)."""
    catalogue = load_table(demo_data / "items.csv", ITEMS).head(600)
    vectors = hashed_encoder(catalogue)(catalogue["item_id"].to_list())
    return as_training_table(catalogue.select("item_id", pl.col("title").alias("text"), pl.Series("vector", vectors.tolist(), dtype=pl.List(pl.Float32))))


@pytest.mark.parametrize("name", ["crop", "mask", "reorder"])
def test_sequence_augmentation_gives_the_same_rows_however_the_table_is_split(beauty_slice, name: str) -> None:
    table = sequence_table(beauty_slice[1].train)
    local = run(build(name, copies=2), table, seed=4)
    assert local.filter(pl.col(SYNTHETIC)).height > table.height  # two copies of every sequence long enough
    for parts in PARTS:
        assert run(build(name, copies=2), table, seed=4, map_table=batch_mapper(parts)).equals(local), parts
    # rows in reverse order: each row's copies are the same (output order aside)
    reversed_input = run(build(name, copies=2), table.reverse(), seed=4)
    assert reversed_input.sort("user", "synthetic", maintain_order=True).equals(local.sort("user", "synthetic", maintain_order=True))


def test_text_augmentation_gives_the_same_rows_however_the_table_is_split(items: pl.DataFrame) -> None:
    # fit_texts below the table size: the synonyms come from a sample chosen row by row, itself partition-free
    for params in ({"copies": 2}, {"fit_texts": 300}):
        local = run(build("text-eda", **params), items, seed=6)
        changed = local.filter(pl.col(SYNTHETIC)).join(items.select("item_id", pl.col("text").alias("source")), on="item_id")
        assert (changed["text"] != changed["source"]).mean() > 0.5  # the copies really are augmented
        for parts in PARTS:
            assert run(build("text-eda", **params), items, seed=6, map_table=batch_mapper(parts)).equals(local), (params, parts)


def test_embedding_noise_gives_the_same_rows_however_the_table_is_split(items: pl.DataFrame) -> None:
    local = run(build("embedding-noise", scale=0.2, copies=2), items, seed=8)
    assert local.height == 3 * items.height
    for parts in PARTS:
        mapped = run(build("embedding-noise", scale=0.2, copies=2), items, seed=8, map_table=batch_mapper(parts))
        assert mapped.drop("vector").equals(local.drop("vector"))
        # the per-dimension spread is a float64 sum over batches, so a split may move it below float32 rounding only
        np.testing.assert_allclose(vector_matrix(mapped, "vector"), vector_matrix(local, "vector"), rtol=1e-6, atol=1e-7)


def test_whole_table_augmentation_refuses_to_run_per_partition(items: pl.DataFrame) -> None:
    with pytest.raises(NotMappableError, match=r"component 'ctgan' cannot run per partition: CTGAN is fitted on every row"):
        run(build("ctgan", label="item_id"), items.select("item_id", "text"), seed=1, map_table=batch_mapper(2))
