"""The fusion ranker on real Beauty users: candidates from several sources, LambdaRank over their features."""

from __future__ import annotations

import numpy as np
import pytest

from longtail.core.config import RecommendConfig
from longtail.evaluate.harness import evaluate_split
from longtail.models.base import TrainData, make_recommender, mask_history, top_k
from longtail.models.fusion import FusionRanker, _finite_mean_and_spread, item_side_tokens


def test_side_tokens_split_each_items_weight_over_its_attributes(beauty_slice) -> None:
    items, split = beauty_slice
    tokens = item_side_tokens(items, split.item_ids)
    sums = np.asarray(tokens.sum(axis=1)).ravel()
    assert tokens.shape[0] == split.n_items and np.allclose(sums[sums > 0], 1.0) and (sums > 0).mean() > 0.9


@pytest.mark.slow
def test_fusion_beats_its_weakest_source_and_ranks_only_candidates(beauty_slice) -> None:
    items, split = beauty_slice
    config = RecommendConfig(fusion_candidates=20, fusion_trees=30)
    vectors = np.random.default_rng(0).normal(size=(split.n_items, 8)).astype(np.float32)
    train = TrainData(split.n_items, split.train, split.valid, vectors)
    sources = {name: make_recommender(name, config).fit(train) for name in ("itemknn", "content", "popularity")}
    ranker = FusionRanker(sources, config, items, split.item_ids, sources_fitted=True).fit(train)
    fused = evaluate_split(ranker.score, split, "test", config).metrics
    popularity = evaluate_split(sources["popularity"].score, split, "test", config).metrics
    assert fused["NDCG@10"] > popularity["NDCG@10"] and fused["HR@10"] > 0.02
    scores = ranker.score(split.histories("test")[:5])
    assert all(np.isfinite(row).sum() <= 3 * 20 for row in scores)
    importance = ranker.importance()
    assert set(importance) == set(ranker.feature_names()) and abs(sum(importance.values()) - 1) < 1e-3
    assert ranker.training_groups_ > 0


def test_a_saved_ranker_reloads_with_refit_sources_and_scores_identically(beauty_slice, tmp_path) -> None:
    items, split = beauty_slice
    config = RecommendConfig(fusion_candidates=20, fusion_trees=20, fusion_train_users=300)
    vectors = np.random.default_rng(0).normal(size=(split.n_items, 8)).astype(np.float32)
    train = TrainData(split.n_items, split.train, split.valid, vectors)
    sources = {name: make_recommender(name, config) for name in ("itemknn", "content", "popularity")}
    ranker = FusionRanker(sources, config, items, split.item_ids).fit(train)
    ranker.save_booster(tmp_path)
    # nothing fitted is handed over: every source is closed-form and is refit on the same histories
    reloaded = FusionRanker.restore(tmp_path, train, config, items, split.item_ids, {})
    histories = split.histories("test")[:50]
    scores = ranker.score(histories)
    assert np.array_equal(scores, reloaded.score(histories)) and np.isfinite(scores).any(axis=1).all()
    assert reloaded.booster_.num_trees() == 20 and reloaded.training_groups_ == ranker.training_groups_
    assert list(reloaded.sources) == list(sources) and reloaded.importance() == ranker.importance()


def test_candidate_features_equal_the_full_catalogue_definition(beauty_slice) -> None:
    items, split = beauty_slice
    config = RecommendConfig(fusion_candidates=20)
    vectors = np.random.default_rng(0).normal(size=(split.n_items, 8)).astype(np.float32)
    train = TrainData(split.n_items, split.train, split.valid, vectors)
    sources = {name: make_recommender(name, config).fit(train) for name in ("itemknn", "content", "popularity")}
    ranker = FusionRanker(sources, config, items, split.item_ids, sources_fitted=True)
    ranker._prepare(train)
    histories = [h for h in split.histories("test")[:40] if len(h)]
    candidates, features = ranker._candidates_and_features(histories)
    # the definition, over the whole catalogue: each source's standardised score and its rank (21 outside its top 20)
    expected = []
    for source in sources.values():
        scores = mask_history(source.score(histories).astype(np.float32), histories)
        finite = np.where(np.isfinite(scores), scores, np.nan)
        standardised = np.nan_to_num((finite - np.nanmean(finite, axis=1, keepdims=True)) / (np.nanstd(finite, axis=1, keepdims=True) + 1e-9), nan=-10.0)
        rank = np.full(scores.shape, 21, dtype=np.float32)
        np.put_along_axis(rank, top_k(scores, 20), np.tile(np.arange(1, 21, dtype=np.float32), (len(histories), 1)), axis=1)
        expected.append((standardised, rank))
    offsets = np.cumsum([0] + [len(c) for c in candidates])
    for row, chosen in enumerate(candidates):
        block = features[offsets[row] : offsets[row + 1]]
        for column, (standardised, rank) in enumerate(expected):
            assert np.array_equal(block[:, 2 * column], standardised[row, chosen])
            assert np.array_equal(block[:, 2 * column + 1], rank[row, chosen])
        profile = np.asarray(ranker._side_profile([histories[row]]).todense())[0]
        assert np.array_equal(block[:, -3], np.asarray(ranker.side_[chosen] @ profile).ravel())  # side-information affinity
        assert set(np.flatnonzero(expected[0][1][row] <= 20)) <= set(chosen.tolist())


def test_shared_mean_and_spread_equal_numpys_nanmean_and_nanstd() -> None:
    rng = np.random.default_rng(3)
    for trial in range(50):
        scores = (rng.normal(size=(5, 997)) * rng.uniform(0.01, 100)).astype(np.float32)
        if trial % 2:
            scores = np.floor(np.abs(scores))  # counts with ties, as popularity scores
        scores[rng.random(scores.shape) < 0.02] = -np.inf  # masked history items
        nan_filled = np.where(np.isfinite(scores), scores, np.nan)
        finite, mean, spread = _finite_mean_and_spread(scores)
        assert np.array_equal(finite, nan_filled, equal_nan=True)
        assert np.array_equal(mean, np.nanmean(nan_filled, axis=1, keepdims=True)) and mean.dtype == np.float32
        assert np.array_equal(spread, np.nanstd(nan_filled, axis=1, keepdims=True)) and spread.dtype == np.float32
