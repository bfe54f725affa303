"""Tuning the hybrid's RRF k and lexical weight on a tiny judged set: the choice is the grid's best and is saved."""

from __future__ import annotations

import pytest

from longtail.core.config import load_config
from longtail.evaluate.search_eval import tune_hybrid_fusion
from longtail.search.engine import SearchEngine
from longtail.search.fusion import LEXICAL_WEIGHT_GRID, RRF_K_GRID
from longtail.search.ranker_training import judged_pairs, query_vectors


def test_fusion_is_tuned_on_judgments_and_saved_with_the_index(catalogue, fast_config, hand_judgments, tmp_path):
    engine = SearchEngine.build(catalogue, fast_config, directory=tmp_path / "index")
    vectors = query_vectors(engine, hand_judgments["query"].to_list())
    choice = tune_hybrid_fusion(engine, judged_pairs(engine, hand_judgments, vectors), vectors, hand_judgments)
    assert set(choice.grid) == {(k, w) for k in RRF_K_GRID for w in LEXICAL_WEIGHT_GRID}
    # The objective is the smaller margin over the better single list in the two views: a difference of NDCG@10 values.
    assert choice.objective == max(choice.grid.values()) and -1.0 <= choice.objective <= 1.0
    assert choice.grid[(choice.rrf_k, choice.lexical_weight)] == pytest.approx(choice.objective)
    saved = load_config(tmp_path / "index" / "config.yaml").search
    assert (saved.rrf_k, saved.lexical_weight, saved.dense_weight) == (choice.rrf_k, choice.lexical_weight, 1.0)
    reopened = SearchEngine.open(tmp_path / "index", encoder=engine.encoder)
    assert reopened.config.search.lexical_weight == choice.lexical_weight
