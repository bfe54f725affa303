"""The one recommender contract (parameters in `__init__`, data in `fit`, `recommend`, `similar_items`, `save`/`load`)
and the registry that lets a config pick a recommender by name."""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from longtail.core.config import RecommendConfig
from longtail.core.errors import ConfigError
from longtail.core.registry import Registry

MANIFEST_FILE = "recommender.json"
ARRAYS_FILE = "state.safetensors"


@dataclass
class TrainData:
    """What a recommender learns from: per-user item histories over a catalogue of `n_items` indices.

    `weights` (one per history) scale each history's share of the loss in models that support it (SASRec);
    None means every history counts the same. Balancing and augmentation may add histories that are not a
    real user's (re-sampled copies, crops, masks); a masked position holds `MASKED` (-1).
    """

    n_items: int
    histories: list[np.ndarray]
    valid_targets: list[np.ndarray] | None = None
    item_vectors: np.ndarray | None = None
    seed: int = 42
    weights: np.ndarray | None = None

    def counts(self) -> np.ndarray:
        """Interactions per item in the histories; masked positions (negative indices) are not interactions."""
        if not self.histories:
            return np.zeros(self.n_items, np.int64)
        items = np.concatenate(self.histories)
        return np.bincount(items[items >= 0], minlength=self.n_items)


Validator = Callable[["Recommender"], float]


def interaction_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary users x items matrix; repeated interactions count once."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    columns = np.concatenate(histories) if len(histories) else np.zeros(0, np.int64)
    matrix = sp.csr_matrix((np.ones(len(columns), np.float32), (rows, columns)), shape=(len(histories), n_items))
    matrix.data[:] = 1.0
    return matrix


class Recommender(ABC):
    """sklearn-like: parameters in __init__, learned state with a trailing underscore, `fit` returns self.

    A user is represented by their item history, so a fitted model scores users it never saw in training.
    `save` writes the parameters and every learned array (numpy or scipy sparse); a model whose state is more
    than arrays overrides `_save_state`/`_load_state`.
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_config(cls, config: RecommendConfig) -> Self:
        """Build the model with the parameters the config names."""

    @abstractmethod
    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        """Learn from histories; models with early stopping call `validate(self)` (higher is better)."""

    @abstractmethod
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """A (users, n_items) float32 matrix: higher means recommend sooner."""

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters by name: `type(model)(**model.get_params())` is an unfitted copy."""
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        parameters = inspect.signature(type(self).__init__).parameters.values()
        return {p.name: getattr(self, p.name) for p in parameters if p.name != "self" and p.kind in named}

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> np.ndarray:
        """Top-k item indices per user, best first, never an item already in the user's history."""
        return top_k(mask_history(self.score(histories), histories), k)

    def similar_items(self, item: int, k: int = 10) -> np.ndarray:
        """The k items this model would recommend after `item` alone, best first (the item itself excluded)."""
        return self.recommend([np.array([item], dtype=np.int64)], k)[0]

    def save(self, directory: str | Path) -> Path:
        """Write the model's name, parameters and learned state into `directory`; `Recommender.load` reads it back."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        manifest = {"name": self.name, "params": self._saved_params()}
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        self._save_state(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Recommender:
        """The fitted model `save` wrote, of whichever registered class it names; it scores identically."""
        directory = Path(directory)
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        model_class = RECOMMENDERS.get(manifest["name"])
        if not issubclass(model_class, cls):
            raise ConfigError(f"{directory / MANIFEST_FILE} holds a '{manifest['name']}' model, not a {cls.__name__}")
        return model_class._load_state(directory, manifest["params"])

    def _saved_params(self) -> dict[str, Any]:
        """The parameters as JSON values (override when a parameter is not one)."""
        return self.get_params()

    def _save_state(self, directory: Path) -> None:
        """Write every learned array attribute (trailing underscore) into one safetensors file (no pickle, no code)."""
        from safetensors.numpy import save_file

        arrays: dict[str, np.ndarray] = {}
        for key, value in vars(self).items():
            if not key.endswith("_"):
                continue
            if sp.issparse(value):
                csr = sp.csr_matrix(value)
                arrays |= {f"{key}@data": csr.data, f"{key}@indices": csr.indices, f"{key}@indptr": csr.indptr, f"{key}@shape": np.asarray(csr.shape)}
            elif isinstance(value, np.ndarray):
                arrays[key] = np.ascontiguousarray(value)
        save_file(arrays, directory / ARRAYS_FILE)

    @classmethod
    def _load_state(cls, directory: Path, params: dict[str, Any]) -> Self:
        """A model built from `params` with the learned arrays `_save_state` wrote."""
        model = cls(**params)
        model._load_arrays(directory)
        return model

    def _load_arrays(self, directory: Path) -> None:
        """Set the learned array attributes `_save_state` wrote."""
        from safetensors.numpy import load_file

        stored = load_file(directory / ARRAYS_FILE)
        for key, value in stored.items():
            if "@" not in key:
                setattr(self, key, value)
            elif key.endswith("@data"):
                name = key.removesuffix("@data")
                parts = (value, stored[f"{name}@indices"], stored[f"{name}@indptr"])
                setattr(self, name, sp.csr_matrix(parts, shape=tuple(stored[f"{name}@shape"])))


def mask_history(scores: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
    """Set each user's history items to -inf in place (they are never recommended again)."""
    for row, history in enumerate(histories):
        scores[row, history] = -np.inf
    return scores


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k highest scores, best first (k is capped at the number of columns)."""
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    top = np.argpartition(-scores, kth=k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


RECOMMENDERS: Registry[type[Recommender]] = Registry("recommender")
register = RECOMMENDERS.register


def make_recommender(name: str, config: RecommendConfig) -> Recommender:
    """A fresh, unfitted recommender by registered name."""
    return RECOMMENDERS.get(name).from_config(config)
