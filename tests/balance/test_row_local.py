"""Row-local balancing on real data: the same rows in-process and through 1 or many batches, in any input order."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from longtail.balance.component import build, build_chain, run
from longtail.balance.rows import ROW_KEY
from longtail.balance.sequences import sequence_table
from longtail.core.config import ComponentSpec
from longtail.core.errors import NotMappableError
from longtail.core.rowrandom import row_generator, stream_key, uniforms
from longtail.data.columns import SYNTHETIC

from builders import batch_mapper

LABELLED = [
    ("random-sample", {"fraction": 0.3}),
    ("random-sample", {"per_class": 30, "replace": True}),
    ("stratified-sample", {"fraction": 0.4}),
    ("weighted-sampling", {"size": 2000}),
    ("weighted-sampling", {"by": "column", "weight_column": "x0", "exponent": 0.0, "fraction": 0.5}),
    ("class-weights", {"method": "inverse"}),
]
SEQUENCES = [
    ("tail-oversampling", {"ratio": 0.8, "buckets": ["tail", "torso"]}),
    ("head-undersampling", {"max_share": 0.2}),
    ("inverse-popularity-weights", {"exponent": 0.5}),
    ("weighted-sampling", {"by": "last-item", "exponent": 0.5, "fraction": 2.0}),
]


@pytest.fixture(scope="module")
def sequences(beauty_slice) -> pl.DataFrame:
    return sequence_table(beauty_slice[1].train)


@pytest.fixture(scope="module")
def labelled(zh_split) -> pl.DataFrame:
    # weights from a real feature column, made non-negative, for weighted sampling by column
    return zh_split[0].with_columns(pl.col("x0").abs())


def _same_rows(first: pl.DataFrame, second: pl.DataFrame) -> bool:
    """The same rows, counted with multiplicity, in any order."""
    columns = [c for c, dtype in first.schema.items() if not isinstance(dtype, pl.List)]
    return first.sort(columns).equals(second.sort(columns))


def _assert_partition_free(name: str, params: dict, table: pl.DataFrame) -> None:
    local = run(build(name, **params), table, seed=11)
    for parts in (1, 2, 7):
        assert run(build(name, **params), table, seed=11, map_table=batch_mapper(parts)).equals(local), parts
    shuffled = table.sample(fraction=1.0, shuffle=True, seed=0)
    assert _same_rows(run(build(name, **params), shuffled, seed=11), local)
    assert local.columns == table.columns and ROW_KEY not in local.columns


@pytest.mark.parametrize(("name", "params"), LABELLED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(LABELLED)])
def test_labelled_components_give_the_same_rows_however_the_table_is_split_or_ordered(labelled: pl.DataFrame, name: str, params: dict) -> None:
    _assert_partition_free(name, params, labelled)


@pytest.mark.parametrize(("name", "params"), SEQUENCES, ids=[n for n, _ in SEQUENCES])
def test_sequence_components_give_the_same_rows_however_the_table_is_split_or_ordered(sequences: pl.DataFrame, name: str, params: dict) -> None:
    _assert_partition_free(name, params, sequences)


def test_identical_copies_get_draws_of_their_own_and_a_chain_is_partition_free(sequences: pl.DataFrame) -> None:
    over = run(build("tail-oversampling", ratio=1.0), sequences, seed=2)
    sample = run(build("random-sample", fraction=0.5), over, seed=2)
    before, after = over.group_by("user").len(), sample.group_by("user").len()
    joined = before.join(after, on="user", how="left", suffix="_kept").fill_null(0).filter(pl.col("len") >= 3)
    # rows identical in every column are told apart by their rank among themselves: not all kept or all dropped together
    assert joined.filter((pl.col("len_kept") > 0) & (pl.col("len_kept") < pl.col("len"))).height > 0
    specs = [
        ComponentSpec(name="tail-oversampling", params={"ratio": 0.8}),
        ComponentSpec(name="random-sample", params={"fraction": 0.5}),
        ComponentSpec(name="inverse-popularity-weights"),
    ]
    local = run(build_chain(specs), sequences, seed=2)
    assert run(build_chain(specs), sequences, seed=2, map_table=batch_mapper(5)).equals(local)


def test_whole_table_components_refuse_to_run_per_partition_and_name_the_way_out(labelled: pl.DataFrame) -> None:
    with pytest.raises(NotMappableError, match=r"component 'smote' cannot run per partition: .*nearest neighbours.*pipeline.executor: local"):
        run(build("smote"), labelled, seed=1, map_table=batch_mapper(1))
    assert run(build("smote"), labelled, seed=1)[SYNTHETIC].any()  # in-process it still runs


def test_counter_based_draws_are_uniform_and_depend_only_on_the_key() -> None:
    keys = np.arange(200_000, dtype=np.uint64)
    stream = stream_key(5, "random-sample")
    draws = uniforms(stream, keys)
    assert draws.min() >= 0 and draws.max() < 1
    assert abs(draws.mean() - 0.5) < 4 * np.sqrt(1 / 12 / keys.size)
    assert np.histogram(draws, bins=10, range=(0, 1))[0].min() > 0.09 * keys.size  # no empty or starved tenth
    np.testing.assert_array_equal(uniforms(stream, keys[::-1])[::-1], draws)  # order of the batch plays no part
    np.testing.assert_array_equal(uniforms(stream, keys[:10]), draws[:10])
    assert not np.array_equal(uniforms(stream, keys, draw=1), draws)
    assert not np.array_equal(uniforms(stream_key(5, "stratified-sample"), keys), draws)
    assert row_generator(stream, 7, 1).random() == row_generator(stream, 7, 1).random() != row_generator(stream, 8, 1).random()
