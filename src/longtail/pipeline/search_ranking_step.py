"""Steps that wire judgments to a search index: split them by query, train the index's learned ranker, evaluate search."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from longtail.core.config import LongtailConfig
from longtail.core.errors import LongtailError
from longtail.data.query_split import DEFAULT_FRACTIONS, PARTS, split_by_query
from longtail.evaluate.search_eval import (
    RunResult,
    condensed_runs,
    full_runs,
    query_segments,
    rmse,
    summarise_runs,
    tune_hybrid_fusion,
    tune_ranker,
    write_report,
)
from longtail.evaluate.search_metrics import evaluate_run, load_judgments
from longtail.search.engine import MODEL_FEATURES, SearchEngine
from longtail.search.learned import RankerSettings
from longtail.search.ranker_training import judged_pairs, query_vectors, train_ranker

SPLIT_SEED = "split_seed"


def open_engine(index: Path | None, items: pl.DataFrame | None, config: LongtailConfig, build_dir: Path) -> SearchEngine:
    """An index folder when given, else a new index of `items` built into `build_dir`."""
    if index is not None:
        return SearchEngine.open(index)
    if items is None:
        raise LongtailError("give an index folder (--index) or a catalogue (--items) to evaluate search on")
    return SearchEngine.build(items, config, directory=build_dir, show_progress=True)


def train_ranker_step(engine: SearchEngine, judgments_path: Path, seed: int = 42, settings: RankerSettings | None = None) -> dict[str, Any]:
    """Split judgments by query, tune the hybrid's fusion on the validation part and train the ranker on the train part
    (early-stopped on validation; without `settings`, the best of the tuning grid on validation); both are saved with the index."""
    started = time.perf_counter()
    parts = split_by_query(load_judgments(judgments_path), DEFAULT_FRACTIONS, seed)
    vectors = query_vectors(engine, [*parts["train"]["query"].to_list(), *parts["validation"]["query"].to_list()])
    train, validation = judged_pairs(engine, parts["train"], vectors), judged_pairs(engine, parts["validation"], vectors)
    fusion = tune_hybrid_fusion(engine, validation, vectors, parts["validation"])
    if settings is None:
        ranker, _ = tune_ranker(engine, train, validation, judgments=parts["validation"], vectors=vectors)
    else:
        ranker = train_ranker(engine, train, validation, settings)
    # Recorded so that evaluate-search can refuse a split whose test queries this ranker trained on.
    ranker.meta.extra[SPLIT_SEED] = seed
    engine.set_ranker(ranker)
    return {
        **asdict(ranker.meta),
        "seconds": time.perf_counter() - started,
        "train_pairs": len(train.grades),
        "validation_pairs": len(validation.grades),
        "importance": ranker.importance(),
        "fusion": {"rrf_k": fusion.rrf_k, "lexical_weight": fusion.lexical_weight, "validation_margin_over_best_list": fusion.objective},
    }


def evaluate_search_step(
    engine: SearchEngine, judgments_path: Path, out_dir: Path, part: str = "test", seed: int = 42, full: bool = True, limit: int | None = None
) -> dict[str, Any]:
    """Condensed and (optionally) full-catalogue runs on one part of the query split; writes the JSON and HTML report."""
    if part not in (*PARTS, "all"):
        raise LongtailError(f"unknown judgment part '{part}'; use one of {', '.join((*PARTS, 'all'))}")
    trained_seed = engine.ranker.meta.extra.get(SPLIT_SEED) if engine.ranker is not None else None
    if trained_seed is not None and trained_seed != seed:
        raise LongtailError(f"the index's ranker was trained on the split with seed {trained_seed}; evaluate with --seed {trained_seed}")
    judgments = load_judgments(judgments_path)
    if part != "all":
        judgments = split_by_query(judgments, DEFAULT_FRACTIONS, seed)[part]
    if limit is not None:
        kept = judgments["query_id"].unique(maintain_order=True).head(limit)
        judgments = judgments.filter(pl.col("query_id").is_in(kept.implode()))
    vectors = query_vectors(engine, judgments["query"].to_list())
    used = [name for name in engine.ranker.features if name in MODEL_FEATURES] if engine.ranker is not None else []
    pairs = judged_pairs(engine, judgments, vectors, model_features=used)
    scores: dict[str, np.ndarray] = {}
    if engine.ranker is not None:
        scores["learned"] = engine.ranker.score(pairs.features)
    condensed = condensed_runs(pairs, scores, seed, engine.config.search.rrf_k, engine.config.search.lexical_weight)
    results = {name: RunResult(name, condensed=evaluate_run(run, judgments)) for name, run in condensed.items()}
    if engine.ranker is not None and engine.ranker.regressor is not None:
        results["learned"].rmse = rmse(engine.ranker.predict_relevance(pairs.features), pairs.relevance)
    if full:
        for name, run in full_runs(engine, judgments, vectors, learned=True).items():
            results.setdefault(name, RunResult(name)).full = evaluate_run(run, judgments)
    report = summarise_runs(results, query_segments(judgments, engine.ranking_features().text.document_frequency))
    report.update({"part": part, "seed": seed, "queries": int(judgments["query_id"].n_unique()), "pairs": len(pairs.grades)})
    if engine.ranker is not None:
        report["ranker"] = {"features": engine.ranker.features, "validation_ndcg10": engine.ranker.meta.validation_ndcg10}
    write_report(report, out_dir, f"{judgments_path.name}, {part} queries")
    return report
