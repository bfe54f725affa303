"""`longtail profile USER` on the demo files: readable tables for people, JSON for machines, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from longtail.cli import app

USER = "A3L1VJMHFWONCB"  # 51 reviews in the demo events


def test_profile_prints_tables_and_json_explaining_each_part(tmp_path: Path, demo_data: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"encode:\n  encoder: minilm-int8\n  cache_dir: {tmp_path / 'cache'}\nprofile:\n  half_life_days: 14\n")
    files = ["--items", str(demo_data / "items.csv"), "--events", str(demo_data / "events.parquet"), "--config", str(config)]
    runner = CliRunner()
    result = runner.invoke(app, ["profile", USER, *files, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    mine = pl.read_parquet(demo_data / "events.parquet").filter(pl.col("user_id") == USER)
    assert summary["events"] == mine.height == 51 and summary["last_seen"].startswith(str(mine["timestamp"].max().date()))
    assert summary["intent"] == {"review": 1.0} and summary["activity"]["active_days"] == mine["timestamp"].dt.date().n_unique()
    assert set(c["item_id"] for c in summary["long_term_items"]) <= set(mine["item_id"]) and len(summary["long_term_items"]) == 5
    top = summary["categories"][0]
    assert 0 < top["affinity"] <= 1 and top["items"] and summary["price_band"] is None
    table = runner.invoke(app, ["profile", USER, *files])
    assert table.exit_code == 0, table.output
    assert "Long-term interests" in table.output and "Categories by affinity" in table.output and top["items"][0]["item_id"] in table.output
    private = runner.invoke(app, ["profile", USER, *files, "--json", "--dp-epsilon", "1"])
    assert private.exit_code == 0 and json.loads(private.output)["dp_epsilon"] == 1.0
    unknown = runner.invoke(app, ["profile", "nobody", *files])
    assert unknown.exit_code == 2 and "no events for user 'nobody'" in unknown.output
