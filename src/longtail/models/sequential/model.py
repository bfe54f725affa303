"""SASRec as a recommender: builds the network, hands training to the `Trainer`, scores, saves and loads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from longtail.core.artifacts import load_json, save_json
from longtail.core.config import RecommendConfig, SequentialConfig
from longtail.models.base import Recommender, TrainData, Validator, register
from longtail.models.sequential.network import ItemEmbedding, SASRecNetwork, left_pad
from longtail.models.sequential.trainer import Trainer, TrainingRun
from longtail.models.similar import similar_items

SCORE_BATCH = 1024
WEIGHTS_FILE = "model.safetensors"
META_FILE = "sequential.json"


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

    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        torch.manual_seed(data.seed)
        self.n_items_ = data.n_items
        items = ItemEmbedding(data.n_items, self.config.hidden, self.config.text_init, data.item_vectors, data.counts() > 0)
        self.network_ = SASRecNetwork(items, self.config)
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
        run: TrainingRun = Trainer(self.config).train(self.network_, data, None if validate is None else lambda: validate(self), learn_from)
        self.history_, self.best_valid_, self.stopped_ = run.history, run.best_valid, run.stopped
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
            hidden = self.network_(left_pad(chunk, length), table)[:, -1]
            output[start : start + len(chunk)] = (hidden @ table[1:].T).numpy()
        self.network_.train(was_training)
        return output

    def similar_items(self, item: int, k: int = 10) -> np.ndarray:
        """The k items whose learned vectors are closest (cosine) to `item`'s, best first."""
        return similar_items(self.item_vectors(), item, k)[0]

    def _saved_params(self) -> dict[str, Any]:
        return {"config": self.config.model_dump()}

    def _save_state(self, directory: Path) -> None:
        """Weights as safetensors, config and training history as JSON: loading them runs no code."""
        from safetensors.torch import save_file

        items = self.network_.items
        text_shape = list(items.text.shape) if hasattr(items, "text") else None
        meta = {"config": self.config.model_dump(), "n_items": self.n_items_, "text_shape": text_shape,
                "history": self.history_, "best_valid": self.best_valid_, "stopped": self.stopped_}
        save_file({name: tensor.contiguous() for name, tensor in self.network_.state_dict().items()}, directory / WEIGHTS_FILE)
        save_json(directory / META_FILE, meta)

    @classmethod
    def load(cls, directory: str | Path) -> SASRec:
        """A fitted model from the folder `save` wrote (its `sequential.json` carries the config too)."""
        return cls._load_state(Path(directory), {})

    @classmethod
    def _load_state(cls, directory: Path, params: dict[str, Any]) -> Self:
        from safetensors.torch import load_file

        meta = load_json(directory / META_FILE)
        model = cls(SequentialConfig.model_validate(meta["config"]))
        n_items, mode = meta["n_items"], model.config.text_init
        text = np.zeros(meta["text_shape"] or (n_items, model.config.hidden), dtype=np.float32)
        items = ItemEmbedding(n_items, model.config.hidden, mode, text, np.ones(n_items, dtype=bool))
        model.network_ = SASRecNetwork(items, model.config)
        model.network_.load_state_dict(load_file(directory / WEIGHTS_FILE))
        model.network_.eval()
        model.n_items_, model.history_, model.best_valid_ = n_items, meta["history"], meta["best_valid"]
        model.stopped_ = meta.get("stopped", "unknown")  # folders written before the reason was recorded
        return model

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        """The learned (n_items, hidden) item table: the vectors 'similar items' compares."""
        return self.network_.items()[1:].numpy().copy()
