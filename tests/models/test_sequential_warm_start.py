"""SASRec warm start: the item table grows without touching known rows, and context-only targets carry no loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from longtail.core.config import SequentialConfig
from longtail.core.errors import LongtailError
from longtail.models.base import TrainData
from longtail.models.sequential import ItemEmbedding, SASRec, Trainer

SMALL = SequentialConfig(hidden=8, blocks=1, heads=2, max_len=4, dropout=0.0, epochs=3, batch_size=8, threads=1)


def _text(n_items: int, dim: int = 24) -> np.ndarray:
    vectors = np.random.default_rng(3).normal(size=(n_items, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("mode", ["none", "freeze", "project", "finetune"])
def test_growing_keeps_known_rows_and_gives_new_items_their_text_vector(mode: str) -> None:
    text = _text(10)
    # the two new items (10, 11) repeat the text of items 1 and 4
    grown_text = np.vstack([text, text[[1, 4]]])
    embedding = ItemEmbedding(10, 8, mode, None if mode == "none" else text, seen=np.arange(10) != 3)
    if mode == "finetune":
        with torch.no_grad():
            embedding.correction.fill_(0.5)
    before = embedding().detach().clone()
    embedding.grow(12, None if mode == "none" else grown_text, seen=np.zeros(12, dtype=bool))
    after = embedding().detach()
    assert after.shape == (13, 8)
    torch.testing.assert_close(after[:11], before)
    if mode == "none":
        assert torch.all(after[11:].abs().sum(1) > 0)
    elif mode == "finetune":  # text only: an item new since training has no learned correction
        torch.testing.assert_close(after[11:], before[[2, 5]] - 0.5)
    else:
        torch.testing.assert_close(after[11:], before[[2, 5]], atol=1e-4, rtol=1e-4)
    with pytest.raises(LongtailError, match="only grow"):
        embedding.grow(3, grown_text, seen=np.zeros(3, dtype=bool))


def test_text_modes_refuse_to_grow_without_text() -> None:
    embedding = ItemEmbedding(4, 8, "project", _text(4), seen=np.ones(4, dtype=bool))
    with pytest.raises(LongtailError, match="need text vectors"):
        embedding.grow(5, None, seen=np.ones(5, dtype=bool))


def test_learn_from_masks_context_targets_and_drops_histories_without_new_items() -> None:
    histories = [np.array([0, 1, 2, 3, 4, 5, 6]), np.array([2, 3]), np.array([4, 5, 6])]
    windows, weights = Trainer(SMALL).training_windows(TrainData(7, histories), learn_from=[5, 2, 1])
    assert weights is None
    # user 0: window = its newest 5 items (2..6) -> targets 3..6 shifted by one; items before index 5 are context only
    inputs, targets = windows[0]
    np.testing.assert_array_equal(inputs, [3, 4, 5, 6])
    np.testing.assert_array_equal(targets, [0, 0, 6, 7])
    np.testing.assert_array_equal(windows[1][0], [5, 6])  # user 2: items 5 and 6 (indices 1, 2) are new, both learned
    np.testing.assert_array_equal(windows[1][1], [6, 7])
    assert len(windows) == 2  # user 1 has no new item to learn


def test_partial_fit_changes_weights_and_scores_a_grown_catalogue() -> None:
    histories = [np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4]), np.array([2, 3, 4, 0])]
    model = SASRec(SMALL).fit(TrainData(5, histories))
    old_scores = model.score(histories)
    new_histories = [np.array([0, 1, 5, 6]), np.array([3, 4, 6, 5])]
    model.partial_fit(TrainData(7, new_histories), learn_from=[2, 2])
    scores = model.score(histories)
    assert scores.shape == (3, 7) and model.n_items_ == 7
    assert not np.allclose(scores[:, :5], old_scores)
