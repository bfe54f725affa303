"""The fast CPU training recipe: length buckets, warm-up + cosine schedule, bf16 sampled softmax, and the time budget."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from longtail.core.config import SequentialConfig
from longtail.models.base import TrainData
from longtail.models.sequential import SASRec, Trainer


def _cycles(users: int, n_items: int, length: int, seed: int = 0) -> list[np.ndarray]:
    """Histories that walk the catalogue in order (item i is always followed by i + 1, wrapping around)."""
    starts = np.random.default_rng(seed).integers(0, n_items, size=users)
    lengths = np.random.default_rng(seed + 1).integers(3, length + 1, size=users)
    return [(start + np.arange(size)) % n_items for start, size in zip(starts, lengths, strict=True)]


def test_the_new_recipe_fills_its_settings_and_explicit_keys_win() -> None:
    config = SequentialConfig(recipe="new", batch_size=32)
    assert (config.loss, config.schedule, config.bucket, config.autocast) == ("sampled", "cosine", True, "bf16")
    assert config.batch_size == 32
    assert SequentialConfig.model_validate(config.model_dump()) == config
    old = SequentialConfig()
    assert (old.recipe, old.loss, old.schedule, old.bucket, old.autocast) == ("old", "ce", "constant", False, "none")


def test_bucketed_batches_cover_every_window_once_with_similar_lengths() -> None:
    windows = [(np.ones(n, dtype=np.int64), np.ones(n, dtype=np.int64)) for n in np.random.default_rng(0).integers(1, 50, size=64)]
    batches = Trainer(SequentialConfig(batch_size=8, bucket=True)).batches(windows, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(64))
    lengths = sorted(len(w[0]) for w in windows)
    # one bucket span holds all 64 windows: each batch is 8 consecutive lengths of the sorted list
    blocks = {tuple(lengths[start : start + 8]) for start in range(0, 64, 8)}
    assert {tuple(sorted(len(windows[i][0]) for i in batch)) for batch in batches} == blocks


def test_warm_up_then_cosine_to_the_floor() -> None:
    trainer = Trainer(SequentialConfig(lr=1e-2, min_lr=1e-4, warmup_steps=10, schedule="cosine"))
    assert trainer.learning_rate(0, 0.0) == pytest.approx(1e-3)
    assert trainer.learning_rate(9, 0.0) == pytest.approx(1e-2)
    assert trainer.learning_rate(50, 0.5) == pytest.approx(1e-4 + (1e-2 - 1e-4) / 2)
    assert trainer.learning_rate(99, 1.0) == pytest.approx(1e-4)
    assert Trainer(SequentialConfig(lr=1e-2)).learning_rate(99, 1.0) == 1e-2


def test_the_new_recipe_learns_the_next_item_on_a_tiny_set() -> None:
    # one thread: on a model this small a second one only waits on the first (and is 10x slower on a busy machine)
    histories = _cycles(160, 24, 8)
    config = SequentialConfig(
        recipe="new", hidden=16, blocks=1, max_len=8, dropout=0.1, negatives=64, batch_size=32, epochs=16, threads=1, warmup_steps=10, lr=1e-2
    )
    model = SASRec(config).fit(TrainData(24, histories))
    probes = [np.array([5, 6, 7]), np.array([20, 21, 22, 23]), np.array([10, 11])]
    assert model.score(probes).argmax(axis=1).tolist() == [8, 0, 12]
    assert model.history_[-1]["loss"] < model.history_[0]["loss"] / 2


def test_the_budget_counts_training_time_not_validation() -> None:
    config = SequentialConfig(recipe="new", hidden=8, blocks=1, max_len=6, negatives=16, batch_size=16, epochs=3, patience=3, threads=1)

    def slow_validation(model: object) -> float:
        time.sleep(0.3)
        return 0.0

    model = SASRec(config).fit(TrainData(12, _cycles(40, 12, 6)), slow_validation)
    for epoch, record in enumerate(model.history_, start=1):
        assert record["wall_seconds"] - record["seconds"] >= 0.3 * epoch
    assert all(math.isfinite(r["loss"]) for r in model.history_)
