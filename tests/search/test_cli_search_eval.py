"""`longtail split-judgments`, `train-ranker` and `evaluate-search` end to end on a tiny hand-made catalogue."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from longtail.cli import app


def test_index_train_ranker_and_evaluate_search_write_a_report(tmp_path, catalogue, hand_judgments):
    items, judgments = tmp_path / "items.csv", tmp_path / "judgments.csv"
    catalogue.drop("price").write_csv(items)
    # Three copies of the hand-made queries, so every part of the 70/10/20 split holds several.
    table = pl.concat([hand_judgments.with_columns(pl.col("query_id") + f"-{copy}") for copy in range(3)])
    table.write_csv(judgments)
    config = tmp_path / "config.yaml"
    config.write_text("encode:\n  encoder: minilm-int8\n  cache_dir: null\n")
    runner = CliRunner()
    built = runner.invoke(app, ["index", "--items", str(items), "--out", str(tmp_path / "index"), "--config", str(config)])
    assert built.exit_code == 0, built.output
    trained = runner.invoke(app, ["train-ranker", "--index", str(tmp_path / "index"), "--judgments", str(judgments)])
    assert trained.exit_code == 0, trained.output
    assert "validation NDCG@10" in trained.output
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate-search", "--index", str(tmp_path / "index"), "--judgments", str(judgments), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "search_evaluation.json").read_text())
    assert report["queries"] == 9 and report["part"] == "test"
    runs = report["runs"]
    assert set(runs) == {"random", "bm25", "dense", "hybrid", "learned"}
    # Condensed runs rank every judged item, so each finds all of them; over 8 items hybrid retrieval returns all 8.
    assert all(run["condensed"]["metrics"]["Recall@100"] == 1.0 for run in runs.values())
    assert runs["hybrid"]["full"]["metrics"]["Recall@100"] == 1.0
    assert 0.0 <= runs["learned"]["RMSE"] < 2.0
    assert {"head_queries", "tail_queries", "misspelt_queries", "number_queries", "long_queries"} <= set(runs["bm25"]["condensed"]["segments"])
    comparison = report["comparisons"]["condensed"]["learned"]["bm25"]
    assert comparison["ci_low"] <= comparison["difference"] <= comparison["ci_high"]
    html = (out / "search_evaluation.html").read_text()
    assert "<svg" in html and "Full catalogue" in html
    other_split = runner.invoke(app, ["evaluate-search", "--index", str(tmp_path / "index"), "--judgments", str(judgments), "--out", str(out), "--seed", "7"])
    assert other_split.exit_code == 2 and "trained on the split with seed 42" in other_split.output


def test_split_judgments_writes_three_disjoint_parts(tmp_path, hand_judgments):
    judgments = tmp_path / "judgments.csv"
    hand_judgments.write_csv(judgments)
    result = CliRunner().invoke(app, ["split-judgments", "--judgments", str(judgments), "--out", str(tmp_path / "parts"), "--seed", "7"])
    assert result.exit_code == 0, result.output
    parts = [set(pl.read_csv(tmp_path / "parts" / f"{part}.csv")["query_id"]) for part in ("train", "validation", "test")]
    assert sum(len(p) for p in parts) == 14 and not (parts[0] & parts[2] or parts[1] & parts[2] or parts[0] & parts[1])
