"""Learned ranking on a tiny hand-made catalogue: generic pair features, LambdaRank training, saving with the index."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from longtail.evaluate.search_eval import condensed_ndcg10, tune_ranker
from longtail.search.engine import SearchEngine
from longtail.search.learned import LearnedRanker, RankerSettings, ranking_labels
from longtail.search.ranker_training import fit_ranker, judged_pairs, query_vectors, train_ranker


@pytest.fixture(scope="module")
def engine(catalogue, fast_config, tmp_path_factory) -> SearchEngine:
    return SearchEngine.build(catalogue, fast_config, directory=tmp_path_factory.mktemp("index"))


def _column(engine: SearchEngine, name: str, query: str, items: list[str]) -> np.ndarray:
    builder = engine.ranking_features()
    rows = np.asarray([engine.row_of(i) for i in items])
    vector = query_vectors(engine, [query])[query]
    return builder.compute(query, rows, vector)[:, builder.names().index(name)]


def test_feature_names_match_the_columns_and_cover_each_text_field(engine):
    builder = engine.ranking_features()
    names = builder.names(["cross_encoder"])
    assert {"bm25_title", "bm25_brand", "bm25_category", "bm25_corrected", "dense_cosine"} <= set(names) and names[-1] == "cross_encoder"
    vector = query_vectors(engine, ["glass beaker"])["glass beaker"]
    matrix = builder.compute("glass beaker", np.arange(3), vector, {"cross_encoder": np.asarray([0.5, 0.1, 0.2])})
    assert matrix.shape == (3, len(names)) and matrix[:, -1].tolist() == pytest.approx([0.5, 0.1, 0.2])


def test_bm25_and_word_overlap_prefer_the_item_that_shares_the_query_words(engine):
    bm25 = _column(engine, "bm25_title", "glass beaker", ["beaker", "drill", "flask"])
    overlap = _column(engine, "query_words_in_title", "glass beaker", ["beaker", "drill", "flask"])
    assert bm25[0] > bm25[2] > bm25[1] == 0.0
    assert overlap.tolist() == [1.0, 0.0, 0.5]


def test_rare_words_word_pairs_and_match_positions_separate_partial_matches(engine):
    items = ["beaker", "flask", "drill"]
    coverage = _column(engine, "idf_coverage", "glass beaker", items)
    assert coverage[0] == pytest.approx(1.0) and 0.0 < coverage[1] < 0.5 and coverage[2] == 0.0  # "glass" is in 3 titles, "beaker" in 1
    assert _column(engine, "bigrams_in_title", "glass beaker", items).tolist() == [1.0, 0.0, 0.0]
    # "borosilicate glass beaker 500 ml": the matches are words 1 and 2 of 0..4; no match is -1.
    assert _column(engine, "matched_position", "glass beaker", items).tolist() == pytest.approx([0.375, 0.6, -1.0])


def test_a_misspelt_word_matches_after_typo_correction(engine):
    corrected = _column(engine, "corrected_title_share", "borosilcate flask", ["flask", "drill"])
    plain = _column(engine, "query_words_in_title", "borosilcate flask", ["flask", "drill"])
    assert corrected.tolist() == [1.0, 0.0]
    assert plain[0] == 0.5


def test_sizes_match_across_units_and_a_different_size_conflicts(engine):
    match = _column(engine, "quantity_match", "0.5 l beaker", ["beaker", "flask", "drill"])
    conflict = _column(engine, "quantity_conflict", "0.5 l beaker", ["beaker", "flask", "drill"])
    assert match.tolist() == [1.0, 0.0, 0.0]
    assert conflict.tolist() == [0.0, 1.0, 0.0]


def _trained(engine: SearchEngine, hand_judgments: pl.DataFrame) -> tuple[LearnedRanker, object]:
    table = hand_judgments
    train, validation = table.filter(pl.col("query_id") != "q13"), table.filter(pl.col("query_id").is_in(["q12", "q13"]))
    vectors = query_vectors(engine, table["query"].to_list())
    settings = RankerSettings(min_data_in_leaf=1, num_leaves=4, rounds=50, early_stopping=20)
    pairs = judged_pairs(engine, validation, vectors)
    return train_ranker(engine, judged_pairs(engine, train, vectors), pairs, settings), pairs


def test_the_trained_ranker_puts_the_best_item_first_and_predicts_relevance(engine, hand_judgments):
    ranker, pairs = _trained(engine, hand_judgments)
    held_out = pairs.query_ids == "q13"  # "erlenmeyer flask": flask 2, beaker 1, caliper 0
    scores = ranker.score(pairs.features[held_out])
    items = [item for item, keep in zip(pairs.item_ids, held_out, strict=True) if keep]
    assert items[int(np.argmax(scores))] == "flask"
    predicted = ranker.predict_relevance(pairs.features)
    assert np.sqrt(np.mean((predicted - pairs.relevance) ** 2)) < np.std(pairs.relevance)


def test_the_ranker_is_saved_with_the_index_and_used_by_search_after_opening(engine, hand_judgments):
    ranker, pairs = _trained(engine, hand_judgments)
    assert engine.directory is not None and (engine.directory / "ranker" / "lambdarank.txt").is_file()
    reopened = SearchEngine.open(engine.directory, encoder=engine.encoder)
    assert reopened.ranker is not None and reopened.ranker.features == ranker.features
    np.testing.assert_allclose(reopened.ranker.score(pairs.features), ranker.score(pairs.features), rtol=1e-6)
    learned = reopened.search("erlenmeyer flask", k=4)
    fused = reopened.search("erlenmeyer flask", k=4, learned=False)
    assert learned.hits[0].item_id == "flask"
    assert {hit.item_id for hit in learned.hits} <= {row for row in reopened.items["item_id"]}
    assert [hit.score for hit in learned.hits] == sorted((hit.score for hit in learned.hits), reverse=True)
    assert len(fused.hits) == len(learned.hits)


def test_relevance_means_give_lambdarank_finer_labels_than_grades():
    grades = np.asarray([0.0, 1.0, 1.0, 2.0])
    relevance = np.asarray([1.0, 1.67, 2.33, 3.0])
    labels, gains = ranking_labels(grades, relevance, 3, offset=1.0)
    assert labels.tolist() == [0, 2, 4, 6]
    assert gains[3] == pytest.approx(1.0) and gains[6] == pytest.approx(3.0)  # whole grades keep the 2^grade - 1 gain
    plain, plain_gains = ranking_labels(grades, None, 3, offset=1.0)
    assert plain.tolist() == [0, 1, 1, 2] and plain_gains[:3] == [0.0, 1.0, 3.0]


def test_ranker_tuning_keeps_the_grid_point_with_the_best_validation_ndcg(engine, hand_judgments):
    vectors = query_vectors(engine, hand_judgments["query"].to_list())
    train = judged_pairs(engine, hand_judgments.filter(pl.col("query_id") != "q13"), vectors)
    validation = judged_pairs(engine, hand_judgments.filter(pl.col("query_id").is_in(["q12", "q13"])), vectors)
    small = {"min_data_in_leaf": 1, "num_leaves": 4, "rounds": 30, "early_stopping": 10}
    grid = [RankerSettings(**small, label_resolution=0), RankerSettings(**small), RankerSettings(**small, objective="regression")]
    best, scores = tune_ranker(engine, train, validation, grid)
    assert len(scores) == 3 and all(0.0 < s <= 1.0 for s in scores)
    assert best.meta.settings == grid[int(np.argmax(scores))]
    assert engine.ranker is best and best.meta.validation_ndcg10 == max(scores)
    validation_judgments = hand_judgments.filter(pl.col("query_id").is_in(["q12", "q13"]))
    both, mixed = tune_ranker(engine, train, validation, grid, validation_judgments, vectors)
    assert len(mixed) == 3 and all(0.0 < s <= 1.0 for s in mixed) and both.meta.settings == grid[int(np.argmax(mixed))]
    # Full-catalogue NDCG@10 of a re-ranked 8-item catalogue differs from the condensed one, so the objective moves.
    assert mixed != scores
    assert condensed_ndcg10(validation, best.score(validation.features)) == pytest.approx(max(scores))


def test_the_regression_objective_orders_by_predicted_relevance(engine, hand_judgments):
    vectors = query_vectors(engine, hand_judgments["query"].to_list())
    train = judged_pairs(engine, hand_judgments.filter(pl.col("query_id") != "q13"), vectors)
    validation = judged_pairs(engine, hand_judgments.filter(pl.col("query_id").is_in(["q12", "q13"])), vectors)
    settings = RankerSettings(min_data_in_leaf=1, num_leaves=4, rounds=50, early_stopping=20, objective="regression")
    ranker = fit_ranker(train, validation, settings)
    np.testing.assert_allclose(ranker.score(validation.features), ranker.predict_relevance(validation.features))
    held_out = validation.query_ids == "q13"
    items = [item for item, keep in zip(validation.item_ids, held_out, strict=True) if keep]
    assert items[int(np.argmax(ranker.score(validation.features[held_out])))] == "flask"
