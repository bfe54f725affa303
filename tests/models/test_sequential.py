"""SASRec: text-initialised item tables, save/load, both losses, and a short real training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from longtail.core.config import RecommendConfig, SequentialConfig
from longtail.core.errors import LongtailError
from longtail.evaluate.harness import evaluate_split, make_validator
from longtail.models.base import TrainData, make_recommender
from longtail.models.sequential import ItemEmbedding, SASRec

SMALL = SequentialConfig(hidden=16, blocks=1, heads=2, max_len=8, dropout=0.1, epochs=2, batch_size=64)


def _text(n_items: int, dim: int = 24) -> np.ndarray:
    vectors = np.random.default_rng(0).normal(size=(n_items, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_finetune_mode_gives_unseen_items_their_text_vector_only() -> None:
    text = _text(5)
    embedding = ItemEmbedding(5, 4, "finetune", text, seen=np.array([True, True, False, True, False]))
    with torch.no_grad():
        embedding.correction.fill_(1.0)
        table = embedding()
        projected = embedding.project(torch.as_tensor(text))
    assert table.shape == (6, 4) and torch.all(table[0] == 0)
    torch.testing.assert_close(table[3], projected[2])  # unseen: text only
    torch.testing.assert_close(table[1], projected[0] + 1.0)  # seen: text + learned correction


@pytest.mark.parametrize("mode", ["freeze", "project"])
def test_text_modes_build_a_table_from_text(mode: str) -> None:
    embedding = ItemEmbedding(6, 3, mode, _text(6), seen=np.ones(6, dtype=bool))
    assert embedding().shape == (7, 3)
    trainable = sum(p.numel() for p in embedding.parameters() if p.requires_grad)
    assert trainable == (0 if mode == "freeze" else 24 * 3)
    with pytest.raises(LongtailError, match="needs item text vectors"):
        ItemEmbedding(6, 3, mode, None, seen=np.ones(6, dtype=bool))


def test_save_and_load_score_identically(tmp_path) -> None:
    histories = [np.array([0, 1, 2, 3]), np.array([2, 3, 4]), np.array([1, 2, 3, 4, 0])]
    model = SASRec(SMALL.model_copy(update={"text_init": "finetune"})).fit(TrainData(5, histories, item_vectors=_text(5)))
    restored = SASRec.load(model.save(tmp_path / "model"))
    np.testing.assert_allclose(restored.score(histories), model.score(histories), rtol=1e-5)
    assert restored.item_vectors().shape == (5, 16) and len(restored.history_) == 2


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ce", "sampled"])
def test_short_training_on_real_beauty_users_beats_random(beauty_slice, loss: str) -> None:
    _, split = beauty_slice
    config = RecommendConfig(sequential=SequentialConfig(epochs=6, patience=6, dropout=0.2, lr=3e-3, loss=loss, negatives=256))
    model = make_recommender("sasrec", config)
    model.fit(TrainData(split.n_items, split.train, split.valid), make_validator(split, config))
    result = evaluate_split(model.score, split, "test", config).metrics
    random_hr10 = 10 / split.n_items
    assert result["HR@10"] > 5 * random_hr10
    assert model.best_valid_ == max(r["valid"] for r in model.history_)
    assert model.history_[-1]["loss"] < model.history_[0]["loss"]
