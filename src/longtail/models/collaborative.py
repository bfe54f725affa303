"""Collaborative baselines over the user-item matrix: item-item co-occurrence kNN, ALS (implicit) and EASE."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

from longtail.core.config import RecommendConfig
from longtail.models.base import Recommender, TrainData, Validator, interaction_matrix, register


@register
class ItemKNN(Recommender):
    """Cosine similarity of items' co-occurrence in user histories; a user's score sums their items' neighbours."""

    name = "itemknn"

    def __init__(self, neighbours: int = 100) -> None:
        self.neighbours = neighbours

    @classmethod
    def from_config(cls, config: RecommendConfig) -> Self:
        return cls(config.knn_neighbours)

    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        matrix = interaction_matrix(data.histories, data.n_items)
        cooccurrence = (matrix.T @ matrix).tocsr().astype(np.float32)
        norms = np.sqrt(cooccurrence.diagonal())
        norms[norms == 0] = 1.0
        cooccurrence.setdiag(0)
        cooccurrence.eliminate_zeros()
        similarity = sp.diags(1 / norms) @ cooccurrence @ sp.diags(1 / norms)
        self.similarity_ = self._keep_top(similarity.tocsr())
        return self

    def _keep_top(self, similarity: sp.csr_matrix) -> sp.csr_matrix:
        """Keep each item's strongest neighbours only: the rest is mostly noise from single co-occurrences."""
        rows, columns, values = [], [], []
        for item in range(similarity.shape[0]):
            start, end = similarity.indptr[item], similarity.indptr[item + 1]
            row_values = similarity.data[start:end]
            keep = np.argsort(-row_values, kind="stable")[: self.neighbours]
            rows.append(np.full(len(keep), item))
            columns.append(similarity.indices[start:end][keep])
            values.append(row_values[keep])
        return sp.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))), shape=similarity.shape)

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        users = interaction_matrix(histories, self.similarity_.shape[0])
        return np.asarray((users @ self.similarity_).todense(), dtype=np.float32)


@register
class ALS(Recommender):
    """Implicit-feedback matrix factorisation from the `implicit` library; users are re-solved from their history."""

    name = "als"

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 10.0, iterations: int = 15) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations

    @classmethod
    def from_config(cls, config: RecommendConfig) -> Self:
        return cls(config.als_factors, config.als_regularization, config.als_alpha, config.als_iterations)

    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        # implicit runs its own threads: a second BLAS thread pool under it only adds contention
        with threadpool_limits(1, "blas"):
            self.model_ = self._solver(data.seed)
            self.model_.fit(interaction_matrix(data.histories, data.n_items), show_progress=False)
        self.item_factors_ = self.model_.item_factors
        return self

    def _solver(self, seed: int) -> Any:
        """implicit's ALS with this model's parameters (it also re-solves users at scoring time)."""
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors, regularization=self.regularization, alpha=self.alpha, iterations=self.iterations, random_state=seed, num_threads=2
        )

    @classmethod
    def _load_state(cls, directory: Path, params: dict[str, Any]) -> Self:
        model = super()._load_state(directory, params)
        model.model_ = model._solver(0)
        model.model_.item_factors = model.item_factors_
        return model

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        users = interaction_matrix(histories, self.model_.item_factors.shape[0])
        factors = self.model_.recalculate_user(np.arange(len(histories)), users)
        return np.asarray(factors @ self.model_.item_factors.T, dtype=np.float32)


@register
class EASE(Recommender):
    """Embarrassingly shallow autoencoder (Steck 2019): a closed-form item-item weight matrix with a zero diagonal."""

    name = "ease"

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2

    @classmethod
    def from_config(cls, config: RecommendConfig) -> Self:
        return cls(config.ease_lambda)

    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        matrix = interaction_matrix(data.histories, data.n_items)
        gram = np.asarray((matrix.T @ matrix).todense(), dtype=np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = spd_inverse(gram)
        weights = precision / -np.diag(precision)
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights_ = weights.astype(np.float32)
        return self

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        users = interaction_matrix(histories, self.weights_.shape[0])
        return np.asarray(users @ self.weights_, dtype=np.float32)


def spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive-definite matrix, via a Cholesky factor.

    torch's LAPACK does this: the OpenBLAS bundled with scipy crashed (segfault) inverting the
    18k x 18k Gram matrix of Amazon Sports, and a Cholesky inverse does half the work of a general one.
    """
    factor = torch.linalg.cholesky(torch.from_numpy(matrix))
    return torch.cholesky_inverse(factor).numpy()
