"""The evaluate step: split events, fit each named recommender, evaluate on held-out items, write JSON and HTML."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from longtail.core.config import LongtailConfig, save_config
from longtail.data.splits import split_events
from longtail.encode.factory import build_encoder
from longtail.encode.item_text import encode_items
from longtail.evaluate.harness import Evaluation, evaluate_split, make_validator
from longtail.evaluate.report import comparisons, write_report
from longtail.models.base import TrainData, make_recommender
from longtail.recommend.longtail import LongTailReranker

TEXT_MODELS = {"content", "sasrec-adaptor", "sasrec-dual-view", "sasrec-tail-blend"}


def evaluate_models(
    items: pl.DataFrame,
    events: pl.DataFrame,
    models: list[str],
    config: LongtailConfig,
    out_dir: str | Path,
    protocol: str = "loo",
    max_users: int | None = None,
    advance: Callable[[str], None] = lambda step: None,
) -> list[dict]:
    """Fit and evaluate every model on one split (full ranking), text vectors by `config.encode`; returns the runs also written to out_dir."""
    settings = config.recommend
    split = split_events(items, events, protocol)  # type: ignore[arg-type]
    if max_users is not None and max_users < len(split.user_ids):
        chosen = np.sort(np.random.default_rng(config.seed).choice(len(split.user_ids), size=max_users, replace=False))
        split = split.subset(chosen)
    needs_text = bool(TEXT_MODELS & set(models)) or ("sasrec" in models and settings.sequential.text_init != "none")
    vectors = encode_items(split.item_ids, items, build_encoder(config.encode)) if needs_text else None
    train = TrainData(split.n_items, split.train, split.valid, vectors, config.seed)
    evaluations: dict[str, Evaluation] = {}
    runs: list[dict] = []
    counts = split.train_counts()
    for name in models:
        advance(f"fit {name}")
        model = make_recommender(name, settings)
        started = time.perf_counter()
        model.fit(train, make_validator(split, settings))
        seconds = time.perf_counter() - started
        advance(f"evaluate {name}")
        scorers = {name: model.score}
        if settings.longtail_weight > 0:
            reranker = LongTailReranker(model.score, counts, settings.longtail_weight, settings.longtail_candidates)
            scorers[f"{name}+longtail({settings.longtail_weight:g})"] = reranker.score
        for label, scorer in scorers.items():
            evaluations[label] = evaluate_split(scorer, split, "test", settings)
            summary = evaluations[label].summary()
            runs.append(
                {
                    "model": label,
                    "protocol": split.protocol,
                    "repeats": settings.repeats,
                    **summary,
                    "train_seconds": round(seconds, 2),
                    "users": len(split.user_ids),
                    "items": split.n_items,
                }
            )
    best = max(evaluations, key=lambda label: evaluations[label].metrics["NDCG@10"])
    if len(evaluations) > 1:
        next(run for run in runs if run["model"] == best)["compared_with"] = comparisons(evaluations, best, settings)
    out_dir = Path(out_dir)
    write_report(runs, evaluations, out_dir / "report.html", f"{len(split.user_ids):,} users, {split.n_items:,} items", settings)
    save_config(config, out_dir)
    return runs
