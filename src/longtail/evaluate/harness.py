"""Scores every user against the full catalogue in batches and summarises metrics overall and per segment."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from longtail.core.config import RecommendConfig
from longtail.data.segments import TAIL, item_segments, user_segments
from longtail.data.splits import Split, Stage
from longtail.evaluate.metrics import catalogue_coverage, exposure_gini, novelty, ranking_metrics, target_ranks
from longtail.models.base import mask_history, top_k

Scorer = Callable[[Sequence[np.ndarray]], np.ndarray]
BATCH = 1024


@dataclass
class Evaluation:
    """Mean metrics overall and per segment, with the per-user values that bootstrap intervals resample."""

    metrics: dict[str, float]
    segments: dict[str, dict[str, float]]
    per_user: dict[str, dict[str, np.ndarray]] = field(repr=False)
    top: np.ndarray = field(repr=False)

    def summary(self) -> dict[str, object]:
        """The JSON-ready part: overall and per-segment means."""
        return {"metrics": self.metrics, "segments": self.segments}


def _means(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan") for name, values in per_user.items()}


def _restrict(ranks: list[np.ndarray], targets: Sequence[np.ndarray], keep: np.ndarray) -> list[np.ndarray]:
    """Only the (user, target) pairs whose target item passes `keep`."""
    return [r[keep[t]] for r, t in zip(ranks, targets, strict=True)]


def evaluate_scorer(
    scorer: Scorer,
    histories: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    train_counts: np.ndarray,
    config: RecommendConfig,
    segments: bool = True,
    new_items: np.ndarray | None = None,
) -> Evaluation:
    """Full-ranking evaluation of users that have targets; histories are excluded from each ranking unless `config.repeats`.

    Item segments are computed per (user, target) pair: tail HR@10 is the HR@10 over pairs whose target is a
    tail item. `unseen` holds the pairs whose target had no training interaction at all; `new_items` (a mask from
    an inductive split) adds the segment of pairs whose target was held out of every model input.
    """
    users = np.array([i for i, t in enumerate(targets) if len(t)], dtype=np.int64)
    histories = [histories[i] for i in users]
    targets = [targets[i] for i in users]
    k_max = max(config.ks)
    ranks: list[np.ndarray] = []
    top = np.zeros((len(users), min(k_max, len(train_counts))), dtype=np.int64)
    for start in range(0, len(users), BATCH):
        chunk = slice(start, start + BATCH)
        scores = scorer(histories[chunk])
        # With repeat consumption a user may buy again what they bought before, so history stays rankable.
        if not config.repeats:
            scores = mask_history(scores, histories[chunk])
        ranks.extend(target_ranks(scores, targets[chunk], users[chunk]))
        if not segments:
            continue
        top[chunk] = top_k(scores, k_max)
    per_user = {"all": ranking_metrics(ranks, config.ks)}
    metrics = _means(per_user["all"])
    if not segments:
        return Evaluation(metrics, {}, per_user, top)
    n_items = len(train_counts)
    item_labels = item_segments(train_counts, config.head_item_share, config.tail_interaction_share)
    is_tail = item_labels == TAIL
    for k in config.ks:
        metrics[f"coverage@{k}"] = catalogue_coverage(top[:, :k], n_items)
        metrics[f"gini@{k}"] = exposure_gini(top[:, :k], n_items)
        metrics[f"novelty@{k}"] = novelty(top[:, :k], train_counts, len(histories))
        metrics[f"tail_exposure@{k}"] = float(is_tail[top[:, :k]].mean()) if top.size else 0.0
    for label in ("head", "torso", "tail"):
        per_user[label] = ranking_metrics(_restrict(ranks, targets, item_labels == label), config.ks)
    per_user["unseen"] = ranking_metrics(_restrict(ranks, targets, train_counts == 0), config.ks)
    if new_items is not None:
        per_user["new_items"] = ranking_metrics(_restrict(ranks, targets, new_items), config.ks)
    user_labels = user_segments(np.array([len(h) for h in histories]), config.cold_user_max_history)
    for label in ("cold", "active"):
        per_user[label] = {name: np.where(user_labels == label, values, np.nan) for name, values in per_user["all"].items()}
    segment_means = {}
    for label, values in per_user.items():
        if label != "all":
            segment_means[label] = {**_means(values), "users": int(np.sum(~np.isnan(values["MRR"])))}
    return Evaluation(metrics, segment_means, per_user, top)


def evaluate_split(scorer: Scorer, split: Split, stage: Stage, config: RecommendConfig, segments: bool = True) -> Evaluation:
    """Evaluate a model's scorer on a split's validation or test targets, with training popularity for segments."""
    return evaluate_scorer(scorer, split.histories(stage), split.targets(stage), split.train_counts(), config, segments, split.new_items)


def make_validator(split: Split, config: RecommendConfig, metric: str = "NDCG@10", seed: int = 0) -> Callable[[object], float]:
    """The early-stopping signal: a model's mean `metric` on the validation targets (no segments, for speed).

    With `config.sequential.valid_users`, a fixed random sample of that many validation users (drawn with `seed`) is
    scored instead of all: early stopping needs the trend, not the last decimal.
    """
    users = config.sequential.valid_users
    candidates = np.array([u for u, target in enumerate(split.valid) if len(target)], dtype=np.int64)
    sample = (
        split if users is None or users >= len(candidates) else split.subset(np.sort(np.random.default_rng(seed).choice(candidates, size=users, replace=False)))
    )

    def validate(model: object) -> float:
        return evaluate_split(model.score, sample, "valid", config, segments=False).metrics[metric]  # type: ignore[attr-defined]

    return validate
