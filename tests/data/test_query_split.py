"""Splitting judgments by query: every query lands in exactly one part, reproducibly."""

from __future__ import annotations

import polars as pl
import pytest

from longtail.core.errors import LongtailError
from longtail.data.query_split import query_folds, split_by_query, write_split


def _judgments(queries: int = 50) -> pl.DataFrame:
    rows = [(f"q{q}", f"query {q}", f"item{q}-{i}", float(i % 3)) for q in range(queries) for i in range(1 + q % 4)]
    return pl.DataFrame(rows, schema=["query_id", "query", "item_id", "grade"], orient="row")


def test_no_query_is_in_two_parts_and_every_judgment_is_kept():
    judgments = _judgments()
    parts = split_by_query(judgments, (0.6, 0.2, 0.2), seed=3)
    query_sets = [set(part["query_id"].to_list()) for part in parts.values()]
    assert not (query_sets[0] & query_sets[1] or query_sets[0] & query_sets[2] or query_sets[1] & query_sets[2])
    assert sum(part.height for part in parts.values()) == judgments.height
    assert [len(s) for s in query_sets] == [30, 10, 10]


def test_the_split_depends_on_the_seed_not_the_row_order():
    judgments = _judgments()
    shuffled = judgments.sample(fraction=1.0, shuffle=True, seed=9)
    first, again = split_by_query(judgments, seed=1), split_by_query(shuffled, seed=1)
    other = split_by_query(judgments, seed=2)
    assert set(first["test"]["query_id"]) == set(again["test"]["query_id"])
    assert set(first["test"]["query_id"]) != set(other["test"]["query_id"])


def test_fractions_must_sum_to_one():
    with pytest.raises(LongtailError, match="summing to 1"):
        split_by_query(_judgments(), (0.5, 0.1, 0.1))


def test_written_parts_read_back(tmp_path):
    paths = write_split(split_by_query(_judgments(), seed=0), tmp_path)
    assert sorted(paths) == ["test", "train", "validation"]
    assert pl.read_csv(paths["validation"])["query_id"].n_unique() == 5


def test_query_folds_deal_each_query_to_one_fold_reproducibly():
    queries = [f"q{number % 9}" for number in range(30)]  # 9 distinct ids, repeated as judgment rows repeat them
    folds = query_folds(queries, 2, seed=4)
    assert sorted(folds) == sorted(set(queries)) and set(folds.values()) == {0, 1}
    assert sorted(list(folds.values()).count(fold) for fold in (0, 1)) == [4, 5]
    assert query_folds(queries, 2, seed=4) == folds and query_folds(queries, 2, seed=5) != folds
    with pytest.raises(LongtailError, match="at least 2 folds"):
        query_folds(queries, 1)
