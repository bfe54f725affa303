"""The SASRec network: a text-initialisable item table and causal transformer blocks (its training loop is in trainer.py)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from longtail.core.config import SequentialConfig
from longtail.core.errors import LongtailError


class ItemTable(nn.Module, ABC):
    """An item table module: called with no input it gives the (n_items + 1, width) table, row 0 the padding."""

    @abstractmethod
    def grow(self, n_items: int, text: np.ndarray | None, seen: np.ndarray) -> None:
        """Extend the table to `n_items` rows, keeping every existing row (warm start on a grown catalogue)."""

    @property
    def text_shape(self) -> tuple[int, ...] | None:
        """Shape of the frozen text vectors the table keeps as a buffer (None when it keeps none)."""
        text = getattr(self, "text", None)
        return tuple(text.shape) if isinstance(text, torch.Tensor) else None


class SequenceNetwork(nn.Module, ABC):
    """A sequential network as the trainer and the recommenders use it: hidden states of sequences over its item table."""

    @abstractmethod
    def table(self) -> torch.Tensor:
        """The (n_items + 1, width) item table (row 0 = padding) that `forward` reads and the softmax scores against."""

    @abstractmethod
    def grow(self, n_items: int, text: np.ndarray | None, seen: np.ndarray) -> None:
        """Give items appended to the catalogue a row, keeping every existing one."""

    @property
    @abstractmethod
    def text_shape(self) -> tuple[int, ...] | None:
        """Shape of the frozen text vectors kept in the weights (None without), so a saved network can be rebuilt."""


class ItemEmbedding(ItemTable):
    """The item table (row 0 = padding) shared by the input and the output softmax.

    Modes: `none` a learned table; `freeze` a fixed PCA of the text vectors; `project` a learned linear map of
    frozen text vectors; `finetune` that map plus a learned per-item correction that stays zero for items
    without training interactions, so an unseen item's vector always comes from its text.
    """

    # Buffers, set by register_buffer in the modes that use them.
    fixed: torch.Tensor
    text: torch.Tensor
    seen: torch.Tensor

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
        items: torch.Tensor
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


class SASRecNetwork(SequenceNetwork):
    """Item + position embeddings, causal transformer blocks, final layer norm."""

    def __init__(self, items: ItemTable, config: SequentialConfig) -> None:
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

    def table(self) -> torch.Tensor:
        """The item table module's current table."""
        table: torch.Tensor = self.items()
        return table

    def grow(self, n_items: int, text: np.ndarray | None, seen: np.ndarray) -> None:
        """Grow the item table (see `ItemTable.grow`)."""
        self.items.grow(n_items, text, seen)

    @property
    def text_shape(self) -> tuple[int, ...] | None:
        """The item table's text buffer shape."""
        return self.items.text_shape

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


def left_pad(sequences: Sequence[np.ndarray], length: int) -> torch.Tensor:
    """A (batch, length) int64 tensor: each sequence right-aligned, 0 (padding) before it."""
    batch = np.zeros((len(sequences), length), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        if len(sequence):
            batch[row, -len(sequence) :] = sequence
    return torch.from_numpy(batch)
