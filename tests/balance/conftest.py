"""A small real labelled table: LSA text vectors of a 5% sample of zh-reviews, 10 categories, 17x imbalance kept."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from longtail.balance.component import as_training_table
from longtail.evaluate.balancing import stratified_split, text_features, zh_category_table


@pytest.fixture(scope="session")
def zh_split(datasets_root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, test) with `item_id`, `label` and 32 feature columns; train carries `synthetic` and `weight`."""
    train, test = stratified_split(zh_category_table(datasets_root, 0.05, seed=7), 0.3, seed=7)
    train, test = text_features(train, test, 32, seed=7)
    return as_training_table(train), test
