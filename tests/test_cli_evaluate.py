"""`longtail evaluate` end to end on a sample of real users, and on the demo's own files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from longtail.cli import app


@pytest.mark.slow
def test_evaluate_writes_report_and_json_with_segments_and_comparisons(tmp_path, datasets_root) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("recommend:\n  longtail_weight: 0.3\n  bootstrap_samples: 200\n")
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--dataset",
            "scientific",
            "--model",
            "popularity",
            "--model",
            "itemknn",
            "--max-users",
            "1500",
            "--out",
            str(out),
            "--config",
            str(config),
            "--datasets-root",
            str(datasets_root),
        ],
    )
    assert result.exit_code == 0, result.output
    runs = {run["model"]: run for run in json.loads((out / "report.json").read_text())}
    assert set(runs) == {"popularity", "popularity+longtail(0.3)", "itemknn", "itemknn+longtail(0.3)"}
    assert runs["itemknn"]["metrics"]["NDCG@10"] > runs["popularity"]["metrics"]["NDCG@10"]
    assert runs["itemknn+longtail(0.3)"]["metrics"]["tail_exposure@10"] >= runs["itemknn"]["metrics"]["tail_exposure@10"]
    assert {"head", "torso", "tail", "unseen", "cold", "active"} <= set(runs["itemknn"]["segments"])
    best = next(run for run in runs.values() if "compared_with" in run)
    assert "popularity" in best["compared_with"] or best["model"] == "popularity"
    html = (out / "report.html").read_text()
    assert "<svg" in html and "Paired bootstrap" in html and (out / "config.yaml").is_file()


def test_evaluate_on_own_files_and_a_clear_error_without_input(tmp_path, demo_data) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["evaluate", "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "give --dataset" in missing.output
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--items",
            str(demo_data / "items.csv"),
            "--events",
            str(demo_data / "events.parquet"),
            "--model",
            "popularity",
            "--protocol",
            "temporal",
            "--out",
            str(tmp_path / "own"),
        ],
    )
    assert result.exit_code == 0, result.output
    runs = json.loads((tmp_path / "own" / "report.json").read_text())
    assert runs[0]["protocol"].startswith("temporal") and 0 <= runs[0]["metrics"]["HR@10"] <= 1
