"""Search metrics on tiny hand-made judgment files, query segments, paired bootstrap, the proxy task."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from longtail.core.errors import InputDataError
from longtail.evaluate.proxy_search import known_item_queries
from longtail.evaluate.search_metrics import aligned_scores, evaluate_run, load_judgments, popularity_tiers, query_metrics, query_segments, summarize
from longtail.evaluate.significance import paired_comparison

JUDGMENTS_CSV = """query_id,query,item_id,grade
q1,glass beaker,beaker,3
q1,glass beaker,flask,2
q1,glass beaker,gloves,0
q2,safety gloves,gloves,3
q3,cheap drill,drill,0
"""


@pytest.fixture()
def judgments(tmp_path):
    path = tmp_path / "judgments.csv"
    path.write_text(JUDGMENTS_CSV, encoding="utf-8")
    return load_judgments(path)


def test_judgments_load_in_the_canonical_format(judgments, tmp_path):
    assert judgments.columns == ["query_id", "query", "item_id", "grade"]
    assert judgments.height == 5 and judgments["grade"].dtype == pl.Float64
    no_ids = tmp_path / "no_ids.jsonl"
    no_ids.write_text('{"query": "drill", "item_id": "d", "grade": 1}\n', encoding="utf-8")
    assert load_judgments(no_ids)["query_id"].to_list() == ["drill"]
    bad = tmp_path / "bad.csv"
    bad.write_text("query,item_id,grade\ndrill,d,very good\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="grade"):
        load_judgments(bad)


def test_query_metrics_match_hand_computed_values():
    grades = {"beaker": 3.0, "flask": 2.0, "gloves": 0.0}
    perfect = query_metrics(["beaker", "flask", "gloves"], grades)
    assert perfect == {"NDCG@10": pytest.approx(1.0), "MRR": 1.0, "Recall@100": 1.0}
    swapped = query_metrics(["gloves", "flask", "beaker"], grades)
    dcg = 3 / math.log2(3) + 7 / math.log2(4)
    idcg = 7 / math.log2(2) + 3 / math.log2(3)
    assert swapped["NDCG@10"] == pytest.approx(dcg / idcg)
    assert swapped["MRR"] == pytest.approx(0.5)
    assert query_metrics(["other"] * 100 + ["beaker"], grades)["Recall@100"] == 0.0


def test_evaluate_run_skips_queries_without_relevant_items_and_counts_missing_runs_as_zero(judgments):
    per_query = evaluate_run({"q1": ["flask", "beaker"]}, judgments)
    assert per_query["query_id"].to_list() == ["q1", "q2"]
    assert per_query.filter(pl.col("query_id") == "q2")["NDCG@10"].item() == 0.0
    assert per_query.filter(pl.col("query_id") == "q1")["MRR"].item() == 1.0


def test_segments_split_queries_by_frequency_and_by_relevant_item_popularity(judgments):
    popularity = {"beaker": 100, "flask": 50, "gloves": 1, "a": 40, "b": 30, "c": 20, "d": 10, "e": 5, "f": 3, "g": 2}
    assert popularity_tiers(popularity)["beaker"] == "head" and popularity_tiers(popularity)["gloves"] == "tail"
    segments = query_segments(judgments, popularity, query_counts={"glass beaker": 40, "safety gloves": 2})
    assert segments["head_queries"] == ["q1"]
    assert segments["tail_queries"] == ["q2", "q3"]
    assert segments["head_item_queries"] == ["q1"]
    assert segments["tail_item_queries"] == ["q2"]
    summary = summarize(evaluate_run({"q1": ["beaker", "flask"], "q2": []}, judgments), segments)
    assert summary["queries"] == 2
    assert summary["metrics"]["MRR"] == pytest.approx(0.5)
    assert summary["segments"]["head_item_queries"] == {"queries": 1, "NDCG@10": pytest.approx(1.0), "MRR": 1.0, "Recall@100": 1.0}


def test_paired_bootstrap_interval_contains_the_mean_difference_and_separates_clear_wins():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0, 0.5, 300)
    better = paired_comparison(baseline, baseline + 0.1 + rng.normal(0, 0.02, 300))
    assert better["ci_low"] > 0.08 and better["ci_high"] < 0.12 and better["p_value"] < 0.01
    noise = paired_comparison(baseline, baseline + rng.normal(0, 0.05, 300))
    assert noise["ci_low"] < 0 < noise["ci_high"]
    assert paired_comparison(baseline, baseline + 0.1) == paired_comparison(baseline, baseline + 0.1)  # seeded
    with pytest.raises(ValueError):
        paired_comparison(baseline, baseline[:5])


def test_aligned_scores_pair_queries_by_id():
    first = pl.DataFrame({"query_id": ["a", "b"], "MRR": [1.0, 0.5]})
    second = pl.DataFrame({"query_id": ["b", "a"], "MRR": [0.25, 0.0]})
    a, b = aligned_scores(first, second, "MRR")
    assert a.tolist() == [1.0, 0.5] and b.tolist() == [0.0, 0.25]


def test_proxy_queries_are_made_of_words_of_their_own_item_title():
    items = pl.DataFrame({"item_id": ["x", "y", "z"], "title": ["Borosilicate glass beaker with spout", "Nitrile gloves large blue", "Tape"]})
    queries = known_item_queries(items, n_queries=5, seed=1)
    assert queries.height == 2  # "Tape" has too few words to hide any
    for query, item in zip(queries["query"].to_list(), queries["item_id"].to_list(), strict=True):
        title = items.filter(pl.col("item_id") == item)["title"].item().lower()
        words = query.split()
        assert 2 <= len(words) <= 4 and all(word in title for word in words)
    assert known_item_queries(items, 5, seed=1).equals(queries)
