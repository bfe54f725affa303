"""Imbalance statistics on real data: Scientific popularity skew, zh-reviews category imbalance, the CLI and the audit section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from longtail.balance.imbalance import gini, imbalance_report, label_balance, lorenz_curve
from longtail.cli import app
from longtail.data.adapters import load_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def scientific(datasets_root: Path):
    return load_dataset("scientific", datasets_root)


def test_gini_is_zero_for_equal_counts_and_three_quarters_when_one_of_four_holds_all() -> None:
    assert gini(np.array([5, 5, 5, 5])) == 0.0
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)
    assert gini(np.array([])) == 0.0


def test_lorenz_curve_runs_from_zero_to_one_below_the_diagonal() -> None:
    curve = lorenz_curve(np.array([1, 1, 2, 6]), points=4)
    assert curve["item_share"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve["interaction_share"] == [0.0, 0.1, 0.2, 0.4, 1.0]


def test_scientific_head_items_hold_52_percent_of_interactions(scientific) -> None:
    report = imbalance_report(scientific.items, scientific.events)
    popularity = report["popularity"]
    assert (popularity["items"], popularity["interactions"]) == (4385, 59384)
    head = popularity["segments"]["head"]
    assert head["items"] == 877  # ceil(20% of 4,385)
    assert head["interaction_share"] == pytest.approx(0.520, abs=0.0005)
    assert popularity["segments"]["tail"]["interaction_share"] <= 0.2
    assert sum(s["items"] for s in popularity["segments"].values()) == 4385
    assert 0.40 < popularity["gini"] < 0.46
    assert report["event_types"]["rows"] == {"review": 59384}
    users = report["users"]
    assert users["users"] == 8442 and users["quantiles"]["p50"] == 6.0 and users["max"] == 51
    assert report["categories"]["missing"] == 133
    interactions = report["category_interactions"]
    assert sum(interactions["rows"].values()) + interactions["missing"] == 59384
    assert interactions["imbalance_ratio"] == interactions["largest"] / interactions["smallest"] > 100


def test_zh_reviews_categories_are_17x_imbalanced(datasets_root: Path) -> None:
    data = load_dataset("zh-reviews", datasets_root)
    balance = label_balance(data.items["category"])
    assert balance["labels"] == 10
    assert (balance["largest"], balance["smallest"]) == (10000, 575)
    assert balance["rows"]["热水器"] == 575
    assert balance["imbalance_ratio"] == pytest.approx(17.39)
    assert imbalance_report(data.items, data.events)["popularity"] is None  # reviews only, no interactions


def test_imbalance_command_writes_json_html_and_config(tmp_path: Path, demo_data: Path) -> None:
    out = tmp_path / "imbalance"
    result = runner.invoke(app, ["imbalance", "--items", str(demo_data / "items.csv"), "--events", str(demo_data / "events.parquet"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "item popularity Gini" in result.output and "20.0% / 52.0%" in result.output
    report = json.loads((out / "imbalance.json").read_text(encoding="utf-8"))
    assert report["popularity"]["segments"]["head"]["interaction_share"] == pytest.approx(0.52, abs=0.0005)
    assert "events_per_user" not in report["users"]
    html = (out / "imbalance.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 5 and "Lorenz" in html
    assert (out / "config.yaml").is_file()


def test_audit_report_has_an_imbalance_section(tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    pl.DataFrame({"item_id": ["A1", "A2", "A3"], "title": ["保温杯 500ml", "Steel bottle", "Glass jar"], "category": ["杯", "杯", "罐"]}).write_csv(items)
    events = tmp_path / "events.jsonl"
    rows = [
        {"user_id": f"u{n}", "item_id": item, "event_type": kind, "timestamp": f"2024-01-0{n + 1}T10:00:00Z"}
        for n, (item, kind) in enumerate([("A1", "view"), ("A1", "view"), ("A1", "purchase"), ("A2", "view")])
    ]
    pl.DataFrame(rows).write_ndjson(events)
    out = tmp_path / "audit"
    result = runner.invoke(app, ["audit", "--items", str(items), "--events", str(events), "--out", str(out)])
    assert result.exit_code == 0, result.output
    section = json.loads((out / "report.json").read_text(encoding="utf-8"))["imbalance"]
    assert section["categories"]["rows"] == {"杯": 2, "罐": 1}
    assert section["category_interactions"]["rows"] == {"杯": 4}
    assert section["event_types"]["rows"] == {"view": 3, "purchase": 1} and section["event_types"]["imbalance_ratio"] == 3.0
    assert section["popularity"]["items_without_interactions"] == 1
    assert "Lorenz" in (out / "report.html").read_text(encoding="utf-8")
