"""The text-aware sequential recommenders: SASRec over adapted frozen text vectors (with or without item ids), the
dual-view model, and the tail blend that leans on text for items with little behaviour data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from longtail.core.config import RecommendConfig, SequentialConfig, TextSequentialConfig
from longtail.core.errors import LongtailError
from longtail.models.base import ARRAYS_FILE, TrainData, Validator, register
from longtail.models.content import recent_text_scores
from longtail.models.sequential.model import SASRec
from longtail.models.sequential.network import SASRecNetwork, SequenceNetwork
from longtail.models.sequential.text_network import AdaptedItemEmbedding, DualViewNetwork

# Per-item tensors are tied to one catalogue; everything else (adaptor, encoder, positions) can move to another.
CATALOGUE_WEIGHTS = ("items.text", "items.ids", "items.seen")


@register
class TextAdaptorSASRec(SASRec):
    """SASRec whose item vectors are frozen text vectors through a whitening + mixture-of-experts adaptor (UniSRec),
    plus learned id vectors for items seen in training (`text.id_embedding: add`) or text alone (`replace`).

    Items without training interactions get their vector from text, so new items are scored like any other.
    """

    name = "sasrec-adaptor"

    def __init__(self, config: SequentialConfig | None = None, text_config: TextSequentialConfig | None = None) -> None:
        super().__init__(config)
        self.text_config = text_config or TextSequentialConfig()

    @classmethod
    def from_config(cls, config: RecommendConfig) -> Self:
        return cls(config.sequential, config.text)

    def _network(self, n_items: int, text: np.ndarray | None, seen: np.ndarray) -> SequenceNetwork:
        return SASRecNetwork(AdaptedItemEmbedding(text, self.config.hidden, self.text_config, seen), self.config)

    def fit_from(self, pretrained: TextAdaptorSASRec, data: TrainData, validate: Validator | None = None) -> Self:
        """Fit starting from another catalogue's fitted model: its adaptor, encoder and positions are copied, the
        per-item tensors (text, ids) are this catalogue's; then train as `fit` does (transfer, UniSRec's fine-tuning)."""
        torch.manual_seed(data.seed)
        self.n_items_ = data.n_items
        self.network_ = self._network(data.n_items, data.item_vectors, data.counts() > 0)
        own = self.network_.state_dict()
        moved = {
            name: tensor
            for name, tensor in pretrained.network_.state_dict().items()
            if name not in CATALOGUE_WEIGHTS and name in own and own[name].shape == tensor.shape
        }
        if not moved:
            raise LongtailError("fit_from: the pre-trained model shares no weights with this one (different hidden size or text encoder?)")
        self.network_.load_state_dict(moved, strict=False)
        self.transferred_ = sorted(moved)
        return self._train(data, validate)

    def _saved_params(self) -> dict[str, Any]:
        return {"config": self.config.model_dump(), "text_config": self.text_config.model_dump()}

    @classmethod
    def _unfitted(cls, meta: dict[str, Any]) -> Self:
        return cls(SequentialConfig.model_validate(meta["config"]), TextSequentialConfig.model_validate(meta["text_config"]))

    def _adapted_items(self) -> AdaptedItemEmbedding:
        """The adapted item table of the fitted network."""
        items = self.network_.items if isinstance(self.network_, SASRecNetwork) else None
        if not isinstance(items, AdaptedItemEmbedding):
            raise LongtailError(f"{self.name}: the network has no adapted text table")
        return items

    def text_table(self) -> torch.Tensor:
        """The (n_items + 1, hidden) item table from text alone (no id vectors)."""
        return self._adapted_items().text_table()

    def text_vectors(self) -> np.ndarray:
        """The frozen (n_items, text_dim) text vectors the model reads."""
        return self._adapted_items().text.numpy()


@register
class DualViewSASRec(TextAdaptorSASRec):
    """Dual-view sequential model (LLM-ESR style): a semantic encoder over adapted frozen text vectors and a
    collaborative encoder over learned id vectors, fused by concatenation; the two views train together."""

    name = "sasrec-dual-view"

    def _network(self, n_items: int, text: np.ndarray | None, seen: np.ndarray) -> SequenceNetwork:
        return DualViewNetwork(text, seen, self.config, self.text_config)


def _standardised(scores: np.ndarray) -> np.ndarray:
    """Each user's scores as z-scores over the catalogue, so scorers on different scales can be blended."""
    return (scores - scores.mean(1, keepdims=True)) / np.maximum(scores.std(1, keepdims=True), 1e-6)


@register
class TailBlendSASRec(TextAdaptorSASRec):
    """The adaptor model plus a text path, blended per item by popularity:
    (1 - w_i) z(model_i) + w_i z(text_i), w_i = exp(-count_i / text.tail_popularity), z a z-score over the
    catalogue per user, text_i the cosine between item i's frozen text vector and a recency-weighted mean of the
    user's last `text.tail_recent` items' (their sequence read as text).

    The model's scores carry popularity (a rarely bought item is rarely a softmax target, so it is pushed down);
    the text path carries none. New items (count 0) are scored by text alone, head items by the model, tail
    items in between.
    """

    name = "sasrec-tail-blend"

    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        # the validator scores through `score`, so the blend weights must exist before training starts
        self.text_weight_ = self._text_weights(data)
        return super().fit(data, validate)

    def fit_from(self, pretrained: TextAdaptorSASRec, data: TrainData, validate: Validator | None = None) -> Self:
        self.text_weight_ = self._text_weights(data)
        return super().fit_from(pretrained, data, validate)

    def partial_fit(self, data: TrainData, validate: Validator | None = None, learn_from: Sequence[int] | None = None) -> Self:
        # items appended since fitting have no training interactions yet: text alone scores them (weight 1)
        self.text_weight_ = np.pad(self.text_weight_, (0, data.n_items - len(self.text_weight_)), constant_values=1.0)
        return super().partial_fit(data, validate, learn_from)

    def _text_weights(self, data: TrainData) -> np.ndarray:
        """w_i = exp(-count_i / tail_popularity) per item, from the training interactions."""
        return np.exp(-data.counts() / self.text_config.tail_popularity).astype(np.float32)

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        model = super().score(histories)
        text = recent_text_scores(self.text_vectors(), histories, self.text_config.tail_recent)
        blended = (1 - self.text_weight_) * _standardised(model) + self.text_weight_ * _standardised(text)
        return blended.astype(np.float32)

    def _save_state(self, directory: Path) -> None:
        from safetensors.numpy import save_file

        super()._save_state(directory)
        save_file({"text_weight_": self.text_weight_}, directory / ARRAYS_FILE)

    @classmethod
    def _load_state(cls, directory: Path, params: dict[str, Any]) -> Self:
        model = super()._load_state(directory, params)
        model._load_arrays(directory)
        return model
