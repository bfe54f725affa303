"""The CLI end to end: a real audit run, and bad input that fails clearly and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from longtail.cli import app

runner = CliRunner()
GOOD_EVENTS = [{"user_id": "u1", "item_id": "A1", "event_type": "view", "timestamp": "2024-01-01T10:00:00Z"}]


@pytest.fixture()
def good_files(tmp_path: Path) -> tuple[Path, Path]:
    items = tmp_path / "items.csv"
    pl.DataFrame({"item_id": ["A1", "A2"], "title": ["保温杯 500ml", "Steel water bottle"], "price": ["59", "-1"]}).write_csv(items)
    events = tmp_path / "events.jsonl"
    pl.DataFrame(GOOD_EVENTS * 2 + [{**GOOD_EVENTS[0], "item_id": "ZZ"}]).write_ndjson(events)
    return items, events


def test_audit_writes_report_tables_quarantine_and_flags(tmp_path: Path, good_files: tuple[Path, Path]) -> None:
    items, events = good_files
    out = tmp_path / "out"
    result = runner.invoke(app, ["audit", "--items", str(items), "--events", str(events), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Audit summary" in result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["tables"]["items"] == {
        "input_rows": 2,
        "kept_rows": 1,
        "quarantined_rows": 1,
        "by_reason": {"invalid_price": 1},
        "flagged_rows": 0,
        "flags_by_reason": {},
    }
    assert report["tables"]["events"]["by_reason"] == {"duplicate_event": 1, "unknown_item": 1}
    quarantine = pl.read_parquet(out / "quarantine" / "items.parquet")
    assert quarantine.select("item_id", "price", "reason").rows() == [("A2", -1.0, "invalid_price")]
    assert pl.read_parquet(out / "clean" / "items.parquet")["title"].to_list() == ["保温杯 500ml"]
    assert (out / "flags" / "events.parquet").is_file() and (out / "config.yaml").is_file()
    assert "<svg" in (out / "report.html").read_text(encoding="utf-8")


def _bad_cases(tmp_path: Path, good_items: Path, good_events: Path) -> dict[str, tuple[Path, Path, list[str]]]:
    no_title = tmp_path / "no_title.csv"
    no_title.write_text("item_id,name\nA1,Mug\n", encoding="utf-8")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(json.dumps(GOOD_EVENTS[0]) + "\n{not json}\n", encoding="utf-8")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("item_id,title\nA1,Crème brûlée\n".encode("latin-1"))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    return {
        "missing file": (tmp_path / "nope.csv", good_events, ["nope.csv", "file not found"]),
        "missing column": (no_title, good_events, ["no_title.csv", "column 'title'", "missing required column"]),
        "malformed json": (good_items, bad_json, ["bad.jsonl", "row 2", "malformed JSON"]),
        "not utf-8": (latin1, good_events, ["latin1.csv", "row 2", "not UTF-8"]),
        "empty": (empty, good_events, ["empty.csv", "empty"]),
    }


@pytest.mark.parametrize("case", ["missing file", "missing column", "malformed json", "not utf-8", "empty"])
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path: Path, good_files: tuple[Path, Path], case: str) -> None:
    items, events, expected = _bad_cases(tmp_path, *good_files)[case]
    out = tmp_path / "out"
    result = runner.invoke(app, ["audit", "--items", str(items), "--events", str(events), "--out", str(out)])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    for fragment in expected:
        assert fragment in message, (fragment, message)
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not any(p.name.startswith(".out.") for p in tmp_path.iterdir())


def test_unknown_config_key_fails_before_reading_data(tmp_path: Path, good_files: tuple[Path, Path]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("qualty:\n  seed: 1\n", encoding="utf-8")
    items, events = good_files
    result = runner.invoke(app, ["audit", "--items", str(items), "--events", str(events), "--out", str(tmp_path / "o"), "--config", str(config)])
    assert result.exit_code == 2
    assert "qualty: unknown key" in result.output


def test_users_and_judgments_are_audited_when_given(tmp_path: Path, good_files: tuple[Path, Path]) -> None:
    items, events = good_files
    users = tmp_path / "users.csv"
    pl.DataFrame({"user_id": ["u9", "u9", None], "segment": ["vip", "vip", "new"]}).write_csv(users)
    judgments = tmp_path / "judgments.csv"
    pl.DataFrame(
        {
            "query_id": ["q1", "q1", "q2", "q3"],
            "query": ["保温杯", "保温杯", "bottle", "bottle"],
            "item_id": ["A1", "A1", "NOPE", "A1"],
            "grade": ["3", "3", "2", "-1"],
        }
    ).write_csv(judgments)
    out = tmp_path / "out"
    args = ["audit", "--items", str(items), "--events", str(events), "--out", str(out), "--users", str(users), "--judgments", str(judgments)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["tables"]["users"]["by_reason"] == {"duplicate_user_id": 1, "missing_user_id": 1}
    assert report["tables"]["events"]["flags_by_reason"] == {"unknown_user": 1}  # the other two events are quarantined
    assert report["tables"]["judgments"]["by_reason"] == {"duplicate_judgment": 1, "invalid_grade": 1, "unknown_item": 1}
    assert pl.read_parquet(out / "clean" / "users.parquet")["segment"].to_list() == ["vip"]
