"""The reported-run protocol: settings chosen on validation (baseline grids, the long-tail knob) and results over seeds.

Every choice here reads validation targets only, so test metrics stay untouched by tuning. Summaries over seeds give
mean ± sd per metric and a bootstrap interval over users, each user's value first averaged over the seeds (a user
is one draw, not one per seed, so the interval does not shrink with more seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from longtail.core.config import RecommendConfig
from longtail.data.splits import Split
from longtail.evaluate.harness import Evaluation, evaluate_split
from longtail.evaluate.significance import bootstrap_ci, paired_bootstrap
from longtail.models.base import Recommender, TrainData, make_recommender

# Validation grids for the closed-form baselines: the RecommendConfig keys each baseline reads, and values that span
# the settings published for these sets (EASE's lambda from 50 to 2000; kNN from 20 to 500 neighbours).
BASELINE_GRIDS: dict[str, list[dict[str, Any]]] = {
    "ease": [{"ease_lambda": value} for value in (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)],
    "itemknn": [{"knn_neighbours": value} for value in (20, 50, 100, 200, 500)],
    "als": [{"als_factors": factors, "als_regularization": regularization} for factors in (64, 128) for regularization in (0.01, 0.1, 1.0)],
}
SUMMARY_METRICS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR")


def tune_on_validation(
    name: str, grid: Sequence[dict[str, Any]], data: TrainData, split: Split, config: RecommendConfig, metric: str = "NDCG@10"
) -> tuple[Recommender, dict[str, Any], list[dict[str, Any]]]:
    """Fit `name` at every grid point on the training part and keep the best by validation `metric`.

    Returns the fitted best model, its settings, and the grid with each point's validation score (to record).
    """
    if not grid:
        raise ValueError(f"tuning {name}: the grid is empty")
    best: tuple[float, Recommender, dict[str, Any]] | None = None
    scored = []
    for point in grid:
        model = make_recommender(name, config.model_copy(update=point)).fit(data)
        value = evaluate_split(model.score, split, "valid", config, segments=False).metrics[metric]
        scored.append({**point, f"valid_{metric}": value})
        if best is None or value > best[0]:
            best = (value, model, dict(point))
    assert best is not None  # the grid is not empty
    return best[1], best[2], scored


def choose_knob(curve: Sequence[dict[str, Any]], tolerance: float = 0.05) -> float:
    """The long-tail weight to report, from a validation trade-off curve: the best tail NDCG@10 among weights that keep
    overall NDCG@10 within `tolerance` (relative) of weight 0."""
    floor = next(point for point in curve if point["weight"] == 0.0)["NDCG@10"] * (1.0 - tolerance)
    allowed = [point for point in curve if point["NDCG@10"] >= floor]
    return float(max(allowed, key=lambda point: (point["tail_NDCG@10"], -point["weight"]))["weight"])


def per_user_over_seeds(evaluations: Sequence[Evaluation], metric: str) -> np.ndarray:
    """Each user's `metric` averaged over the seeds' evaluations (the same users in the same order in each)."""
    values = np.vstack([evaluation.per_user["all"][metric] for evaluation in evaluations])
    return np.asarray(values.mean(axis=0))


def seed_summary(runs: Sequence[dict[str, Any]], evaluations: Sequence[Evaluation], samples: int = 1000) -> dict[str, Any]:
    """Mean ± sd over seeds of one model's runs, and 95% bootstrap intervals over users (values averaged over seeds)."""
    seeds = [run["seed"] for run in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed summary of {runs[0]['model']}: seeds repeat ({seeds}); one run per seed")
    names = [name for name in SUMMARY_METRICS if name in runs[0]["metrics"]]
    values = {name: np.array([run["metrics"][name] for run in runs], dtype=np.float64) for name in names}
    return {
        "dataset": runs[0]["dataset"],
        "model": runs[0]["model"],
        "protocol": runs[0]["protocol"],
        "seeds": seeds,
        "mean": {name: float(v.mean()) for name, v in values.items()},
        "sd": {name: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for name, v in values.items()},
        "ci95_users": {name: bootstrap_ci(per_user_over_seeds(evaluations, name), samples) for name in names},
    }


def compare_over_seeds(candidate: Sequence[Evaluation], baseline: Sequence[Evaluation], metric: str = "NDCG@10", samples: int = 1000) -> dict[str, float]:
    """Paired bootstrap of candidate minus baseline over users, each user's value averaged over the seeds first."""
    return paired_bootstrap(per_user_over_seeds(candidate, metric), per_user_over_seeds(baseline, metric), samples)


def summarise_seeds(runs: Sequence[dict[str, Any]], evaluations: dict[tuple[str, int], Evaluation], samples: int = 1000) -> list[dict[str, Any]]:
    """One seed summary per model in `runs` (runs carry "model" and "seed"; `evaluations` is keyed the same way)."""
    models: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        models.setdefault(run["model"], []).append(run)
    return [seed_summary(group, [evaluations[(name, run["seed"])] for run in group], samples) for name, group in models.items()]
