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
from longtail.models.sequential.network import ItemEmbedding, SASRecNetwork, SequenceNetwork, left_pad
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
        self.network_ = self._network(data.n_items, data.item_vectors, data.counts() > 0)
        return self._train(data, validate)

    def _network(self, n_items: int, text: np.ndarray | None, seen: np.ndarray) -> SequenceNetwork:
        """A fresh network for `n_items` items with their text vectors and which items have training interactions."""
        return SASRecNetwork(ItemEmbedding(n_items, self.config.hidden, self.config.text_init, text, seen), self.config)

    def partial_fit(self, data: TrainData, validate: Validator | None = None, learn_from: Sequence[int] | None = None) -> Self:
        """Warm start: continue training the fitted weights on `data` (e.g. new events), with a fresh optimiser.

        `learn_from[u]` is the index of user u's first item to learn to predict: earlier items are context only,
        so only new events are trained on. `data.n_items` may exceed the fitted catalogue: items appended since
        get rows first (see `ItemEmbedding.grow`); existing item indices must keep their meaning.
        """
        torch.manual_seed(data.seed)
        self.network_.grow(data.n_items, data.item_vectors, data.counts() > 0)
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
        table = self.network_.table()
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

        text_shape = self.network_.text_shape
        meta = {
            **self._saved_params(),
            "n_items": self.n_items_,
            "text_shape": None if text_shape is None else list(text_shape),
            "history": self.history_,
            "best_valid": self.best_valid_,
            "stopped": self.stopped_,
        }
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
        model = cls._unfitted(meta)
        n_items = meta["n_items"]
        # placeholders of the saved shapes: the real text vectors and weights come from the safetensors file
        text = np.zeros(meta["text_shape"] or (n_items, model.config.hidden), dtype=np.float32)
        model.network_ = model._network(n_items, text, np.ones(n_items, dtype=bool))
        model.network_.load_state_dict(load_file(directory / WEIGHTS_FILE))
        model.network_.eval()
        model.n_items_, model.history_, model.best_valid_ = n_items, meta["history"], meta["best_valid"]
        model.stopped_ = meta.get("stopped", "unknown")  # folders written before the reason was recorded
        return model

    @classmethod
    def _unfitted(cls, meta: dict[str, Any]) -> Self:
        """The unfitted model a saved folder describes (its `sequential.json` carries the config)."""
        return cls(SequentialConfig.model_validate(meta["config"]))

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        """The learned (n_items, hidden) item table: the vectors 'similar items' compares."""
        return self.network_.table()[1:].numpy().copy()
