"""Contrastive fine-tuning: full and LoRA lower the validation loss and save a model that loads like the stock one."""

from __future__ import annotations

import json

import polars as pl
import pytest

from longtail.core.config import EncodeConfig, LongtailConfig
from longtail.core.errors import LongtailError
from longtail.encode.factory import build_encoder
from longtail.encode.finetune import REPORT_FILE, finetune_encoder, pairs_from_judgments, pairs_from_search_events

# Made-up shop vocabulary: codes like "zq7" mean nothing to the stock model, so learning them shows in the loss.
PAIRS = [(f"zq{i} part", f"Replacement part model ZQ-{i} for series {i % 4} pumps") for i in range(96)]


def _config(mode: str, **extra) -> LongtailConfig:
    return LongtailConfig.model_validate({"finetune": {"mode": mode, "epochs": 2, "batch_size": 16, "eval_steps": 2, **extra}})


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_finetuning_lowers_validation_loss_and_saves_a_loadable_model(tmp_path, mode):
    report = finetune_encoder(PAIRS, tmp_path / mode, _config(mode))
    assert report.best_validation_loss < report.initial_validation_loss
    if mode == "lora":
        assert report.trainable_parameters < 0.01 * report.total_parameters
    assert json.loads((tmp_path / mode / REPORT_FILE).read_text())["mode"] == mode
    encoder = build_encoder(EncodeConfig(model_path=str(tmp_path / mode), cache_dir=None))
    vectors = encoder.encode(["Replacement part model ZQ-3 for series 3 pumps"])
    assert vectors.shape == (1, 384)
    assert encoder.name != "minilm"  # its own cache folder, never mixed with stock vectors


@pytest.mark.slow
def test_early_stopping_stops_when_validation_loss_stalls(tmp_path):
    # A learning rate this small cannot move the loss by the required margin, so patience runs out.
    report = finetune_encoder(PAIRS, tmp_path, _config("full", learning_rate=1e-9, epochs=5, early_stopping_patience=2))
    assert report.stopped_early
    assert report.steps < 5 * (len(PAIRS) - 16) // 16


def test_too_few_pairs_is_an_error(tmp_path):
    with pytest.raises(LongtailError, match="at least 64"):
        finetune_encoder(PAIRS[:10], tmp_path, LongtailConfig())


def test_pairs_come_from_good_judgments_and_searches_followed_by_clicks():
    items = pl.DataFrame({"item_id": ["a", "b"], "title": ["Beaker", "Gloves"]})
    texts = ["Beaker", "Gloves"]
    judgments = pl.DataFrame({"query_id": ["1", "1"], "query": ["glass", "glass"], "item_id": ["a", "b"], "grade": [3.0, 0.0]})
    assert pairs_from_judgments(judgments, items, texts) == [("glass", "Beaker")]
    events = pl.DataFrame(
        {
            "session_id": ["s", "s", "s", "t"],
            "event_type": ["search", "view", "click", "click"],
            "query": ["gloves", None, None, None],
            "item_id": [None, "a", "b", "a"],
            "timestamp": [1, 2, 3, 1],
        }
    )
    assert pairs_from_search_events(events, items, texts) == [("gloves", "Gloves")]


HARD = [(query, positive, PAIRS[(i + 1) % len(PAIRS)][1]) for i, (query, positive) in enumerate(PAIRS)]


def _margin(model, examples) -> float:
    """Mean cosine of each query with its positive minus with its hard negative."""
    import numpy as np

    vectors = [model.encode([e[c] for e in examples], normalize_embeddings=True, convert_to_numpy=True) for c in range(3)]
    return float(np.mean((vectors[0] * vectors[1]).sum(axis=1) - (vectors[0] * vectors[2]).sum(axis=1)))


@pytest.mark.slow
def test_hard_negative_training_widens_the_positive_margin_and_keeps_the_best_scored_state(tmp_path):
    from sentence_transformers import SentenceTransformer

    probe = HARD[:24]
    report = finetune_encoder(HARD, tmp_path, _config("full", epochs=2, learning_rate=1e-4), scorer=lambda model: {"objective": _margin(model, probe)})
    assert report.hard_negatives
    assert report.initial_objective is not None and report.best_objective is not None
    assert report.best_objective > report.initial_objective + 0.05
    assert report.scores[0][0] == 0 and len(report.scores) > 2
    # The saved model is the best-scored state: re-measuring the probe gives the reported objective.
    saved = SentenceTransformer(str(tmp_path), device="cpu")
    assert _margin(saved, probe) == pytest.approx(report.best_objective, abs=1e-3)


def test_examples_of_mixed_shapes_are_an_error(tmp_path):
    with pytest.raises(LongtailError, match="all be"):
        finetune_encoder(PAIRS[:40] + HARD[:40], tmp_path, _config("full"))


@pytest.mark.slow
def test_time_budget_stops_training_and_keeps_a_model(tmp_path):
    report = finetune_encoder(PAIRS, tmp_path, _config("full", epochs=50, max_minutes=0.001))
    assert report.stopped_early and report.steps == 1
    assert (tmp_path / "model.safetensors").is_file()
