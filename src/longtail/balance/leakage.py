"""The guard that training and evaluation tables share no keys, so balancing never leaks evaluation rows into training."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from longtail.core.errors import LeakageError

SHOWN_KEYS = 5


def overlapping_keys(train: pl.DataFrame, evaluation: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Distinct key tuples present in both tables; rows with a null key (synthetic rows) never match."""
    keys = list(keys)
    missing = [key for key in keys if key not in train.columns or key not in evaluation.columns]
    if missing:
        raise LeakageError(f"key columns {missing} are missing from the training or evaluation table")
    return train.select(keys).drop_nulls().unique().join(evaluation.select(keys).drop_nulls().unique(), on=keys, how="inner")


def check_disjoint(train: pl.DataFrame, evaluation: pl.DataFrame, keys: Sequence[str]) -> None:
    """Raise LeakageError if any key tuple of the evaluation table also appears in the training table."""
    shared = overlapping_keys(train, evaluation, keys)
    if shared.height:
        examples = ", ".join(str(row) for row in shared.head(SHOWN_KEYS).rows())
        raise LeakageError(
            f"{shared.height:,} evaluation keys {list(keys)} also appear in training data (e.g. {examples}); "
            "split before balancing and balance only the training split"
        )
