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
