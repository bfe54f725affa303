"""Fine-tuning data for the dense encoder on a tiny hand-made catalogue: positives, mined hard negatives, validation scoring."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from longtail.augment.queries import first_measure, typo
from longtail.core.config import LongtailConfig
from longtail.data.query_split import query_folds
from longtail.pipeline.dense_finetune import ValidationScorer, judgment_examples, synthetic_examples, train_or_load_folds

ITEMS = pl.DataFrame(
    {
        "item_id": ["a", "b", "c", "d", "e", "f"],
        "title": [
            "Brass ball valve 1/2 in. lead free",
            "Brass gate valve 3/4 in.",
            "PVC ball valve 1 in. white",
            "Steel angle bracket 4 in. zinc",
            "Corner brace 2 in. zinc plated",
            "Copper pipe 10 ft. type M",
        ],
    }
)


def test_judged_low_grades_are_negatives_before_unjudged_bm25_hits():
    judgments = pl.DataFrame(
        {"query_id": ["q1", "q1", "q1", "q2"], "query": ["ball valve"] * 3 + ["zinc bracket"], "item_id": ["a", "c", "b", "d"], "grade": [2, 2, 0, 2]}
    )
    examples = judgment_examples(ITEMS, judgments, min_grade=2)
    by_query = {}
    for query, positive, negative in examples:
        by_query.setdefault(query, []).append((positive, negative))
    titles = dict(ITEMS.select("item_id", "title").rows())
    # both grade-2 valves are positives; the judged grade-0 gate valve is the first negative
    assert [p for p, _ in by_query["ball valve"]] == [titles["a"], titles["c"]]
    assert by_query["ball valve"][0][1] == titles["b"]
    # "zinc bracket" has no judged negative: its negative is the unjudged BM25 hit that shares "zinc"
    assert by_query["zinc bracket"] == [(titles["d"], titles["e"])]


def test_synthetic_examples_use_only_titles_and_never_pair_an_item_with_itself():
    examples = synthetic_examples(ITEMS, per_item=3)
    titles = set(ITEMS["title"].to_list())
    assert examples
    for query, positive, negative in examples:
        assert positive in titles and negative in titles and positive != negative
        # every query word is in the title, or is a title word with two letters swapped (swapping back restores it)
        assert all(word in positive.lower() or (typo(word) or "?") in positive.lower() for word in query.split()), (query, positive)


def test_shopper_query_helpers_swap_two_letters_and_keep_units():
    assert typo("ball valve") == "ball vlave"
    assert typo("pvc tee") is None
    assert first_measure("Brass gate valve 3/4 in. lead free") == "3/4 in."
    assert first_measure("Copper pipe 10 ft. type M") == "10 ft."
    assert first_measure("Model X200 pump") is None


def test_validation_scorer_ranks_by_cosine_and_reports_both_views():
    judgments = pl.DataFrame({"query_id": ["q1", "q1"], "query": ["ball valve"] * 2, "item_id": ["a", "b"], "grade": [2, 0]})
    scorer = ValidationScorer(ITEMS, judgments, distractors=2, seed=0)
    assert len(scorer.item_ids) == 4 and scorer.item_ids[:2] == ["a", "b"]
    items = np.eye(4, dtype=np.float32)
    good = scorer.score_vectors(items, np.array([[1.0, 0.2, 0.0, 0.0]], dtype=np.float32))
    assert good["NDCG@10_condensed"] == pytest.approx(1.0) and good["NDCG@10_sampled_catalogue"] == pytest.approx(1.0)
    # the irrelevant item first, then a distractor, then the relevant one: gain 3 at rank 3
    bad = scorer.score_vectors(items, np.array([[0.1, 1.0, 0.0, 0.5]], dtype=np.float32))
    assert bad["NDCG@10_condensed"] == pytest.approx(1 / np.log2(3))
    assert bad["NDCG@10_sampled_catalogue"] == pytest.approx(1 / np.log2(4))
    assert bad["objective"] == pytest.approx((bad["NDCG@10_condensed"] + bad["NDCG@10_sampled_catalogue"]) / 2)


def test_synthetic_pairs_without_hard_negatives_keep_every_generated_query():
    pairs = synthetic_examples(ITEMS, per_item=3, hard_negatives=False)
    titles = set(ITEMS["title"].to_list())
    assert len(pairs) >= len(synthetic_examples(ITEMS, per_item=3))
    assert all(len(pair) == 2 and pair[1] in titles for pair in pairs)


def test_cross_fitted_encoders_each_train_on_the_queries_outside_their_fold(tmp_path):
    # (query, two relevant items, one irrelevant): two training examples per query
    queries = {"q1": ("ball valve", "ac", "d"), "q2": ("zinc bracket", "de", "a"), "q3": ("brass valve", "ab", "f"), "q4": ("copper pipe", "fa", "e")}
    rows = [(q, text, item, 2.0 if item in good else 0.0) for q, (text, good, bad) in queries.items() for item in good + bad]
    judgments = pl.DataFrame(rows, schema=["query_id", "query", "item_id", "grade"], orient="row")
    config = LongtailConfig.model_validate({"seed": 3, "finetune": {"epochs": 1, "batch_size": 2, "max_minutes": 0.001}, "encode": {"cache_dir": None}})
    encoders, fold_of = train_or_load_folds(ITEMS, tmp_path, config, judgments, judgments.filter(pl.col("query_id") == "q1"))
    assert fold_of == query_folds(list(queries), 2, seed=3) and sorted(fold_of.values()) == [0, 0, 1, 1]
    for fold, encoder in enumerate(encoders):
        source = json.loads((tmp_path / f"fold-{fold}" / "training_source.json").read_text())
        assert source["examples"] == 2 * sum(1 for q in queries if fold_of[q] != fold)
        assert encoder.encode(["ball valve"]).shape == (1, 384)
