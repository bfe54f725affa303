"""SASRec-style next-item transformer, trained with a softmax over all items and optionally text-initialised."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from longtail.core.config import RecommendConfig, SequentialConfig
from longtail.core.errors import LongtailError
from longtail.models.base import Recommender, TrainData, Validator, register

log = logging.getLogger(__name__)
SCORE_BATCH = 1024


class ItemEmbedding(nn.Module):
    """The item table (row 0 = padding) shared by the input and the output softmax.

    Modes: `none` a learned table; `freeze` a fixed PCA of the text vectors; `project` a learned linear map of
    frozen text vectors; `finetune` that map plus a learned per-item correction that stays zero for items
    without training interactions, so an unseen item's vector always comes from its text.
    """

    def __init__(self, n_items: int, hidden: int, mode: str, text: np.ndarray | None, seen: np.ndarray) -> None:
        super().__init__()
        self.mode = mode
        if mode == "none":
            self.table = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_items, hidden)))
            return
        if text is None:
            raise LongtailError(f"text_init '{mode}' needs item text vectors; use text_init: none or encode the items first")
        vectors = torch.as_tensor(np.asarray(text, dtype=np.float32))
        if mode == "freeze":
            centred = vectors - vectors.mean(0)
            _, _, components = torch.linalg.svd(centred, full_matrices=False)
            reduced = centred @ components[:hidden].T
            # same scale as a xavier-initialised table, so the transformer sees familiar magnitudes
            self.register_buffer("fixed", reduced / reduced.std() * math.sqrt(2 / (n_items + hidden)))
            return
        self.register_buffer("text", vectors)
        self.project = nn.Linear(vectors.shape[1], hidden, bias=False)
        if mode == "finetune":
            self.correction = nn.Parameter(torch.zeros(n_items, hidden))
            self.register_buffer("seen", torch.as_tensor(seen, dtype=torch.float32).unsqueeze(1))

    @torch.no_grad()
    def grow(self, n_items: int, text: np.ndarray | None, seen: np.ndarray) -> None:
        """Extend the table to `n_items` rows, keeping every existing row: new items get a vector from their text
        where the table is built from text, else a fresh random row at the table's own scale.

        `text` covers the whole grown catalogue; `seen` marks items with training interactions (finetune mode).
        """
        old = self.forward().shape[0] - 1
        if n_items < old:
            raise LongtailError(f"the item table can only grow: it has {old} items, asked for {n_items}")
        if self.mode == "none":
            fresh = torch.randn(n_items - old, self.table.shape[1]) * self.table.std()
            self.table = nn.Parameter(torch.cat([self.table.data, fresh]))
            return
        if text is None:
            raise LongtailError(f"text_init '{self.mode}': items new since training need text vectors to get a row")
        vectors = torch.as_tensor(np.asarray(text, dtype=np.float32))
        if self.mode == "freeze":
            # the fixed table is an affine map of the text vectors (a scaled PCA): recover it and apply it to the new items
            with_bias = F.pad(vectors[:old], (0, 1), value=1.0)
            solution = torch.linalg.lstsq(with_bias, self.fixed).solution
            self.fixed = torch.cat([self.fixed, F.pad(vectors[old:], (0, 1), value=1.0) @ solution])
            return
        self.text = torch.cat([self.text, vectors[old:]])
        if self.mode == "finetune":
            self.correction = nn.Parameter(torch.cat([self.correction.data, torch.zeros(n_items - old, self.correction.shape[1])]))
            self.seen = torch.maximum(F.pad(self.seen, (0, 0, 0, n_items - old)), torch.as_tensor(seen, dtype=torch.float32).unsqueeze(1))

    def forward(self) -> torch.Tensor:
        """The (n_items + 1, hidden) table with a zero padding row."""
        if self.mode == "none":
            items = self.table
        elif self.mode == "freeze":
            items = self.fixed
        else:
            items = self.project(self.text)
            if self.mode == "finetune":
                items = items + self.correction * self.seen
        return F.pad(items, (0, 0, 1, 0))


class _Block(nn.Module):
    """Pre-norm causal self-attention and a position-wise feed-forward layer, both residual."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.attention_norm = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.feed_forward_norm = nn.LayerNorm(hidden)
        self.feed_forward = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).view(batch, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.residual_dropout(self.out(attended.transpose(1, 2).reshape(batch, length, hidden)))
        return x + self.residual_dropout(self.feed_forward(self.feed_forward_norm(x)))


class SASRecNetwork(nn.Module):
    """Item + position embeddings, causal transformer blocks, final layer norm."""

    def __init__(self, items: ItemEmbedding, config: SequentialConfig) -> None:
        super().__init__()
        if config.hidden % config.heads:
            raise LongtailError(f"sequential.hidden ({config.hidden}) must be divisible by sequential.heads ({config.heads})")
        self.items = items
        self.max_len = config.max_len
        self.scale = math.sqrt(config.hidden)
        self.position = nn.Parameter(nn.init.xavier_normal_(torch.empty(config.max_len, config.hidden)))
        self.input_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(_Block(config.hidden, config.heads, config.dropout) for _ in range(config.blocks))
        self.norm = nn.LayerNorm(config.hidden)

    def forward(self, sequences: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Hidden states (batch, length, hidden) for left-padded item sequences (0 = padding)."""
        length = sequences.shape[1]
        keep = (sequences > 0).unsqueeze(-1).to(table.dtype)
        # positions count back from the newest item, so padding to the batch's length needs no shift
        x = table[sequences] * self.scale + self.position[self.max_len - length :]
        x = self.input_dropout(x) * keep
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        # a padded query may still attend to itself: an all-masked row would turn into NaN
        mask = (causal & (sequences > 0)[:, None, None, :]) | torch.eye(length, dtype=torch.bool)
        for block in self.blocks:
            x = block(x, mask) * keep
        return self.norm(x)


def sampling_log_probabilities(counts: np.ndarray, exponent: float = 1.0) -> torch.Tensor:
    """log q(i) of the sampled softmax's negative sampler: q proportional to count^exponent (1 = popularity, 0 = uniform)."""
    weights = (np.asarray(counts, dtype=np.float64) + 1e-9) ** exponent
    return torch.log(torch.as_tensor(weights / weights.sum(), dtype=torch.float32))


def _left_pad(sequences: Sequence[np.ndarray], length: int) -> torch.Tensor:
    batch = np.zeros((len(sequences), length), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        if len(sequence):
            batch[row, -len(sequence) :] = sequence
    return torch.from_numpy(batch)


@register
class SASRec(Recommender):
    """Self-attentive sequential recommendation (Kang & McAuley 2018) with cross-entropy over every position.

    Trains on every step of each history (all-timestep loss), stops early on the validator's score, and keeps
    the best epoch's weights.
    """

    name = "sasrec"

    def __init__(self, config: SequentialConfig | None = None) -> None:
        self.config = config or SequentialConfig()

    @classmethod
    def from_config(cls, config: RecommendConfig) -> Self:
        return cls(config.sequential)

    def _training_windows(self, data: TrainData, learn_from: Sequence[int] | None = None) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
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

    def _logits(self, selected: torch.Tensor, labels: torch.Tensor, table: torch.Tensor, log_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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

    def _loss(self, hidden: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, log_q: torch.Tensor,
              weights: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax cross-entropy on non-padded positions only, full or sampled with logQ correction.

        With per-sequence `weights` every position of a sequence carries its weight: a weighted mean.
        """
        positions = targets > 0
        logits, labels = self._logits(hidden[positions], targets[positions], table, log_q)
        if weights is None:
            return F.cross_entropy(logits, labels)
        position_weights = weights[:, None].expand_as(targets)[positions]
        return (F.cross_entropy(logits, labels, reduction="none") * position_weights).sum() / position_weights.sum()

    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        torch.manual_seed(data.seed)
        self.n_items_ = data.n_items
        self.network_ = SASRecNetwork(ItemEmbedding(data.n_items, self.config.hidden, self.config.text_init, data.item_vectors, data.counts() > 0), self.config)
        return self._train(data, validate)

    def partial_fit(self, data: TrainData, validate: Validator | None = None, learn_from: Sequence[int] | None = None) -> Self:
        """Warm start: continue training the fitted weights on `data` (e.g. new events), with a fresh optimiser.

        `learn_from[u]` is the index of user u's first item to learn to predict: earlier items are context only,
        so only new events are trained on. `data.n_items` may exceed the fitted catalogue: items appended since
        get rows first (see `ItemEmbedding.grow`); existing item indices must keep their meaning.
        """
        torch.manual_seed(data.seed)
        self.network_.items.grow(data.n_items, data.item_vectors, data.counts() > 0)
        self.n_items_ = data.n_items
        return self._train(data, validate, learn_from)

    def _train(self, data: TrainData, validate: Validator | None, learn_from: Sequence[int] | None = None) -> Self:
        """The training loop shared by `fit` and `partial_fit`: all-timestep loss, early stopping on `validate`."""
        config = self.config
        torch.set_num_threads(config.threads)
        generator = np.random.default_rng(data.seed)
        counts = data.counts()
        optimiser = torch.optim.AdamW(self.network_.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.98))
        windows, window_weights = self._training_windows(data, learn_from)
        if not windows:
            raise LongtailError("sequential model: no history has two or more items to learn from")
        log_q = sampling_log_probabilities(counts, config.negative_exponent)
        out_of_time = lambda: config.max_train_seconds is not None and time.perf_counter() - started > config.max_train_seconds  # noqa: E731
        best_score, best_state, stale = -math.inf, None, 0
        self.history_: list[dict[str, float]] = []
        started = time.perf_counter()
        for epoch in range(1, config.epochs + 1):
            self.network_.train()
            order = generator.permutation(len(windows))
            total, steps = 0.0, 0
            for start in range(0, len(order), config.batch_size):
                # the cap binds inside an epoch too, so runs with more training sequences get the same wall time
                if steps and out_of_time():
                    break
                picked = order[start : start + config.batch_size]
                chosen = [windows[i] for i in picked]
                length = max(len(inputs) for inputs, _ in chosen)
                inputs = _left_pad([inputs for inputs, _ in chosen], length)
                targets = _left_pad([targets for _, targets in chosen], length)
                table = self.network_.items()
                weights = None if window_weights is None else torch.from_numpy(window_weights[picked])
                loss = self._loss(self.network_(inputs, table), targets, table, log_q, weights)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item()
                steps += 1
            record = {"epoch": epoch, "loss": total / steps, "seconds": time.perf_counter() - started}
            if validate is not None:
                record["valid"] = validate(self)
                if record["valid"] > best_score:
                    best_score, best_state, stale = record["valid"], copy.deepcopy(self.network_.state_dict()), 0
                else:
                    stale += 1
            self.history_.append(record)
            log.info("epoch %(epoch)d loss %(loss).4f valid %(valid).4f at %(seconds).0fs", {"valid": float("nan"), **record})
            if stale >= config.patience or (config.max_train_seconds is not None and record["seconds"] > config.max_train_seconds):
                break
        if best_state is not None:
            self.network_.load_state_dict(best_state)
        self.best_valid_ = best_score
        self.network_.eval()
        return self

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        was_training = self.network_.training
        self.network_.eval()
        table = self.network_.items()
        output = np.empty((len(histories), self.n_items_), dtype=np.float32)
        for start in range(0, len(histories), SCORE_BATCH):
            chunk = [h[-self.config.max_len :] + 1 for h in histories[start : start + SCORE_BATCH]]
            length = max(1, max(len(c) for c in chunk))
            hidden = self.network_(_left_pad(chunk, length), table)[:, -1]
            output[start : start + len(chunk)] = (hidden @ table[1:].T).numpy()
        self.network_.train(was_training)
        return output

    def save(self, path: str | Path) -> Path:
        """Write weights, config and training history; `SASRec.load` restores a model that scores identically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        items = self.network_.items
        text_shape = tuple(items.text.shape) if hasattr(items, "text") else None
        payload = {"config": self.config.model_dump(), "n_items": self.n_items_, "text_shape": text_shape,
                   "state": self.network_.state_dict(), "history": self.history_, "best_valid": self.best_valid_}
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SASRec:
        """A fitted model from `save`."""
        payload = torch.load(Path(path), weights_only=False)
        model = cls(SequentialConfig.model_validate(payload["config"]))
        n_items, mode = payload["n_items"], model.config.text_init
        text = np.zeros(payload["text_shape"] or (n_items, model.config.hidden), dtype=np.float32)
        items = ItemEmbedding(n_items, model.config.hidden, mode, text, np.ones(n_items, dtype=bool))
        model.network_ = SASRecNetwork(items, model.config)
        model.network_.load_state_dict(payload["state"])
        model.network_.eval()
        model.n_items_, model.history_, model.best_valid_ = n_items, payload["history"], payload["best_valid"]
        return model

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        """The learned (n_items, hidden) item table: the vectors 'similar items' compares."""
        return self.network_.items()[1:].numpy().copy()
