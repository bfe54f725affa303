"""Shared fixtures: paths to the real public datasets and small slices of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
DEMO_DATA = REPO_ROOT / "data" / "demo"


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    if not DATASETS.is_dir():
        pytest.fail(f"public datasets not found at {DATASETS}; set LONGTAIL_DATASETS")
    return DATASETS


@pytest.fixture(scope="session")
def demo_data() -> Path:
    return DEMO_DATA


@pytest.fixture(scope="session")
def beauty_slice(datasets_root):
    """Leave-one-out split of the first 800 users of Amazon Beauty (S3-Rec 5-core), with the items they touched."""
    import polars as pl

    from longtail.data.adapters import load_dataset
    from longtail.data.splits import leave_one_out

    data = load_dataset("beauty", datasets_root)
    users = data.events["user_id"].unique(maintain_order=True).head(800)
    events = data.events.filter(pl.col("user_id").is_in(users.implode()))
    items = data.items.filter(pl.col("item_id").is_in(events["item_id"].unique().implode()))
    return items, leave_one_out(items, events)
