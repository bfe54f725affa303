"""The long-tail knob and similar items, on hand-made scores and vectors."""

from __future__ import annotations

import numpy as np
import pytest

from longtail.core.errors import LongtailError
from longtail.models.similar import similar_items
from longtail.recommend.longtail import LongTailReranker, popularity_penalised

COUNTS = np.array([100, 50, 10, 1, 0, 30])


def _order(scores: np.ndarray) -> list[int]:
    return [int(i) for i in np.argsort(-scores[0], kind="stable") if np.isfinite(scores[0, i])]


def test_weight_zero_keeps_the_base_order_and_drops_history() -> None:
    base = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]], dtype=np.float32)
    assert _order(popularity_penalised(base, [np.array([1])], COUNTS, weight=0.0, depth=4)) == [0, 2, 3, 4, 5]


def test_weight_one_sorts_the_top_list_from_least_to_most_popular() -> None:
    base = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]], dtype=np.float32)
    reranked = popularity_penalised(base, [np.array([], dtype=np.int64)], COUNTS, weight=1.0, depth=4)
    # top-4 by score are items 0..3; re-ordered by popularity ascending; items 4 and 5 stay below in base order
    assert _order(reranked) == [3, 2, 1, 0, 4, 5]


def test_a_middle_weight_lifts_a_close_tail_item_but_not_a_distant_one() -> None:
    base = np.array([[1.0, 0.98, 0.0, 0.2, 0.1, 0.5]], dtype=np.float32)
    order = _order(LongTailReranker(lambda h: base.copy(), COUNTS, weight=0.3, depth=6).score([np.array([], dtype=np.int64)]))
    assert order.index(1) < order.index(0)  # nearly as relevant and half as popular: moves up
    assert order.index(2) > order.index(0)  # least relevant: stays below the head item


def test_similar_items_are_nearest_by_cosine_and_exclude_the_item() -> None:
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [0.7, 0.7]], dtype=np.float32)
    items, similarity = similar_items(vectors, 0, k=3)
    assert items.tolist() == [1, 4, 2]
    assert similarity[0] == pytest.approx(0.9 / np.hypot(0.9, 0.1)) and similarity[2] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(LongtailError, match="outside the catalogue"):
        similar_items(vectors, 9)


@pytest.mark.slow
def test_tradeoff_curve_moves_exposure_towards_the_tail(beauty_slice) -> None:
    from longtail.core.config import RecommendConfig
    from longtail.evaluate.tradeoff import tradeoff_curve
    from longtail.models.base import TrainData, make_recommender

    _, split = beauty_slice
    config = RecommendConfig(longtail_candidates=50, bootstrap_samples=10)
    model = make_recommender("ease", config).fit(TrainData(split.n_items, split.train))
    curve = tradeoff_curve(model.score, split, config, weights=[0.0, 0.3, 1.0])
    assert [p["weight"] for p in curve] == [0.0, 0.3, 1.0]
    assert curve[0]["tail_exposure@10"] < curve[1]["tail_exposure@10"] < curve[2]["tail_exposure@10"]
    assert curve[2]["NDCG@10"] < curve[0]["NDCG@10"]
