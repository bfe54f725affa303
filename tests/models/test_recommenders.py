"""The shared recommender contract, checked once for every registered model, plus each model's own behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from longtail.core.config import RecommendConfig, SequentialConfig
from longtail.core.errors import ConfigError
from longtail.models.base import RECOMMENDERS, Recommender, TrainData, interaction_matrix, make_recommender

# two clusters of items: {0, 1, 2} and {3, 4, 5}; item 6 is never interacted with
HISTORIES = [np.array(h) for h in ([0, 1, 2], [0, 1], [1, 2], [0, 2, 1], [3, 4, 5], [3, 4], [4, 5, 3], [5, 3], [0, 1, 2, 0])]
_RAW = np.array([[1, 0.1, 0], [1, 0, 0.1], [1, 0.05, 0.05], [0.1, 1, 0], [0, 1, 0.1], [0.05, 1, 0.05], [0, 0, 1]], dtype=np.float32)
VECTORS = _RAW / np.linalg.norm(_RAW, axis=1, keepdims=True)
TINY = TrainData(7, HISTORIES, [np.array([2]), np.array([2]), np.array([0])] + [np.array([], dtype=np.int64)] * 6, VECTORS)
CONFIG = RecommendConfig(ease_lambda=1.0, als_factors=4, als_iterations=5, sequential=SequentialConfig(hidden=8, epochs=3, max_len=5))


@pytest.mark.parametrize("name", RECOMMENDERS.names())
def test_every_registered_recommender_keeps_the_contract(name: str, tmp_path) -> None:
    model = make_recommender(name, CONFIG)
    params = model.get_params()
    assert type(model)(**params).get_params().keys() == params.keys()
    assert model.fit(TINY) is model
    users = [np.array([0]), np.array([4, 5]), np.array([], dtype=np.int64)]
    scores = model.score(users)
    # the fusion ranker scores items outside its candidate lists -inf; nothing scores NaN
    assert scores.shape == (3, 7) and scores.dtype == np.float32 and not np.isnan(scores).any()
    top = model.recommend([np.array([0, 1]), np.array([3])], k=3)
    assert top.shape == (2, 3) and not set(top[0]) & {0, 1} and 3 not in top[1]
    similar = model.similar_items(4, k=3)
    assert similar.shape == (3,) and 4 not in similar
    restored = Recommender.load(model.save(tmp_path / name))
    assert type(restored) is type(model) and restored.get_params().keys() == params.keys()
    np.testing.assert_array_equal(restored.score(users), scores)


@pytest.mark.parametrize("name", ["itemknn", "ease", "content"])
def test_item_based_models_recommend_from_the_users_cluster(name: str) -> None:
    model = make_recommender(name, CONFIG).fit(TINY)
    assert set(model.recommend([np.array([0, 1]), np.array([3, 4])], k=1).ravel()) == {2, 5}


def test_popularity_ranks_by_training_count() -> None:
    model = make_recommender("popularity", CONFIG).fit(TINY)
    # counts: items 0 and 1 five times, 2 and 3 four times, 4 and 5 three times, 6 never
    assert set(model.recommend([np.array([], dtype=np.int64)], k=2)[0]) == {0, 1}
    assert model.recommend([np.array([0, 1, 2, 3])], k=2).tolist() == [[4, 5]] or model.recommend([np.array([0, 1, 2, 3])], k=2).tolist() == [[5, 4]]


def test_interaction_matrix_counts_repeats_once() -> None:
    matrix = interaction_matrix([np.array([0, 0, 2])], 3)
    assert matrix.toarray().tolist() == [[1.0, 0.0, 1.0]]


def test_unknown_model_name_lists_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match="known: als, content, ease, fusion"):
        make_recommender("bert4rec", CONFIG)
    assert {"popularity", "itemknn", "als", "ease", "content", "sasrec", "fusion"} <= set(RECOMMENDERS.names())
