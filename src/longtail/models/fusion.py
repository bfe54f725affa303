"""Candidate fusion: the union of several recommenders' top items, re-ranked by a LightGBM LambdaRank model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import polars as pl
import scipy.sparse as sp

from longtail.core.config import RecommendConfig
from longtail.core.errors import LongtailError
from longtail.models.base import Recommender, TrainData, Validator, make_recommender, mask_history, register, top_k
from longtail.models.compiled_trees import TreePredictor, compile_trees

if TYPE_CHECKING:
    import lightgbm

DEFAULT_SOURCES = ("sasrec", "ease", "itemknn", "content", "popularity")
BATCH = 512
BOOSTER_FILE = "ranker.txt"
STATE_FILE = "ranker.json"
ITEMS_FILE = "items.parquet"
SOURCES_DIR = "sources"


def item_side_tokens(items: pl.DataFrame, item_ids: list[str]) -> sp.csr_matrix:
    """Items x side-information tokens (category, brand, S3-Rec attribute ids), each row summing to 1."""
    by_id = {row["item_id"]: row for row in items.iter_rows(named=True)}
    vocabulary: dict[str, int] = {}
    rows, columns = [], []
    for position, item_id in enumerate(item_ids):
        row = by_id.get(item_id) or {}
        tokens = [f"category={row['category']}"] if row.get("category") else []
        tokens += [f"brand={row['brand']}"] if row.get("brand") else []
        attributes = json.loads(row["attributes"]) if row.get("attributes") else {}
        tokens += [f"attribute={a}" for a in attributes.get("attribute_ids", [])]
        for token in tokens:
            rows.append(position)
            columns.append(vocabulary.setdefault(token, len(vocabulary)))
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, columns)), shape=(len(item_ids), max(len(vocabulary), 1)))
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return sp.diags(1 / np.maximum(sums, 1)).astype(np.float32) @ matrix


def _finite_mean_and_spread(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores with non-finite ones as NaN, and each row's mean and standard deviation over its finite scores.

    The same operations, in the same order, as `np.nanmean` and `np.nanstd` (equal to the bit, tested), sharing the
    mask, the count and the sum the two would each compute again."""
    valid = np.isfinite(scores)
    count = valid.sum(axis=1, keepdims=True, dtype=np.intp)
    zeroed = np.where(valid, scores, 0)
    mean = zeroed.sum(axis=1, keepdims=True)
    np.true_divide(mean, count, out=mean, casting="unsafe")
    np.subtract(zeroed, mean, out=zeroed)
    zeroed[~valid] = 0
    np.multiply(zeroed, zeroed, out=zeroed)
    variance = zeroed.sum(axis=1, keepdims=True)
    np.true_divide(variance, count, out=variance, casting="unsafe")
    return np.where(valid, scores, np.nan), mean, np.sqrt(variance)


def _ranks(chosen: np.ndarray, top: np.ndarray, depth: int) -> np.ndarray:
    """Each of the sorted `chosen` items' 1-based rank in one source's `top` list; `depth + 1` when not in it."""
    ranks = np.full(len(chosen), depth + 1, dtype=np.float32)
    ranks[np.searchsorted(chosen, top)] = np.arange(1, len(top) + 1, dtype=np.float32)
    return ranks


@register
class FusionRanker(Recommender):
    """Candidates = each source's top `fusion_candidates` items; features = every source's standardised score and
    rank, item popularity, category/brand/attribute affinity with the user's history, and recency (similarity to
    the user's latest item). Trained on each user's validation item, so the test item is never seen.

    Items outside the candidate set score -inf: the fused list is the candidate set, re-ordered. Without `items`
    (the catalogue table, in `item_ids` order) the side-information affinity feature is zero.
    """

    name = "fusion"
    # Threads LightGBM may use to score one call's candidates; 0 is its default, one per core. A server answering
    # several requests at once sets 1: an OpenMP thread per core made a one-user call wait for a descheduled thread.
    predict_threads = 0
    # The booster compiled to native code (`compile_booster`), used in place of LightGBM's `predict` when set.
    compiled_: TreePredictor | None = None

    def __init__(
        self,
        sources: dict[str, Recommender],
        config: RecommendConfig,
        items: pl.DataFrame | None = None,
        item_ids: list[str] | None = None,
        seed: int = 42,
        sources_fitted: bool = False,
    ) -> None:
        self.sources = sources
        self.config = config
        self.items = items
        self.item_ids = item_ids
        self.seed = seed
        self.sources_fitted = sources_fitted

    @classmethod
    def from_config(cls, config: RecommendConfig) -> Self:
        """Unfitted default sources (sequential, EASE, item kNN, content, popularity), fitted by `fit`; no catalogue table."""
        return cls.with_default_sources(config)

    @classmethod
    def with_default_sources(cls, config: RecommendConfig, items: pl.DataFrame | None = None, item_ids: list[str] | None = None, seed: int = 42) -> Self:
        """Unfitted default sources (sequential, EASE, item kNN, content, popularity), fitted by `fit`."""
        return cls({name: make_recommender(name, config) for name in DEFAULT_SOURCES}, config, items, item_ids, seed)

    def feature_names(self) -> list[str]:
        """Column names of the feature matrix, in order."""
        per_source = [f"{name}_{kind}" for name in self.sources for kind in ("score", "rank")]
        return [*per_source, "log_popularity", "side_affinity", "last_item_text_similarity", "history_length"]

    def _candidates_and_features(self, histories: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        """Per user the candidate item indices, and one feature row per (user, candidate), users in order."""
        depth = self.config.fusion_candidates
        candidates: list[np.ndarray] = []
        blocks = []
        for start in range(0, len(histories), BATCH):
            chunk = histories[start : start + BATCH]
            finites, means, spreads, tops = [], [], [], []
            for source in self.sources.values():
                scores = mask_history(source.score(chunk).astype(np.float32), chunk)
                # scores differ in scale between models: standardise per user over the catalogue (only the candidates'
                # standardised scores are read, so only those are computed)
                finite, mean, spread = _finite_mean_and_spread(scores)
                finites.append(finite)
                means.append(mean)
                spreads.append(spread + 1e-9)
                tops.append(top_k(scores, depth))
            # every item's affinity with every user of the chunk in one sparse product (the catalogue's side tokens are
            # few): cheaper than slicing the candidates' rows out of the sparse matrix user by user
            affinities = np.asarray(self.side_ @ np.asarray(self._side_profile(chunk).todense()).T)
            for row, history in enumerate(chunk):
                chosen = np.unique(np.concatenate([top[row] for top in tops]))
                candidates.append(chosen)
                columns = []
                for finite, mean, spread, top in zip(finites, means, spreads, tops, strict=True):
                    standardised = np.nan_to_num((finite[row, chosen] - mean[row]) / spread[row], nan=-10.0)
                    columns += [standardised, _ranks(chosen, top[row], depth)]
                last = self.text_[history[-1]] @ self.text_[chosen].T if len(history) else np.zeros(len(chosen))
                affinity = affinities[chosen, row]
                columns += [self.log_popularity_[chosen], affinity, last, np.full(len(chosen), len(history))]
                blocks.append(np.column_stack(columns).astype(np.float32))
        return candidates, np.vstack(blocks) if blocks else np.zeros((0, len(self.feature_names())), np.float32)

    def _side_profile(self, histories: Sequence[np.ndarray]) -> sp.csr_matrix:
        """Users x tokens: the share of each side-information token over the user's history."""
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        picks = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, np.concatenate(histories))), shape=(len(histories), self.side_.shape[0]))
        profile = picks @ self.side_
        return sp.diags(1 / np.maximum(np.asarray(profile.sum(axis=1)).ravel(), 1e-9)).astype(np.float32) @ profile

    def _prepare(self, data: TrainData) -> None:
        """The per-item state the features read: side tokens, popularity in `data`, text vectors."""
        if self.items is None:
            self.side_ = sp.csr_matrix((data.n_items, 0), dtype=np.float32)
        else:
            self.side_ = item_side_tokens(self.items, self.item_ids or [str(index) for index in range(data.n_items)])
        self.log_popularity_ = np.log1p(data.counts()).astype(np.float32)
        if data.item_vectors is None:
            raise LongtailError("the fusion ranker needs item text vectors for its recency feature (TrainData.item_vectors)")
        self.text_ = np.asarray(data.item_vectors, dtype=np.float32)

    def _lists(self, data: TrainData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features, labels, group sizes) of up to `fusion_train_users` sampled users' candidate lists, labelled by
        their validation items; lists without a validation item among the candidates are dropped."""
        if data.valid_targets is None:
            raise LongtailError("the fusion ranker learns from validation targets: pass TrainData.valid_targets")
        users = np.array([u for u, t in enumerate(data.valid_targets) if len(t) and len(data.histories[u])])
        generator = np.random.default_rng(self.seed)
        users = generator.choice(users, size=min(len(users), self.config.fusion_train_users), replace=False)
        candidates, features = self._candidates_and_features([data.histories[u] for u in users])
        labels = np.concatenate([np.isin(c, data.valid_targets[u]).astype(np.int32) for c, u in zip(candidates, users, strict=True)])
        groups = np.array([len(c) for c in candidates])
        # a group without the validation item among its candidates gives LambdaRank no gradient: drop it
        found = np.add.reduceat(labels, np.cumsum(groups) - groups) > 0
        useful = np.repeat(found, groups)
        self.candidate_recall_ = float(found.sum() / max(len(groups), 1))
        return features[useful], labels[useful], groups[found]

    def _boost(self, data: TrainData, trees: int, start: lightgbm.Booster | None) -> None:
        """Fit `trees` LambdaRank trees on `data`'s lists, continuing from the booster `start` when given."""
        import lightgbm

        features, labels, groups = self._lists(data)
        ranker = lightgbm.LGBMRanker(
            objective="lambdarank",
            n_estimators=trees,
            learning_rate=0.05,
            num_leaves=31,
            min_child_samples=50,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=self.seed,
            n_jobs=2,
            verbose=-1,
            lambdarank_truncation_level=20,
        )
        ranker.fit(features, labels, group=groups, feature_name=self.feature_names(), init_model=start)
        self.booster_ = ranker.booster_
        self.training_groups_ = int(len(groups))

    def fit(self, data: TrainData, validate: Validator | None = None) -> Self:
        if not self.sources_fitted:
            for source in self.sources.values():
                source.fit(data, validate)
        self._prepare(data)
        self._boost(data, self.config.fusion_trees, None)
        return self

    def warm_start(self, lists: TrainData, trees: int) -> Self:
        """Add `trees` trees to the fitted booster, learnt on `lists` (histories and their next items as
        `valid_targets`); the sources and per-item state stay as they are."""
        self._boost(lists, trees, self.booster_)
        return self

    def save_booster(self, directory: str | Path) -> None:
        """Write the booster (LightGBM's text model) and the state `restore` needs to rebuild the ranker around it,
        without the sources: a served model folder refits its closed-form sources on its own history."""
        directory = Path(directory)
        self.booster_.save_model(directory / BOOSTER_FILE)
        state = {
            "sources": list(self.sources),
            "seed": self.seed,
            "trees": self.booster_.num_trees(),
            "training_groups": self.training_groups_,
            "candidate_recall": self.candidate_recall_,
        }
        (directory / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")

    @classmethod
    def restore(
        cls, directory: str | Path, data: TrainData, config: RecommendConfig, items: pl.DataFrame, item_ids: list[str], fitted: dict[str, Recommender]
    ) -> Self:
        """The ranker `save_booster` wrote, over the catalogue `item_ids`. Sources in `fitted` are used as given (the
        sequential model is saved on its own); every other source is closed-form and is refit on `data`, which
        also gives the popularity feature, and `data.item_vectors` the text features."""
        import lightgbm

        directory = Path(directory)
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        sources = {name: fitted[name] if name in fitted else make_recommender(name, config).fit(data) for name in state["sources"]}
        ranker = cls(sources, config, items, item_ids, state["seed"], sources_fitted=True)
        ranker._prepare(data)
        ranker.booster_ = lightgbm.Booster(model_file=str(directory / BOOSTER_FILE))
        ranker.training_groups_, ranker.candidate_recall_ = state["training_groups"], state["candidate_recall"]
        return ranker

    def _saved_params(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "config": self.config.model_dump(), "item_ids": self.item_ids, "seed": self.seed}

    def _save_state(self, directory: Path) -> None:
        """The booster, the per-item feature arrays, the catalogue table and every source in `sources/<name>/`."""
        super()._save_state(directory)
        self.save_booster(directory)
        if self.items is not None:
            self.items.write_parquet(directory / ITEMS_FILE)
        for name, source in self.sources.items():
            source.save(directory / SOURCES_DIR / name)

    @classmethod
    def _load_state(cls, directory: Path, params: dict[str, Any]) -> Self:
        import lightgbm

        sources = {name: Recommender.load(directory / SOURCES_DIR / name) for name in params["sources"]}
        items = pl.read_parquet(directory / ITEMS_FILE) if (directory / ITEMS_FILE).is_file() else None
        config = RecommendConfig.model_validate(params["config"])
        ranker = cls(sources, config, items, params["item_ids"], params["seed"], sources_fitted=True)
        ranker._load_arrays(directory)
        ranker.booster_ = lightgbm.Booster(model_file=str(directory / BOOSTER_FILE))
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        ranker.training_groups_, ranker.candidate_recall_ = state["training_groups"], state["candidate_recall"]
        return ranker

    def compile_booster(self, cache_dir: str | Path) -> bool:
        """Score with the booster compiled to native code (cached in `cache_dir`); False, scoring with LightGBM, when
        the compiler is missing or fails."""
        self.compiled_ = compile_trees(self.booster_.model_to_string(), cache_dir)
        return self.compiled_ is not None

    def _predict(self, features: np.ndarray) -> np.ndarray:
        """The booster's scores for candidate rows: compiled when available (7x faster on 175 rows), else LightGBM."""
        if not len(features):
            return np.zeros(0)
        if self.compiled_ is not None:
            return self.compiled_(features)
        return np.asarray(self.booster_.predict(features, num_threads=self.predict_threads))

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        candidates, features = self._candidates_and_features(histories)
        predicted = self._predict(features)
        output = np.full((len(histories), self.side_.shape[0]), -np.inf, dtype=np.float32)
        offsets = np.cumsum([0] + [len(c) for c in candidates])
        for row, chosen in enumerate(candidates):
            output[row, chosen] = predicted[offsets[row] : offsets[row + 1]]
        return output

    def importance(self) -> dict[str, float]:
        """Share of total split gain per feature: which signals the ranker relies on."""
        gains = self.booster_.feature_importance(importance_type="gain")
        return {name: round(float(g / max(gains.sum(), 1e-12)), 4) for name, g in zip(self.feature_names(), gains, strict=True)}
