"""A folder is written whole or not at all; JSON round-trips."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from longtail.core.artifacts import atomic_folder, load_json, save_json


def test_a_written_folder_replaces_the_old_one_and_carries_named_files(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    (target / "log.jsonl").write_text("1\n")
    with atomic_folder(target, carry=("log.jsonl", "absent.txt")) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["log.jsonl", "new.txt"]
    assert (target / "log.jsonl").read_text() == "1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging or retired folder left


def test_a_failed_write_leaves_the_old_folder_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "report"
    target.mkdir()
    (target / "report.json").write_text("{}")
    with pytest.raises(RuntimeError), atomic_folder(target) as staging:
        (staging / "half.json").write_text("{")
        raise RuntimeError("disk full")
    assert [p.name for p in target.iterdir()] == ["report.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_a_failed_first_write_leaves_no_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError), atomic_folder(tmp_path / "out") as staging:
        (staging / "a.txt").write_text("a")
        raise ValueError("bad row")
    assert list(tmp_path.iterdir()) == []


def test_json_round_trips_and_writes_dates_as_text(tmp_path: Path) -> None:
    path = save_json(tmp_path / "a.json", {"name": "保温杯", "day": date(2025, 1, 2), "n": [1, 2]})
    assert load_json(path) == {"name": "保温杯", "day": "2025-01-02", "n": [1, 2]}
    assert "保温杯" in path.read_text(encoding="utf-8")
