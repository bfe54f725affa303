"""The training loop for the sequential networks: all-timestep softmax loss (full or sampled with logQ), per-sequence
weights, optional length-bucketed batches, warm-up + cosine schedule and bf16 autocast, early stopping on a validator,
and the best epoch's weights kept."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from longtail.core.config import SequentialConfig
from longtail.core.errors import LongtailError
from longtail.models.base import TrainData
from longtail.models.sequential.network import SequenceNetwork, left_pad

log = logging.getLogger(__name__)
BUCKET_SPAN = 16  # batches sorted by length together: long enough to bucket well, short enough to stay shuffled


def sampling_log_probabilities(counts: np.ndarray, exponent: float = 1.0) -> torch.Tensor:
    """log q(i) of the sampled softmax's negative sampler: q proportional to count^exponent (1 = popularity, 0 = uniform)."""
    weights = (np.asarray(counts, dtype=np.float64) + 1e-9) ** exponent
    return torch.log(torch.as_tensor(weights / weights.sum(), dtype=torch.float32))


@dataclass
class TrainingRun:
    """What one call of `Trainer.train` measured: one record per epoch, the best validation score (-inf without one), and
    why it stopped: "patience" (converged on validation), "budget" (max_train_seconds) or "epochs" (the epoch limit)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_valid: float = -math.inf
    stopped: str = "epochs"


class Trainer:
    """Trains a `SequenceNetwork` (SASRec, the text-aware variants) on behaviour histories with the optimiser and loss settings of a `SequentialConfig`."""

    def __init__(self, config: SequentialConfig) -> None:
        self.config = config

    def training_windows(self, data: TrainData, learn_from: Sequence[int] | None = None) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
        """(inputs, targets) per history with two or more unmasked items — its newest max_len + 1 items shifted by
        one (0 = padding, which a masked position becomes) — and those histories' loss weights.

        With `learn_from`, targets at history positions before it are 0 (context only, no loss); a history with
        no target left gives no window.
        """
        span = self.config.max_len + 1
        windows, kept = [], []
        for row, history in enumerate(data.histories):
            window = history[-span:] + 1
            targets = window[1:].copy()
            if learn_from is not None:
                # targets[j] is history item (len(history) - len(window)) + j + 1
                targets[: max(0, learn_from[row] - (len(history) - len(window)) - 1)] = 0
            if np.count_nonzero(history >= 0) >= 2 and targets.any():
                windows.append((window[:-1], targets))
                kept.append(row)
        weights = None if data.weights is None else np.asarray(data.weights, dtype=np.float32)[kept]
        return windows, weights

    def logits(self, selected: torch.Tensor, labels: torch.Tensor, table: torch.Tensor, log_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the column of the true item: over all items, or the positive then the sampled negatives."""
        if self.config.loss == "ce":
            return selected @ table[1:].T, labels - 1
        negatives = torch.multinomial(log_q.exp(), self.config.negatives, replacement=True)
        positive = (selected * table[labels]).sum(-1)
        negative = selected @ table[negatives + 1].T
        if self.config.logq:
            # subtracting log q undoes the sampler's preference for popular items (Yi et al. 2019)
            positive = positive - log_q[labels - 1]
            negative = negative - log_q[negatives]
        negative = negative.masked_fill(negatives[None, :] == (labels - 1)[:, None], float("-inf"))
        return torch.cat([positive[:, None], negative], dim=1), torch.zeros(len(labels), dtype=torch.long)

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, log_q: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax cross-entropy on non-padded positions only, full or sampled with logQ correction.

        With per-sequence `weights` every position of a sequence carries its weight: a weighted mean.
        """
        positions = targets > 0
        logits, labels = self.logits(hidden[positions], targets[positions], table, log_q)
        logits = logits.float()  # under bf16 autocast the softmax itself still runs in float32
        if weights is None:
            return F.cross_entropy(logits, labels)
        position_weights = weights[:, None].expand_as(targets)[positions]
        return (F.cross_entropy(logits, labels, reduction="none") * position_weights).sum() / position_weights.sum()

    def batches(self, windows: Sequence[tuple[np.ndarray, np.ndarray]], generator: np.random.Generator) -> list[np.ndarray]:
        """One epoch's batches of window indices, shuffled; with `bucket`, each batch holds windows of similar length.

        Bucketing sorts each run of BUCKET_SPAN batches by length and shuffles the batches, so a batch of short
        histories is not padded to the longest one in the set, yet the batch order stays random.
        """
        size = self.config.batch_size
        order = generator.permutation(len(windows))
        if not self.config.bucket:
            return [order[start : start + size] for start in range(0, len(order), size)]
        lengths = np.array([len(windows[i][0]) for i in order])
        span = size * BUCKET_SPAN
        order = np.concatenate([order[s : s + span][np.argsort(lengths[s : s + span], kind="stable")] for s in range(0, len(order), span)])
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        return [batches[i] for i in generator.permutation(len(batches))]

    def learning_rate(self, step: int, progress: float) -> float:
        """Linear warm-up over `warmup_steps`, then constant or cosine decay to `min_lr` as `progress` goes from 0 to 1."""
        config = self.config
        if step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return config.lr
        return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    def train(
        self, network: SequenceNetwork, data: TrainData, validate: Callable[[], float] | None = None, learn_from: Sequence[int] | None = None
    ) -> TrainingRun:
        """Train `network` in place with a fresh optimiser; stop early on `validate()` (higher is better) and keep the best epoch.

        Each epoch's record holds `seconds`, the training time so far without validation (what `max_train_seconds`
        budgets and the time-to-quality curve plots), and `wall_seconds` with it.
        """
        config = self.config
        torch.set_num_threads(config.threads)
        generator = np.random.default_rng(data.seed)
        optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.98))
        windows, window_weights = self.training_windows(data, learn_from)
        if not windows:
            raise LongtailError("sequential model: no history has two or more items to learn from")
        log_q = sampling_log_probabilities(data.counts(), config.negative_exponent)
        steps_per_epoch = math.ceil(len(windows) / config.batch_size)

        run, best_state, stale, step, training_seconds = TrainingRun(), None, 0, 0, 0.0
        started = time.perf_counter()

        for epoch in range(1, config.epochs + 1):
            network.train()
            total, epoch_steps = 0.0, 0
            epoch_started = time.perf_counter()
            for picked in self.batches(windows, generator):
                trained = training_seconds + time.perf_counter() - epoch_started
                # the budget binds inside an epoch too, so runs with more training sequences get the same time
                if epoch_steps and config.max_train_seconds and trained > config.max_train_seconds:
                    break
                # the schedule ends with the epochs, or with the budget when that comes first
                progress = step / (config.epochs * steps_per_epoch)
                if config.max_train_seconds:
                    progress = max(progress, trained / config.max_train_seconds)
                for group in optimiser.param_groups:
                    group["lr"] = self.learning_rate(step, progress)
                chosen = [windows[i] for i in picked]
                length = max(len(inputs) for inputs, _ in chosen)
                inputs = left_pad([inputs for inputs, _ in chosen], length)
                targets = left_pad([targets for _, targets in chosen], length)
                weights = None if window_weights is None else torch.from_numpy(window_weights[picked])
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.autocast == "bf16"):
                    table = network.table()
                    loss = self.loss(network(inputs, table), targets, table, log_q, weights)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item()
                epoch_steps += 1
                step += 1
            training_seconds += time.perf_counter() - epoch_started
            record = {"epoch": epoch, "loss": total / epoch_steps, "seconds": training_seconds}
            if validate is not None:
                record["valid"] = validate()
                if record["valid"] > run.best_valid:
                    run.best_valid, best_state, stale = record["valid"], copy.deepcopy(network.state_dict()), 0
                else:
                    stale += 1
            record["wall_seconds"] = time.perf_counter() - started
            run.history.append(record)
            log.info("epoch %(epoch)d loss %(loss).4f valid %(valid).4f at %(seconds).0fs", {"valid": float("nan"), **record})
            if stale >= config.patience:
                run.stopped = "patience"
                break
            if config.max_train_seconds is not None and training_seconds > config.max_train_seconds:
                run.stopped = "budget"
                break
        if best_state is not None:
            network.load_state_dict(best_state)
        network.eval()
        return run
