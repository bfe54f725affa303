"""The in-process audit refuses, before loading anything, an input that its memory cannot hold."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from longtail.core.config import LongtailConfig
from longtail.core.errors import InsufficientMemoryError
from longtail.data.loaders import estimated_rows
from longtail.pipeline.audit_step import run_audit


@pytest.fixture
def parts(demo_data: Path, tmp_path: Path) -> Path:
    """3,000 demo events as two Parquet parts and one CSV part."""
    events = pl.read_parquet(demo_data / "events.parquet").head(3000)
    folder = tmp_path / "events"
    folder.mkdir()
    events.head(1000).write_parquet(folder / "part-0.parquet")
    events.slice(1000, 1000).write_parquet(folder / "part-1.parquet")
    events.slice(2000, 1000).write_csv(folder / "part-2.csv")
    return folder


def test_rows_are_estimated_without_loading(parts: Path) -> None:
    assert estimated_rows(parts / "part-0.parquet") == 1000
    assert estimated_rows(parts / "part-2.csv") == 1001  # a small file is sampled whole: its header line counts
    assert estimated_rows(parts) == 3001


def test_an_input_too_large_for_memory_is_refused_up_front(demo_data: Path, parts: Path, tmp_path: Path) -> None:
    tight = LongtailConfig.model_validate({"pipeline": {"in_process_memory_gb": 1, "in_process_bytes_per_event": 1_000_000}})
    expected = r"events: ~3,001 events need ~2.8 GB to audit in-process \(~1000000 bytes per event\) but 1.0 GB is available; run it on a cluster"
    with pytest.raises(InsufficientMemoryError, match=expected):
        run_audit(demo_data / "items.csv", parts, tmp_path / "out", tight)
    assert not (tmp_path / "out").exists()
    roomy = LongtailConfig.model_validate({"pipeline": {"in_process_memory_gb": 3, "in_process_bytes_per_event": 1_000_000}})
    result = run_audit(demo_data / "items.csv", parts, tmp_path / "out", roomy)
    assert result.report["tables"]["events"]["input_rows"] == 3000
