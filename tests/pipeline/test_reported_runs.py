"""Reported runs: one model folder per seed, every run carries its seed, and re-scoring a folder gives its saved metrics exactly."""

from __future__ import annotations

import pytest

from longtail.core.artifacts import load_json, save_json
from longtail.core.config import LongtailConfig, RecommendConfig, SequentialConfig
from longtail.data.adapters import load_dataset
from longtail.evaluate.protocol import summarise_seeds
from longtail.pipeline.model_folder import EVALUATION_FILE, ModelFolderError
from longtail.pipeline.protocol import reported_runs, rescore_folder

import builders

TINY = SequentialConfig(hidden=16, blocks=1, heads=1, max_len=20, dropout=0.2, epochs=4, patience=2, lr=3e-3, threads=1)
CONFIG = LongtailConfig(recommend=RecommendConfig(sequential=TINY, bootstrap_samples=50))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, datasets_root):
    """Two seeds of SASRec on 200 real Scientific users (their items only), each written to its model folder."""
    data = load_dataset("scientific", datasets_root)
    items, events = builders.first_users(data.items, data.events, 200)
    out = tmp_path_factory.mktemp("reported")
    return reported_runs(items, events, CONFIG, "scientific", [1, 2], out, builders.hashed_encoder(items)), out, (items, events)


def test_every_run_carries_its_seed_and_its_folder(runs) -> None:
    (records, evaluations), out, _ = runs
    assert [(r["model"], r["seed"]) for r in records] == [("sasrec", 1), ("sasrec", 2)]
    for record in records:
        assert {"dataset", "model", "seed", "protocol", "metrics", "stopped", "model_folder"} <= set(record)
        assert record["model_folder"] == str(out / f"seed-{record['seed']}")
        assert record["stopped"] in {"patience", "epochs"}
    assert records[0]["metrics"]["NDCG@10"] != records[1]["metrics"]["NDCG@10"]  # the seed reaches the training
    summary = summarise_seeds(records, evaluations, samples=50)[0]
    assert summary["seeds"] == [1, 2] and summary["mean"]["NDCG@10"] == pytest.approx((records[0]["metrics"]["NDCG@10"] + records[1]["metrics"]["NDCG@10"]) / 2)


def test_the_evaluate_command_rescores_a_saved_folder_to_its_saved_metrics_exactly(runs, tmp_path) -> None:
    from typer.testing import CliRunner

    from longtail.cli import app

    (records, _), out, _ = runs
    result = CliRunner().invoke(app, ["evaluate", "--model", str(out / "seed-2"), "--out", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    again = load_json(tmp_path / "evaluation.json")["metrics"]
    assert again == load_json(out / "seed-2" / EVALUATION_FILE)["metrics"] == records[1]["metrics"]


def test_a_folder_whose_saved_metrics_do_not_reproduce_is_refused(runs, tmp_path) -> None:
    import shutil

    _, out, _ = runs
    copy = shutil.copytree(out / "seed-1", tmp_path / "edited")
    saved = load_json(copy / EVALUATION_FILE)
    saved["metrics"]["NDCG@10"] += 0.01
    save_json(copy / EVALUATION_FILE, saved)
    with pytest.raises(ModelFolderError, match="differs from the saved evaluation in NDCG@10"):
        rescore_folder(copy)


def test_reported_runs_refuse_a_time_cap(runs, tmp_path) -> None:
    _, _, (items, events) = runs
    capped = CONFIG.model_copy(deep=True)
    capped.recommend.sequential.max_train_seconds = 60
    with pytest.raises(ModelFolderError, match="train to convergence"):
        reported_runs(items, events, capped, "scientific", [1], tmp_path, builders.hashed_encoder(items))
