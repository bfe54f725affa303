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

from longtail.config import RecommendConfig, SequentialConfig
from longtail.errors import LongtailError
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

    def _training_windows(self, data: TrainData) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Item indices shifted by one (0 = padding, which a masked position becomes), the newest max_len + 1
        items of each history with two or more unmasked items, and those histories' loss weights."""
        span = self.config.max_len + 1
        keep = [i for i, h in enumerate(data.histories) if np.count_nonzero(h >= 0) >= 2]
        weights = None if data.weights is None else np.asarray(data.weights, dtype=np.float32)[keep]
        return [data.histories[i][-span:] + 1 for i in keep], weights

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
        config = self.config
        torch.set_num_threads(config.threads)
        torch.manual_seed(data.seed)
        generator = np.random.default_rng(data.seed)
        counts = data.counts()
        self.n_items_ = data.n_items
        self.network_ = SASRecNetwork(ItemEmbedding(data.n_items, config.hidden, config.text_init, data.item_vectors, counts > 0), config)
        optimiser = torch.optim.AdamW(self.network_.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.98))
        windows, window_weights = self._training_windows(data)
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
                length = max(len(w) for w in chosen) - 1
                inputs = _left_pad([w[:-1] for w in chosen], length)
                targets = _left_pad([w[1:] for w in chosen], length)
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
