"""Shared fixtures: where the real public datasets are (or why their tests skip), the demo data, and small slices."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
DEMO_DATA = REPO_ROOT / "data" / "demo"
# CI checks out the repo with ../shared beside it; there a missing folder is a broken checkout, never a reason to skip.
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
MISSING_DATASETS = f"shared datasets not found at {DATASETS}; set LONGTAIL_DATASETS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs the shared datasets, and skip those tests up front when the folder is absent outside CI."""
    for item in items:
        if "datasets_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.datasets)
            if not DATASETS.is_dir() and not IN_CI:
                item.add_marker(pytest.mark.skip(reason=MISSING_DATASETS))


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """The shared public datasets folder; any test or fixture that reads them asks for this."""
    if not DATASETS.is_dir():
        if IN_CI:
            pytest.fail(f"{MISSING_DATASETS} (CI must not skip the dataset tests)")
        pytest.skip(MISSING_DATASETS)
    return DATASETS


@pytest.fixture(scope="session")
def demo_data() -> Path:
    """The demo catalogue and events bundled with the repo."""
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
