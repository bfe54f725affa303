"""The model folder `longtail train` writes: it loads to the very models that were evaluated, and refuses files that could run code."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch

from longtail.core.config import LongtailConfig, RecommendConfig, SequentialConfig
from longtail.data.adapters import load_dataset
from longtail.models.fusion import FusionRanker
from longtail.pipeline.incremental import train_model_folder
from longtail.pipeline.model_folder import (
    EVALUATION_FILE,
    FOLDER_FILE,
    ModelFolderError,
    evaluate_folder,
    folder_split,
    load_model_folder,
    sample_test_users,
)

import builders

TINY = SequentialConfig(hidden=16, blocks=1, heads=1, max_len=20, dropout=0.2, epochs=3, patience=2, lr=3e-3, threads=1)
RANKED = LongtailConfig(recommend=RecommendConfig(sequential=TINY, fusion_candidates=20, fusion_trees=20, bootstrap_samples=50))


@pytest.fixture(scope="module")
def folder(tmp_path_factory, datasets_root):
    """A fusion model folder trained on 300 real Scientific users (their items only), evaluated on 150 of them."""
    data = load_dataset("scientific", datasets_root)
    items, events = builders.first_users(data.items, data.events, 300)
    target = tmp_path_factory.mktemp("folder") / "model"
    train_model_folder(items, events, RANKED, target, builders.hashed_encoder(items), fusion=True, evaluation_users=150)
    return target


def test_the_loaded_folder_scores_exactly_as_it_was_evaluated(folder) -> None:
    loaded = load_model_folder(folder)
    assert isinstance(loaded.recommender, FusionRanker) and loaded.name == "fusion"
    assert loaded.sequential is loaded.recommender.sources["sasrec"]  # one network, not two copies
    split = folder_split(folder)
    users = sample_test_users(split, 150, RANKED.seed)
    again = evaluate_folder(loaded, split, users)
    recorded = loaded.evaluation
    assert recorded is not None and recorded["users"] == 150
    assert again.metrics["NDCG@10"] == pytest.approx(recorded["metrics"]["NDCG@10"], abs=1e-9)
    assert again.metrics["HR@10"] == pytest.approx(recorded["metrics"]["HR@10"], abs=1e-9)
    histories = split.histories("test")[:5]
    top, scores = loaded.recommend(histories, 10)
    assert top.shape == (5, 10) and np.all(np.diff(scores, axis=1) <= 0)
    assert not any(set(row) & set(history) for row, history in zip(top.tolist(), histories, strict=True))


def test_cold_fallback_is_the_folder_popularity(folder) -> None:
    loaded = load_model_folder(folder)
    top, counts = loaded.popular(5, np.array([], dtype=np.int64))
    assert counts.tolist() == sorted(loaded.popularity.counts_.tolist(), reverse=True)[:5]
    excluded, excluded_counts = loaded.popular(5, top[:2])
    rest = np.delete(loaded.popularity.counts_, top[:2])
    assert not set(excluded.tolist()) & set(top[:2].tolist())
    assert excluded_counts.tolist() == sorted(rest.tolist(), reverse=True)[:5]


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("weights.pkl", pickle.dumps({"a": 1})),
        ("innocent.json", pickle.dumps([1, 2, 3])),
        ("model.safetensors.bak", b"not a model"),
    ],
)
def test_a_folder_with_a_pickle_or_an_unexpected_file_is_refused(folder, tmp_path, name, payload) -> None:
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    (copy / "fusion" / name).write_bytes(payload)
    with pytest.raises(ModelFolderError, match=name.replace(".", r"\.")):
        load_model_folder(copy)


def test_a_torch_save_file_is_refused_even_under_an_allowed_name(folder, tmp_path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    torch.save({"state": torch.zeros(2)}, copy / "model.safetensors")
    with pytest.raises(ModelFolderError, match="pickle or zip"):
        load_model_folder(copy)


def test_a_folder_without_its_manifest_is_not_a_model_folder(folder, tmp_path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    (copy / FOLDER_FILE).unlink()
    with pytest.raises(ModelFolderError, match="not a model folder"):
        load_model_folder(copy)
    assert (folder / EVALUATION_FILE).is_file()


def test_evaluate_command_rescores_a_folder_as_it_was_accepted(folder, tmp_path) -> None:
    from typer.testing import CliRunner

    from longtail.cli import app
    from longtail.core.artifacts import load_json

    result = CliRunner().invoke(app, ["evaluate", "--model", str(folder), "--max-users", "150", "--out", str(tmp_path / "eval")], terminal_width=200)
    assert result.exit_code == 0, result.output
    record = load_json(tmp_path / "eval" / "evaluation.json")
    accepted = load_json(folder / EVALUATION_FILE)
    assert record["users"] == 150 and record["version"] == load_json(folder / FOLDER_FILE)["version"]
    assert record["metrics"]["NDCG@10"] == pytest.approx(accepted["metrics"]["NDCG@10"], abs=1e-9)


def test_simulate_command_compares_a_folders_popularity_with_its_recommender(folder, tmp_path) -> None:
    from typer.testing import CliRunner

    from longtail.cli import app
    from longtail.core.artifacts import load_json

    out = tmp_path / "simulation"
    result = CliRunner().invoke(
        app, ["simulate", "--model", f"{folder}#popularity", "--model", str(folder), "--users", "100", "--out", str(out)], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    report = load_json(out / "simulation.json")
    assert report["users"] == 100 and [arm["recommender"] for arm in report["arms"].values()] == ["popularity", "fusion"]
    assert [run["seed"] for run in report["runs"]] == [1, 3]
    split = folder_split(folder)
    offline = evaluate_folder(load_model_folder(folder), split, sample_test_users(split, 100, RANKED.seed)).metrics
    assert report["arms"]["B"]["offline"]["NDCG@10"] == pytest.approx(offline["NDCG@10"], abs=1e-12)
    assert "Team-draft interleaving" in (out / "simulation.html").read_text(encoding="utf-8")
