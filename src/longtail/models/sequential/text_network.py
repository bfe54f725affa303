"""Text-aware sequential networks: frozen item text vectors through a learned whitening + mixture-of-experts adaptor
(UniSRec), added to or replacing item ids, and a dual-view network (a semantic and a collaborative encoder, LLM-ESR)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from longtail.core.config import SequentialConfig, TextSequentialConfig
from longtail.core.errors import LongtailError
from longtail.models.sequential.network import ItemEmbedding, ItemTable, SASRecNetwork, SequenceNetwork


class MoEAdaptor(nn.Module):
    """Parametric whitening experts mixed by a gate (Hou et al. 2022): x -> sum_k softmax(x G)_k (x - b_k) W_k.

    Each expert centres the frozen text vectors with its own learned bias and projects them to the model's
    width; the gate picks a mix per item, so one adaptor can serve catalogues whose text lies in different
    regions of the language model's space (the point of transferring it across domains).
    """

    def __init__(self, text_dim: int, hidden: int, experts: int, dropout: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(experts, text_dim))
        self.weight = nn.Parameter(torch.empty(text_dim, experts * hidden))
        for expert in range(experts):
            nn.init.xavier_normal_(self.weight.data[:, expert * hidden : (expert + 1) * hidden])
        self.gate = nn.Linear(text_dim, experts, bias=False)
        nn.init.zeros_(self.gate.weight)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """(n, text_dim) text vectors -> (n, hidden) item vectors."""
        text = self.dropout(text)
        experts = self.bias.shape[0]
        weight = self.weight.view(-1, experts, self.hidden)
        # (x - b_k) W_k = x W_k - b_k W_k: one wide matmul instead of an (n, experts, text_dim) intermediate
        projected = (text @ self.weight).view(len(text), experts, self.hidden) - torch.einsum("ed,deh->eh", self.bias, weight)
        gates = torch.softmax(self.gate(text), dim=-1)
        mixed: torch.Tensor = (gates.unsqueeze(-1) * projected).sum(1)
        return mixed


class AdaptedItemEmbedding(ItemTable):
    """Item vectors = adaptor(frozen text vector), plus a learned id vector with `id_embedding: add`.

    The id vector of an item without training interactions is held at zero (mask `seen`), so a new item's
    vector always comes from its text alone and is never a random row.
    """

    text: torch.Tensor
    seen: torch.Tensor

    def __init__(self, text: np.ndarray | None, hidden: int, settings: TextSequentialConfig, seen: np.ndarray) -> None:
        super().__init__()
        if text is None:
            raise LongtailError("text-aware sequential models need item text vectors (TrainData.item_vectors); encode the items first")
        vectors = torch.as_tensor(np.asarray(text, dtype=np.float32))
        self.register_buffer("text", vectors)
        self.adaptor = MoEAdaptor(vectors.shape[1], hidden, settings.experts, settings.adaptor_dropout)
        self.uses_ids = settings.id_embedding == "add"
        if self.uses_ids:
            self.ids = nn.Parameter(torch.zeros(len(vectors), hidden))
            self.register_buffer("seen", torch.as_tensor(seen, dtype=torch.float32).unsqueeze(1))

    def text_table(self) -> torch.Tensor:
        """The (n_items + 1, hidden) table from text alone, zero padding row first."""
        return F.pad(self.adaptor(self.text), (0, 0, 1, 0))

    def forward(self) -> torch.Tensor:
        """The (n_items + 1, hidden) table: adapted text, plus the id vectors of items seen in training."""
        table = self.text_table()
        if self.uses_ids:
            table = table + F.pad(self.ids * self.seen, (0, 0, 1, 0))
        return table

    @torch.no_grad()
    def grow(self, n_items: int, text: np.ndarray | None, seen: np.ndarray) -> None:
        """Append the text vectors of items new since training; their id vectors start at zero."""
        old = len(self.text)
        if n_items < old:
            raise LongtailError(f"the item table can only grow: it has {old} items, asked for {n_items}")
        if text is None or len(text) != n_items:
            raise LongtailError(f"a text-aware model needs text vectors for all {n_items} items to grow its table")
        self.text = torch.cat([self.text, torch.as_tensor(np.asarray(text[old:], dtype=np.float32))])
        if self.uses_ids:
            self.ids = nn.Parameter(torch.cat([self.ids.data, torch.zeros(n_items - old, self.ids.shape[1])]))
            self.seen = torch.maximum(F.pad(self.seen, (0, 0, 0, n_items - old)), torch.as_tensor(seen, dtype=torch.float32).unsqueeze(1))


class DualViewNetwork(SequenceNetwork):
    """Two SASRec encoders side by side: a semantic view over adapted frozen text vectors and a collaborative view
    over learned id vectors; a user's state and an item's vector are both views concatenated, so a score is the sum
    of the two views' dot products (the fusion of LLM-ESR, Liu et al. 2024, without its self-distillation).

    The collaborative vector of an item without training interactions is held at zero: it was never trained, and
    a random row would drown the new item's semantic score in noise.
    """

    seen: torch.Tensor

    def __init__(self, text: np.ndarray | None, seen: np.ndarray, config: SequentialConfig, settings: TextSequentialConfig) -> None:
        super().__init__()
        if text is None:
            raise LongtailError("the dual-view model needs item text vectors (TrainData.item_vectors); encode the items first")
        semantic = AdaptedItemEmbedding(text, config.hidden, settings.model_copy(update={"id_embedding": "replace"}), seen)
        self.semantic = SASRecNetwork(semantic, config)
        self.collaborative = SASRecNetwork(ItemEmbedding(len(text), config.hidden, "none", None, seen), config)
        self.hidden = config.hidden
        self.register_buffer("seen", F.pad(torch.as_tensor(seen, dtype=torch.float32), (1, 0)).unsqueeze(1))

    def table(self) -> torch.Tensor:
        """(n_items + 1, 2 x hidden): the semantic then the collaborative item vectors."""
        return torch.cat([self.semantic.table(), self.collaborative.table() * self.seen], dim=1)

    def forward(self, sequences: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(batch, length, 2 x hidden): each view's encoder over its half of the table."""
        semantic = self.semantic(sequences, table[:, : self.hidden])
        return torch.cat([semantic, self.collaborative(sequences, table[:, self.hidden :])], dim=-1)

    def grow(self, n_items: int, text: np.ndarray | None, seen: np.ndarray) -> None:
        """Grow both views' tables."""
        self.semantic.grow(n_items, text, seen)
        self.collaborative.grow(n_items, text, seen)
        grown = F.pad(torch.as_tensor(seen, dtype=torch.float32), (1, 0)).unsqueeze(1)
        self.seen = torch.maximum(F.pad(self.seen, (0, 0, 0, len(grown) - len(self.seen))), grown)

    @property
    def text_shape(self) -> tuple[int, ...] | None:
        """The semantic view's text buffer shape."""
        return self.semantic.text_shape
