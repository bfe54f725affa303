"""A LightGBM LambdaRank re-ranker (and a relevance regressor on the same features), trained on graded judgments and
saved as LightGBM text models plus a JSON feature list (no pickle)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from longtail.core.artifacts import atomic_folder, load_json, save_json
from longtail.core.errors import LongtailError

RANKER_DIR = "ranker"
RANKER_MODEL = "lambdarank.txt"
REGRESSOR_MODEL = "relevance.txt"
RANKER_META = "ranker.json"


@dataclass
class RankerSettings:
    """LightGBM settings and how many fused candidates the ranker re-orders at query time.

    Small trees and slow learning: rater noise bounds what ordering a few judged items can learn, so the best
    iteration comes early. `RANKER_GRID` holds the variants `tune_ranker` compares on validation queries."""

    depth: int = 100
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    rounds: int = 2000
    early_stopping: int = 100
    seed: int = 42
    # Graded judgments that come with raters' mean relevance give LambdaRank finer labels (thirds of a grade): pairs of
    # one grade still differ in relevance, and queries whose judged items all share a grade still teach an order.
    label_resolution: int = 3
    # "regression": order by the relevance regressor itself (with raters' means it often orders a few judged items better
    # than LambdaRank, which early-stops after a handful of trees on noisy grades); tuning picks one on validation.
    objective: Literal["lambdarank", "regression"] = "lambdarank"


# What `tune_ranker` tries on validation: LambdaRank on relevance-scale and on grade labels, and the relevance regressor
# as the ranker with two tree sizes.
RANKER_GRID = (
    RankerSettings(),
    RankerSettings(label_resolution=0),
    RankerSettings(objective="regression"),
    RankerSettings(objective="regression", num_leaves=31, min_data_in_leaf=20),
)


@dataclass
class RankerMeta:
    """What a saved ranker needs to be used again: its feature names, settings and what training measured."""

    features: list[str]
    settings: RankerSettings
    best_iteration: int
    validation_ndcg10: float
    regressor_best_iteration: int = 0
    validation_rmse: float = float("nan")
    train_queries: int = 0
    validation_queries: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def _shuffle_within_queries(query_ids: np.ndarray, seed: int) -> np.ndarray:
    """A row order that keeps each query's rows together but shuffles them, so ties in early trees are not broken by
    the judgment file's order (which may follow relevance) when LightGBM computes validation NDCG."""
    starts = np.concatenate([[True], query_ids[1:] != query_ids[:-1]])
    run = np.cumsum(starts)
    return np.lexsort((np.random.default_rng(seed).random(len(query_ids)), run))


def _groups(query_ids: np.ndarray) -> np.ndarray:
    """Sizes of consecutive runs of equal query ids (LightGBM's `group`); rows of one query must be contiguous."""
    changes = np.flatnonzero(query_ids[1:] != query_ids[:-1]) + 1
    bounds = np.concatenate([[0], changes, [len(query_ids)]])
    sizes = np.diff(bounds)
    if len(np.unique(query_ids)) != len(sizes):
        raise LongtailError("ranker training rows must be grouped by query (each query's rows contiguous)")
    return sizes


def ranking_labels(grades: np.ndarray, relevance: np.ndarray | None, resolution: int, offset: float) -> tuple[np.ndarray, list[float]]:
    """Integer LambdaRank labels and their gains (2^grade - 1): the grades themselves, or with relevance targets and a
    resolution > 0, relevance moved onto the grade scale (minus `offset`) in steps of 1/resolution of a grade."""
    if relevance is None or resolution <= 0:
        labels = np.rint(grades).astype(int)
        return labels, [2.0**g - 1.0 for g in range(int(labels.max(initial=0)) + 2)]
    labels = np.rint(np.clip(relevance - offset, 0.0, None) * resolution).astype(int)
    return labels, [2.0 ** (level / resolution) - 1.0 for level in range(int(labels.max(initial=0)) + 2)]


class LearnedRanker:
    """Scores candidate rows from their feature matrix; higher is better. `predict_relevance` gives the regressor's grade."""

    def __init__(self, ranker, meta: RankerMeta, regressor=None) -> None:
        self.ranker = ranker
        self.regressor = regressor
        self.meta = meta

    @property
    def features(self) -> list[str]:
        """The feature names the models expect, in column order."""
        return self.meta.features

    @classmethod
    def fit(
        cls,
        features: list[str],
        train: tuple[np.ndarray, np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray, np.ndarray],
        settings: RankerSettings | None = None,
        train_relevance: np.ndarray | None = None,
        validation_relevance: np.ndarray | None = None,
    ) -> LearnedRanker:
        """Train LambdaRank on (X, grade, query_id) grouped by query, early-stopped on validation NDCG@10; with relevance
        targets also a regressor early-stopped on validation RMSE."""
        import lightgbm as lgb

        settings = settings or RankerSettings()
        (x_train, y_train, q_train), (x_valid, y_valid, q_valid) = train, validation
        train_order, valid_order = _shuffle_within_queries(q_train, settings.seed), _shuffle_within_queries(q_valid, settings.seed + 1)
        x_train, y_train, q_train = x_train[train_order], y_train[train_order], q_train[train_order]
        x_valid, y_valid, q_valid = x_valid[valid_order], y_valid[valid_order], q_valid[valid_order]
        if train_relevance is not None and validation_relevance is not None:
            train_relevance, validation_relevance = train_relevance[train_order], validation_relevance[valid_order]
        common = {
            "learning_rate": settings.learning_rate,
            "num_leaves": settings.num_leaves,
            "min_data_in_leaf": settings.min_data_in_leaf,
            "feature_fraction": settings.feature_fraction,
            "seed": settings.seed,
            "deterministic": True,
            "num_threads": 1,
            "verbosity": -1,
        }
        train_queries, validation_queries = len(np.unique(q_train)), len(np.unique(q_valid))

        def regression(target_train: np.ndarray, target_valid: np.ndarray):
            regression_train = lgb.Dataset(x_train, target_train, feature_name=features, free_raw_data=False)
            regression_valid = lgb.Dataset(x_valid, target_valid, reference=regression_train)
            return lgb.train(
                {**common, "objective": "regression", "metric": "rmse"},
                regression_train,
                settings.rounds,
                valid_sets=[regression_valid],
                callbacks=[lgb.early_stopping(settings.early_stopping, verbose=False)],
            )

        regressor = None
        if train_relevance is not None and validation_relevance is not None:
            regressor = regression(train_relevance, validation_relevance)
        if settings.objective == "regression":
            ranker = regressor if regressor is not None else regression(y_train, y_valid)
            # LambdaRank's validation NDCG does not exist here; `tune_ranker` records the condensed one.
            meta = RankerMeta(
                list(features), settings, int(ranker.best_iteration), float("nan"), train_queries=train_queries, validation_queries=validation_queries
            )
        else:
            # The relevance scale's shift from grades (e.g. 1-3 means for 0-2 grades), learned from the training pairs.
            with_relevance = regressor is not None and train_relevance is not None
            offset = float(np.median(train_relevance - y_train)) if with_relevance and train_relevance is not None else 0.0
            labels_train, gains = ranking_labels(y_train, train_relevance if with_relevance else None, settings.label_resolution, offset)
            labels_valid, valid_gains = ranking_labels(y_valid, validation_relevance if with_relevance else None, settings.label_resolution, offset)
            train_set = lgb.Dataset(x_train, labels_train, group=_groups(q_train), feature_name=features, free_raw_data=False)
            valid_set = lgb.Dataset(x_valid, labels_valid, group=_groups(q_valid), reference=train_set)
            ranker = lgb.train(
                {**common, "objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "label_gain": max(gains, valid_gains, key=len)},
                train_set,
                settings.rounds,
                valid_sets=[valid_set],
                callbacks=[lgb.early_stopping(settings.early_stopping, verbose=False)],
            )
            ndcg10 = float(ranker.best_score["valid_0"]["ndcg@10"])
            meta = RankerMeta(list(features), settings, int(ranker.best_iteration), ndcg10, train_queries=train_queries, validation_queries=validation_queries)
        if regressor is not None:
            meta.regressor_best_iteration = int(regressor.best_iteration)
            meta.validation_rmse = float(regressor.best_score["valid_0"]["rmse"])
        return cls(ranker, meta, regressor)

    def _check(self, matrix: np.ndarray) -> None:
        if matrix.ndim != 2 or matrix.shape[1] != len(self.features):
            raise LongtailError(f"the ranker expects {len(self.features)} features ({', '.join(self.features)}), got shape {matrix.shape}")

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """Ranking scores of candidate rows (one row of features each)."""
        self._check(matrix)
        if len(matrix) == 0:
            return np.zeros(0)
        # A freshly trained booster predicts with its best iteration; a loaded one holds only those trees.
        return np.asarray(self.ranker.predict(matrix, num_threads=1))

    def predict_relevance(self, matrix: np.ndarray) -> np.ndarray:
        """The regressor's predicted relevance of each pair (on the scale it was trained on)."""
        if self.regressor is None:
            raise LongtailError("this ranker was trained without relevance targets, so it cannot predict relevance")
        self._check(matrix)
        return np.asarray(self.regressor.predict(matrix, num_threads=1))

    def importance(self) -> dict[str, float]:
        """Total gain per feature in the ranking model, largest first."""
        gains = self.ranker.feature_importance("gain", iteration=self.ranker.best_iteration or None)
        return dict(sorted(zip(self.features, (float(g) for g in gains), strict=True), key=lambda pair: -pair[1]))

    def save(self, directory: str | Path) -> Path:
        """Write `ranker/` (LightGBM text models and ranker.json) inside an index folder; returns that folder."""
        folder = Path(directory) / RANKER_DIR
        # Written whole or not at all: a search index must never open a ranker whose models and meta disagree.
        with atomic_folder(folder) as staging:
            self.ranker.save_model(str(staging / RANKER_MODEL), num_iteration=self.meta.best_iteration or None)
            if self.regressor is not None:
                self.regressor.save_model(str(staging / REGRESSOR_MODEL), num_iteration=self.meta.regressor_best_iteration or None)
            save_json(staging / RANKER_META, asdict(self.meta), indent=2)
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> LearnedRanker | None:
        """The ranker saved in an index folder, or None when it has none."""
        import lightgbm as lgb

        folder = Path(directory) / RANKER_DIR
        if not (folder / RANKER_META).is_file():
            return None
        raw = load_json(folder / RANKER_META)
        meta = RankerMeta(**{**raw, "settings": RankerSettings(**raw["settings"])})
        ranker = lgb.Booster(model_file=str(folder / RANKER_MODEL))
        regressor = lgb.Booster(model_file=str(folder / REGRESSOR_MODEL)) if (folder / REGRESSOR_MODEL).is_file() else None
        return cls(ranker, meta, regressor)
