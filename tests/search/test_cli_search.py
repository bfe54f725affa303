"""`longtail index` and `longtail search` on a tiny catalogue file: a readable table, filters, users, clear errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from longtail.cli import app, terminal

ITEMS = """item_id,title,category,brand,price
beaker,Borosilicate glass beaker 500 ml,Lab > Glassware,Pyrex,12
pipette,Graduated glass pipette 10 ml,Lab > Glassware,Kimble,3.5
gloves,Nitrile examination gloves,Lab > Safety,Ansell,9
caliper,Digital caliper stainless steel,Tools > Measuring,Mitutoyo,40
earbuds,无线蓝牙耳机 主动降噪,Electronics > Audio,小米,199
"""
EVENTS = """user_id,item_id,event_type,timestamp
u1,caliper,view,2024-01-01T10:00:00Z
u1,gloves,purchase,2024-01-02T10:00:00Z
"""
CONFIG = "encode:\n  encoder: minilm-int8\n  cache_dir: null\n"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    # Rich wraps at the terminal width; a wide console keeps each table row and message on one line.
    monkeypatch.setattr(terminal.console, "width", 200)
    monkeypatch.setattr(terminal.error_console, "width", 200)


def _index(runner: CliRunner, folder, index_dir):
    """`longtail index` over folder's items.csv, events.csv and config.yaml into index_dir; the finished run."""
    files = {name: str(folder / f"{name}.{ext}") for name, ext in (("items", "csv"), ("events", "csv"), ("config", "yaml"))}
    built = runner.invoke(app, ["index", "--items", files["items"], "--events", files["events"], "--out", str(index_dir), "--config", files["config"]])
    assert built.exit_code == 0, built.output
    return built


def test_index_then_search_prints_results_with_ranks_and_facets(tmp_path):
    (tmp_path / "items.csv").write_text(ITEMS, encoding="utf-8")
    (tmp_path / "events.csv").write_text(EVENTS, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    runner = CliRunner()
    index_dir = tmp_path / "index"
    built = _index(runner, tmp_path, index_dir)
    assert "5 documents" in built.output and "users with history: 1" in built.output

    found = runner.invoke(app, ["search", "glas beakr", "--index", str(index_dir), "--filter", "category=Lab", "--k", "2"])
    assert found.exit_code == 0, found.output
    lines = found.output.splitlines()
    first = next(line for line in lines if "│ 1 " in line)
    assert "beaker" in first and "Pyrex" in first
    assert "BM25 terms: glass beaker" in found.output
    assert "caliper" not in found.output  # filtered out by category

    chinese = runner.invoke(app, ["search", "蓝牙耳机", "--index", str(index_dir), "--mode", "lexical"])
    assert chinese.exit_code == 0 and "earbuds" in chinese.output

    personal = runner.invoke(app, ["search", "steel", "--index", str(index_dir), "--user", "u1"])
    assert personal.exit_code == 0 and "for user u1" in personal.output and "not personalised" not in personal.output


def test_search_errors_are_clear(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["search", "x", "--index", str(tmp_path)])
    assert missing.exit_code == 2 and "not a search index" in missing.output
    bad_filter = runner.invoke(app, ["search", "x", "--index", str(tmp_path), "--filter", "colour=red"])
    assert bad_filter.exit_code == 2 and "bad filter" in bad_filter.output


@pytest.mark.slow
def test_finetune_command_writes_a_model_that_index_can_use(tmp_path):
    items = "item_id,title\n" + "".join(f"p{i},Replacement part ZQ-{i} for series {i % 4} pumps\n" for i in range(40))
    judgments = "query,item_id,grade\n" + "".join(f"zq{i} part,p{i},3\n" for i in range(40))
    (tmp_path / "items.csv").write_text(items, encoding="utf-8")
    (tmp_path / "judgments.csv").write_text(judgments, encoding="utf-8")
    (tmp_path / "ft.yaml").write_text("finetune:\n  mode: lora\n  epochs: 1\n  batch_size: 16\n  eval_steps: 1\n", encoding="utf-8")
    runner = CliRunner()
    tuned = runner.invoke(
        app,
        [
            "finetune",
            "--items",
            str(tmp_path / "items.csv"),
            "--judgments",
            str(tmp_path / "judgments.csv"),
            "--out",
            str(tmp_path / "model"),
            "--config",
            str(tmp_path / "ft.yaml"),
        ],
    )
    assert tuned.exit_code == 0, tuned.output
    assert "lora: 24 pairs" in tuned.output
    (tmp_path / "index.yaml").write_text(f"encode:\n  model_path: {tmp_path / 'model'}\n  cache_dir: {tmp_path / 'cache'}\n", encoding="utf-8")
    built = runner.invoke(app, ["index", "--items", str(tmp_path / "items.csv"), "--out", str(tmp_path / "index"), "--config", str(tmp_path / "index.yaml")])
    assert built.exit_code == 0, built.output
    found = runner.invoke(app, ["search", "ZQ-7", "--index", str(tmp_path / "index"), "--k", "1"])
    assert found.exit_code == 0 and "p7" in found.output


def test_search_names_a_filter_the_catalogue_cannot_answer_and_an_unknown_user(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,title,price\nmug,Red heart mug,2.5\ncup,Blue tea cup,3\n", encoding="utf-8")
    (tmp_path / "events.csv").write_text("user_id,item_id,event_type,timestamp\nu1,mug,purchase,2024-01-02T10:00:00Z\n", encoding="utf-8")
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    runner = CliRunner()
    index_dir = tmp_path / "index"
    _index(runner, tmp_path, index_dir)
    no_category = runner.invoke(app, ["search", "mug", "--index", str(index_dir), "--filter", "category=Kitchen"])
    assert no_category.exit_code == 2 and "has no category values" in no_category.output
    stranger = runner.invoke(app, ["search", "mug", "--index", str(index_dir), "--user", "u404"])
    assert stranger.exit_code == 2 and "unknown user 'u404'" in stranger.output
    priced = runner.invoke(app, ["search", "mug", "--index", str(index_dir), "--filter", "price<=3", "--user", "u1"])
    assert priced.exit_code == 0, priced.output
