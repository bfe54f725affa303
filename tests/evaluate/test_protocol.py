"""The reported-run protocol: the long-tail knob and baseline settings chosen on validation, summaries over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from longtail.core.config import RecommendConfig
from longtail.evaluate.harness import Evaluation, evaluate_split
from longtail.evaluate.protocol import choose_knob, compare_over_seeds, seed_summary, summarise_seeds, tune_on_validation
from longtail.models.base import TrainData


def _evaluation(ndcg: list[float]) -> Evaluation:
    values = np.array(ndcg)
    return Evaluation({"NDCG@10": float(values.mean())}, {}, {"all": {"NDCG@10": values}}, np.zeros((len(values), 0), dtype=np.int64))


def test_the_knob_is_the_best_tail_weight_within_the_accuracy_tolerance() -> None:
    curve = [
        {"weight": 0.0, "NDCG@10": 0.050, "tail_NDCG@10": 0.010},
        {"weight": 0.1, "NDCG@10": 0.049, "tail_NDCG@10": 0.014},
        {"weight": 0.3, "NDCG@10": 0.0476, "tail_NDCG@10": 0.020},
        {"weight": 0.5, "NDCG@10": 0.040, "tail_NDCG@10": 0.030},
    ]
    assert choose_knob(curve, tolerance=0.05) == 0.3  # 0.5 is more tail-friendly but loses 20% accuracy
    assert choose_knob(curve, tolerance=0.0) == 0.0


def test_a_seed_summary_gives_mean_sd_and_a_user_interval_over_seed_averaged_values() -> None:
    runs = [
        {"dataset": "d", "model": "m", "protocol": "loo-full", "seed": seed, "metrics": {"NDCG@10": value}} for seed, value in ((1, 0.2), (2, 0.4), (3, 0.6))
    ]
    evaluations = [_evaluation([0.0, 0.3, 0.3]), _evaluation([0.3, 0.6, 0.3]), _evaluation([0.6, 0.9, 0.3])]
    summary = seed_summary(runs, evaluations, samples=200)
    assert summary["seeds"] == [1, 2, 3]
    assert summary["mean"]["NDCG@10"] == pytest.approx(0.4)
    assert summary["sd"]["NDCG@10"] == pytest.approx(0.2)
    interval = summary["ci95_users"]["NDCG@10"]
    assert interval["users"] == 3 and interval["mean"] == pytest.approx(0.4)  # users averaged over seeds: 0.3, 0.6, 0.3
    assert 0.3 <= interval["low"] <= interval["high"] <= 0.6
    with pytest.raises(ValueError, match="seeds repeat"):
        seed_summary([runs[0], runs[0]], evaluations[:2])


def test_summaries_group_runs_by_model_and_compare_paired_over_users() -> None:
    runs = [{"dataset": "d", "model": model, "protocol": "loo-full", "seed": seed, "metrics": {"NDCG@10": 0.1}} for model in ("a", "b") for seed in (1, 2)]
    evaluations = {
        ("a", 1): _evaluation([0.2, 0.4, 0.6, 0.8]),
        ("a", 2): _evaluation([0.2, 0.4, 0.6, 0.8]),
        ("b", 1): _evaluation([0.1, 0.3, 0.5, 0.7]),
        ("b", 2): _evaluation([0.1, 0.3, 0.5, 0.7]),
    }
    assert [s["model"] for s in summarise_seeds(runs, evaluations, samples=100)] == ["a", "b"]
    compared = compare_over_seeds([evaluations[("a", 1)], evaluations[("a", 2)]], [evaluations[("b", 1)], evaluations[("b", 2)]])
    assert compared["difference"] == pytest.approx(0.1) and compared["significant"]


def test_item_knn_is_tuned_on_validation_and_the_grid_is_recorded(beauty_slice) -> None:
    _, split = beauty_slice
    config = RecommendConfig()
    data = TrainData(split.n_items, split.train, split.valid)
    grid = [{"knn_neighbours": 1}, {"knn_neighbours": 20}, {"knn_neighbours": 200}]
    model, chosen, scored = tune_on_validation("itemknn", grid, data, split, config)
    assert [point["knn_neighbours"] for point in scored] == [1, 20, 200]
    best = max(scored, key=lambda point: point["valid_NDCG@10"])
    assert chosen == {"knn_neighbours": best["knn_neighbours"]} and model.neighbours == best["knn_neighbours"]
    assert len({point["valid_NDCG@10"] for point in scored}) > 1  # the setting matters on real data
    again = evaluate_split(model.score, split, "valid", config, segments=False).metrics["NDCG@10"]
    assert again == best["valid_NDCG@10"]
