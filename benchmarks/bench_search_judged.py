"""Search on real graded judgments (Home Depot): BM25, dense, RRF hybrid and the learned ranker, condensed and full-catalogue.

Splits the judgments by query (70/10/20, seed 42); the hybrid's fusion (RRF k, lexical weight) is tuned on the validation
queries, the ranker trains on the train queries and early-stops on the validation queries, and the test queries are scored
once. Writes the Home Depot entries of benchmarks/results/search.json (entries of
other datasets are kept), the `homedepot` section of benchmarks/results/search_speed.json and the HTML report
benchmarks/results/search-homedepot.html (+ .json). Item and query vectors are cached in out/cache, so a rerun encodes nothing.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from longtail.core.config import EncodeConfig, LongtailConfig
from longtail.data.loaders import load_table
from longtail.data.query_split import split_by_query
from longtail.data.schema import ITEMS
from longtail.encode.factory import build_encoder
from longtail.encode.item_text import item_texts
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
from longtail.search.cross_encoder import load_cross_encoder
from longtail.search.engine import SearchEngine
from longtail.search.learned import RANKER_GRID
from longtail.search.ranker_training import judged_pairs

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CACHE = HERE.parent / "out" / "cache"
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", HERE.parents[1] / "shared" / "datasets"))
DATASET = "homedepot"
SEED = 42
LATENCY_QUERIES = 200
WARM_UP = 20
THROUGHPUT_TEXTS = 300
CROSS_ENCODER_QUERIES = 23
BASELINES = ("bm25", "dense", "hybrid")
# The stock fp32 MiniLM encodes titles faster than the int8 ONNX one on this busy 2-core machine (both speeds are reported).
ENCODER = "minilm"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def encoder_speed(texts: list[str]) -> dict[str, float]:
    """Items per second of the stock and the int8 MiniLM on a sample of titles (no cache)."""
    speeds = {}
    for name in ("minilm", "minilm-int8"):
        encoder = build_encoder(EncodeConfig.model_validate({"encoder": name, "cache_dir": None, "batch_size": 64}))
        encoder.encode(texts[:64])
        started = time.perf_counter()
        encoder.encode(texts)
        speeds[f"{name}_items_per_s"] = len(texts) / (time.perf_counter() - started)
    return speeds


def latency(engine: SearchEngine, queries: list[str]) -> dict[str, dict[str, float]]:
    """Single-client end-to-end latency (query encoding included) after warm-up, with the learned ranker and fusion only."""
    results = {}
    for name, learned in (("learned", True), ("hybrid", False)):
        for query in queries[:WARM_UP]:
            engine.search(query, 10, learned=learned)
        timings = []
        for query in queries[WARM_UP:]:
            started = time.perf_counter()
            engine.search(query, 10, learned=learned)
            timings.append((time.perf_counter() - started) * 1000)
        results[f"{name}_ms"] = {"p50": float(np.percentile(timings, 50)), "p99": float(np.percentile(timings, 99)), "queries": len(timings)}
    return results


def cross_encoder_latency(engine: SearchEngine, queries: list[str], max_length: int, quantised: bool, depth: int = 50) -> dict[str, float]:
    """Time to score the top `depth` hybrid candidates of a query with a MiniLM cross-encoder, after warm-up; `quantised`:
    its linear layers in dynamic int8 (torch).

    Untrained head: scoring cost does not depend on the weights, and training one here does not fit the time budget."""
    import torch

    model = load_cross_encoder(max_length=max_length)
    model.eval()
    if quantised:
        # In place: the cross-encoder's wrappers keep calling the same (now int8) linear layers.
        torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    timings = []
    for number, query in enumerate(queries):
        hits = engine.search(query, depth, learned=False).hits
        started = time.perf_counter()
        model.predict([(query, hit.title) for hit in hits], batch_size=depth, activation_fn=torch.nn.Identity(), show_progress_bar=False)
        if number >= 3:
            timings.append((time.perf_counter() - started) * 1000)
    return {"p50": float(np.percentile(timings, 50)), "p99": float(np.percentile(timings, 99)), "queries": len(timings), "depth": depth,
            "max_length": max_length, "dynamic_int8": quantised}


def entries(report: dict, results: dict[str, RunResult], queries: int) -> list[dict]:
    """The acceptance format: one entry per retriever with condensed/full metrics and CIs of condensed NDCG@10 vs the baselines;
    `queries` counts the scored test queries (those with a relevant product), `split_queries` all test queries."""
    out = []
    comparisons = report["comparisons"]
    for name, run in report["runs"].items():
        metrics = {}
        if "condensed" in run:
            metrics["NDCG@10_condensed"] = run["condensed"]["metrics"]["NDCG@10"]
            metrics["MRR_condensed"] = run["condensed"]["metrics"]["MRR"]
        if "full" in run:
            metrics.update({"NDCG@10_full": run["full"]["metrics"]["NDCG@10"], "Recall@100_full": run["full"]["metrics"]["Recall@100"], "MRR_full": run["full"]["metrics"]["MRR"]})
        if "RMSE" in run:
            metrics["RMSE"] = run["RMSE"]
        ci = {b: [c["ci_low"], c["ci_high"]] for b, c in comparisons["condensed"].get(name, {}).items()}
        ci_full = {b: [c["ci_low"], c["ci_high"]] for b, c in comparisons["full"].get(name, {}).items()}
        scored = run.get("condensed", run.get("full", {})).get("queries", 0)
        out.append({
            "dataset": DATASET, "split": "test", "queries": scored, "split_queries": queries, "retriever": name, "metrics": metrics, "ci_vs": ci, "ci_vs_full": ci_full,
            "full_catalogue": "retrieval over all 54,667 products; unjudged products count as not relevant" if "full" in run else None,
            "segments_condensed_ndcg10": {s: v["NDCG@10"] for s, v in run.get("condensed", {}).get("segments", {}).items()},
            **results[name].extra,
        })
    return out


def merge(path: Path, new: list[dict]) -> None:
    """Replace this dataset's entries in a results list, keeping every other dataset's."""
    existing = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    kept = [entry for entry in existing if entry.get("dataset") != DATASET]
    path.write_text(json.dumps(kept + new, indent=2, ensure_ascii=False), encoding="utf-8")


def main() -> int:
    started = time.perf_counter()
    folder = DATASETS / "homedepot-search"
    items = load_table(folder / "items.csv", ITEMS).select("item_id", "title")
    judgments = load_judgments(folder / "judgments.csv")
    parts = split_by_query(judgments, seed=SEED)
    log(f"{items.height:,} items, {judgments.height:,} judgments; queries train/validation/test: "
        + "/".join(f"{p['query_id'].n_unique():,}" for p in parts.values()))
    config = LongtailConfig.model_validate({"seed": SEED, "encode": {"encoder": ENCODER, "cache_dir": str(CACHE)}})
    speed: dict[str, object] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                "note": "measured under load: 2-core machine shared with other engineers' jobs; speeds are lower bounds"}
    t = time.perf_counter()
    encoder = build_encoder(config.encode)
    vectors = encoder.encode(item_texts(items), show_progress=False)
    speed["encode_seconds_this_run"] = time.perf_counter() - t
    t = time.perf_counter()
    engine = SearchEngine.build(items, config, encoder=encoder, vectors=vectors)
    speed["index_build_seconds_vectors_cached"] = time.perf_counter() - t
    speed["ann"] = engine.dense.kind
    speed["index_encoder"] = ENCODER
    log(f"index built in {speed['index_build_seconds_vectors_cached']:.0f}s ({engine.dense.kind})")
    # Queries go through the cache too (the int8 MiniLM has no query prefix), so reruns skip their encoding.
    texts = judgments["query"].unique(maintain_order=True).to_list()
    query_vectors = dict(zip(texts, encoder.encode(texts, 256), strict=True))
    t = time.perf_counter()
    pairs = {part: judged_pairs(engine, frame, query_vectors) for part, frame in parts.items()}
    speed["feature_seconds"] = time.perf_counter() - t
    log(f"features of {sum(len(p.grades) for p in pairs.values()):,} pairs in {speed['feature_seconds']:.0f}s")
    fusion = tune_hybrid_fusion(engine, pairs["validation"], query_vectors, parts["validation"])
    log(f"fusion tuned on validation: RRF k {fusion.rrf_k}, lexical weight {fusion.lexical_weight} (objective {fusion.objective:.4f})")
    t = time.perf_counter()
    ranker, grid_scores = tune_ranker(engine, pairs["train"], pairs["validation"], RANKER_GRID, parts["validation"], query_vectors)
    speed["ranker_train_seconds"] = time.perf_counter() - t
    log(f"ranker: {ranker.meta.settings.objective}, best iteration {ranker.meta.best_iteration}, validation NDCG@10 {ranker.meta.validation_ndcg10:.4f} "
        f"(grid, mean of condensed and full: {[round(score, 4) for score in grid_scores]}), RMSE {ranker.meta.validation_rmse:.4f}")
    test, test_pairs = parts["test"], pairs["test"]
    results = {name: RunResult(name, condensed=evaluate_run(run, test)) for name, run in condensed_runs(
        test_pairs, {"learned": ranker.score(test_pairs.features)}, SEED, fusion.rrf_k, fusion.lexical_weight).items()}
    results["hybrid"].extra["fusion"] = {"rrf_k": fusion.rrf_k, "lexical_weight": fusion.lexical_weight, "dense_weight": 1.0,
                                         "tuned_on": "validation queries: mean of full-catalogue and condensed NDCG@10", "validation_objective": fusion.objective}
    results["learned"].rmse = rmse(ranker.predict_relevance(test_pairs.features), test_pairs.relevance)
    constant = float(pairs["train"].relevance.mean())
    results["random"].extra["RMSE_constant_train_mean"] = rmse(np.full(len(test_pairs.relevance), constant), test_pairs.relevance)
    results["learned"].extra["ranker"] = {"features": ranker.features, "settings": asdict(ranker.meta.settings), "best_iteration": ranker.meta.best_iteration,
                                          "validation_condensed_ndcg10": ranker.meta.validation_ndcg10, "importance_gain": ranker.importance(),
                                          "grid_validation_mean_condensed_full_ndcg10": [{**asdict(g), "objective": v} for g, v in zip(RANKER_GRID, grid_scores, strict=True)]}
    t = time.perf_counter()
    for name, run in full_runs(engine, test, query_vectors, learned=True).items():
        results[name].full = evaluate_run(run, test)
    log(f"full-catalogue runs in {time.perf_counter() - t:.0f}s")
    segments = query_segments(test, engine.ranking_features().text.document_frequency)
    report = summarise_runs(results, segments)
    queries = int(test["query_id"].n_unique())
    report.update({"dataset": DATASET, "part": "test", "seed": SEED, "queries": queries, "pairs": len(test_pairs.grades), "notes": [
        ("Split 70/10/20 by query (seed 42): the ranker trained on train queries, early-stopped on validation and picked from a small "
         "grid on validation (mean of condensed and full-catalogue NDCG@10); the hybrid's RRF k and lexical weight were tuned on validation; test touched once."),
        ("RMSE is of the raters' mean relevance (1-3) on test pairs; Kaggle's anchors (winner 0.431, constant ~0.53) are on its own "
         "test split with descriptions and attributes too, so they are not directly comparable."),
    ]})
    write_report(report, RESULTS, "Home Depot, test queries", "search-homedepot")
    # Quality figures are written before the speed measurements, which a busy machine can drag out.
    merge(RESULTS / "search.json", entries(report, results, queries))
    for name, run in report["runs"].items():
        log(f"{name}: condensed {run['condensed']['metrics']['NDCG@10']:.4f}" + (f", full {run['full']['metrics']['NDCG@10']:.4f} R@100 {run['full']['metrics']['Recall@100']:.4f}" if "full" in run else "")
            + (f", RMSE {run['RMSE']:.4f}" if "RMSE" in run else ""))
    speed.update(encoder_speed(item_texts(items)[:THROUGHPUT_TEXTS]))
    # A first build encodes every title: its time at the items/s just measured plus the index build itself.
    speed["first_build_seconds_projected"] = {name: items.height / float(speed[f"{name}_items_per_s"]) + speed["index_build_seconds_vectors_cached"]
                                              for name in ("minilm", "minilm-int8")}
    log(f"encoder speed: {speed}")
    speed["latency"] = latency(engine, test["query"].unique(maintain_order=True).head(LATENCY_QUERIES + WARM_UP).to_list())
    cross_queries = test["query"].unique(maintain_order=True).head(CROSS_ENCODER_QUERIES).to_list()
    speed["latency"]["cross_encoder_top50_scoring_ms"] = cross_encoder_latency(engine, cross_queries, 64, quantised=False)
    speed["latency"]["cross_encoder_top50_scoring_ms_int8_len48"] = cross_encoder_latency(engine, cross_queries, 48, quantised=True)
    log(f"latency: {speed['latency']}")
    speed["seconds"] = time.perf_counter() - started
    speed_path = RESULTS / "search_speed.json"
    all_speed = json.loads(speed_path.read_text(encoding="utf-8")) if speed_path.is_file() else {}
    all_speed[DATASET] = speed
    speed_path.write_text(json.dumps(all_speed, indent=2), encoding="utf-8")
    log(f"done in {speed['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
