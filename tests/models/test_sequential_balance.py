"""SASRec under balancing: per-sequence loss weights, and popularity-proportional negatives whose logQ term is log q."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from longtail.core.config import SequentialConfig
from longtail.models.base import TrainData
from longtail.models.sequential import SASRec, Trainer, sampling_log_probabilities

SMALL = SequentialConfig(hidden=16, blocks=1, heads=2, max_len=8, dropout=0.0, epochs=1, batch_size=64, negatives=32)


@pytest.fixture(scope="module")
def counts(beauty_slice) -> np.ndarray:
    return TrainData(beauty_slice[1].n_items, beauty_slice[1].train).counts()


def _batch(n_items: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(4, 6, 16, generator=generator)
    targets = torch.randint(1, n_items + 1, (4, 6), generator=generator)
    targets[0, :2] = 0  # padding is never a target
    table = torch.randn(n_items + 1, 16, generator=generator)
    return hidden, targets, table


@pytest.mark.parametrize("exponent", [1.0, 0.5, 0.0])
def test_sampling_probabilities_follow_count_to_the_exponent(counts, exponent) -> None:
    log_q = sampling_log_probabilities(counts, exponent)
    expected = (counts + 1e-9) ** exponent
    np.testing.assert_allclose(log_q.exp().numpy(), expected / expected.sum(), rtol=1e-5)
    draws = torch.multinomial(log_q.exp(), 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    head = np.argsort(-counts)[:100]
    drawn_share = np.isin(draws.numpy(), head).mean()
    assert drawn_share == pytest.approx(float(log_q.exp().numpy()[head].sum()), abs=0.005)


def test_the_logq_correction_subtracts_log_of_the_sampling_probability(counts) -> None:
    hidden, targets, table = _batch(len(counts))
    log_q = sampling_log_probabilities(counts, 1.0)
    positions = targets > 0
    corrected, uncorrected = Trainer(SMALL.model_copy(update={"loss": "sampled"})), Trainer(SMALL.model_copy(update={"loss": "sampled", "logq": False}))
    torch.manual_seed(7)
    with_logq, labels = corrected.logits(hidden[positions], targets[positions], table, log_q)
    torch.manual_seed(7)
    without, _ = uncorrected.logits(hidden[positions], targets[positions], table, log_q)
    torch.manual_seed(7)
    negatives = torch.multinomial(log_q.exp(), SMALL.negatives, replacement=True)
    finite = torch.isfinite(with_logq)
    correction = (without - with_logq)[finite]
    expected = torch.cat([log_q[targets[positions] - 1][:, None], log_q[negatives].expand(len(labels), -1)], dim=1)[finite]
    torch.testing.assert_close(correction, expected)
    assert torch.all(labels == 0)


def test_uniform_negatives_make_the_correction_a_constant(counts) -> None:
    log_q = sampling_log_probabilities(counts, 0.0)
    np.testing.assert_allclose(log_q.numpy(), -np.log(len(counts)), rtol=1e-6)


def test_sequence_weights_scale_each_sequence_in_the_loss(counts) -> None:
    hidden, targets, table = _batch(len(counts))
    trainer = Trainer(SMALL)
    log_q = sampling_log_probabilities(counts)
    unweighted = trainer.loss(hidden, targets, table, log_q)
    torch.testing.assert_close(trainer.loss(hidden, targets, table, log_q, torch.ones(4)), unweighted)
    weights = torch.tensor([0.0, 2.0, 1.0, 0.5])
    per_position = F.cross_entropy(hidden[targets > 0] @ table[1:].T, targets[targets > 0] - 1, reduction="none")
    position_weights = weights[:, None].expand_as(targets)[targets > 0]
    expected = (per_position * position_weights).sum() / position_weights.sum()
    torch.testing.assert_close(trainer.loss(hidden, targets, table, log_q, weights), expected)


def test_weights_reach_the_optimiser(beauty_slice) -> None:
    split = beauty_slice[1]
    histories = split.train[:200]
    odd_one = [np.random.default_rng(0).integers(0, split.n_items, 9)]
    ignored = SASRec(SMALL).fit(TrainData(split.n_items, histories + odd_one, weights=np.r_[np.ones(200), 0.0]))
    stressed = SASRec(SMALL).fit(TrainData(split.n_items, histories + odd_one, weights=np.r_[np.ones(200), 50.0]))
    assert not np.allclose(ignored.score(histories[:5]), stressed.score(histories[:5]))
