"""Search evaluation on graded judgments: condensed (judged-only) and full-catalogue runs, query segments, paired
bootstrap CIs between runs, relevance RMSE, and the JSON + HTML report."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from longtail.core.errors import LongtailError
from longtail.data.query_split import query_folds
from longtail.data.tokenize import is_latin_word, tokenize
from longtail.encode.item_text import item_texts
from longtail.evaluate.search_metrics import (
    METRICS,
    aligned_scores,
    evaluate_run,
    query_metrics,
    summarize,
)
from longtail.evaluate.significance import paired_comparison
from longtail.reporting.charts import bar_chart
from longtail.reporting.writers import write_report_pair
from longtail.search.cross_encoder import CrossEncoderReport, CrossEncoderScorer, CrossEncoderSettings, PairScorer, train_cross_encoder
from longtail.search.engine import Mode, SearchEngine
from longtail.search.features import CORRECTED_BM25
from longtail.search.fusion import FusionChoice, reciprocal_rank_fusion, tune_fusion
from longtail.search.learned import RANKER_GRID, LearnedRanker, RankerSettings
from longtail.search.ranker_training import JudgedPairs, fit_ranker

HEAD_QUERY_SHARE = 0.2
LONG_QUERY_WORDS = 5
FULL_DEPTH = 100
REPORT_NAME = "search_evaluation"
# Condensed runs: each query's judged items ordered by one score; full runs: the engine's own retrieval.
CONDENSED_SCORES = ("random", "bm25", "dense", "hybrid")
FULL_MODES: dict[str, Mode] = {"bm25": "lexical", "dense": "dense", "hybrid": "hybrid"}


@dataclass
class RunResult:
    """One run's per-query metrics, condensed and full-catalogue (either may be missing)."""

    name: str
    condensed: pl.DataFrame | None = None
    full: pl.DataFrame | None = None
    rmse: float | None = None
    extra: dict[str, object] = field(default_factory=dict)


def _order(item_ids: Sequence[str], scores: np.ndarray, tie_break: np.ndarray) -> list[str]:
    """Item ids by descending score; ties (e.g. items BM25 does not match) in a seeded random order, never file order."""
    order = np.lexsort((tie_break, -np.asarray(scores, dtype=np.float64)))
    return [item_ids[i] for i in order]


def condensed_runs(
    pairs: JudgedPairs, scores: Mapping[str, np.ndarray] | None = None, seed: int = 42, rrf_k: int = 60, lexical_weight: float = 1.0
) -> dict[str, dict[str, list[str]]]:
    """Run name -> query id -> that query's judged items ranked by the run's score (random, bm25, dense, hybrid fused with
    `rrf_k` and `lexical_weight`, plus `scores`)."""
    column = {name: position for position, name in enumerate(pairs.names)}
    tie_break = np.random.default_rng(seed).random(len(pairs.grades))
    columns = {"random": tie_break, "bm25": pairs.features[:, column[CORRECTED_BM25]], "dense": pairs.features[:, column["dense_cosine"]]}
    columns.update(scores or {})
    runs: dict[str, dict[str, list[str]]] = {name: {} for name in (*CONDENSED_SCORES, *(scores or {}))}
    boundaries = np.flatnonzero(np.concatenate([[True], pairs.query_ids[1:] != pairs.query_ids[:-1], [True]]))
    for start, end in pairwise(boundaries):
        query_id = str(pairs.query_ids[start])
        items = pairs.item_ids[start:end]
        ties = tie_break[start:end]
        for name, values in columns.items():
            if name != "hybrid":
                runs[name][query_id] = _order(items, values[start:end], ties)
        by_bm25 = np.asarray([items.index(i) for i in runs["bm25"][query_id]])
        by_dense = np.asarray([items.index(i) for i in runs["dense"][query_id]])
        fused_rows, _ = reciprocal_rank_fusion([by_bm25, by_dense], [lexical_weight, 1.0], rrf_k)
        runs["hybrid"][query_id] = [items[i] for i in fused_rows.tolist()]
    return runs


def full_runs(
    engine: SearchEngine,
    judgments: pl.DataFrame,
    vectors: Mapping[str, np.ndarray],
    learned: bool,
    depth: int = FULL_DEPTH,
    rankers: Mapping[str, LearnedRanker] | None = None,
    cross_encoder_depth: int = 0,
) -> dict[str, dict[str, list[str]]]:
    """Run name -> query id -> the top `depth` of the whole catalogue: bm25, dense, hybrid, (with a ranker) learned, each of
    `rankers` under its name, and with `cross_encoder_depth` the cross-encoder re-ranking that many hybrid candidates."""
    queries = judgments.select("query_id", "query").unique(maintain_order=True)
    ids, texts = queries["query_id"].to_list(), queries["query"].to_list()
    matrix = np.vstack([vectors[text] for text in texts])
    runs = {name: dict(zip(ids, engine.search_many(texts, matrix, depth, mode, learned=False), strict=True)) for name, mode in FULL_MODES.items()}
    chosen = dict(rankers or {})
    if learned and engine.ranker is not None and not chosen:
        chosen["learned"] = engine.ranker
    kept = engine.ranker
    for name, ranker in chosen.items():
        engine.ranker = ranker
        runs[name] = dict(zip(ids, engine.search_many(texts, matrix, depth, "hybrid", learned=True), strict=True))
    engine.ranker = kept
    if cross_encoder_depth:
        item_ids = engine.items["item_id"].to_list()
        hybrid_rows = {q: np.asarray([engine.row_of(i) for i in runs["hybrid"][q]], dtype=np.int64) for q in ids}
        runs["cross-encoder"] = {
            q: [item_ids[row] for row in engine.cross_encoder_rerank(text, hybrid_rows[q], cross_encoder_depth).tolist()]
            for q, text in zip(ids, texts, strict=True)
        }
    return runs


def tune_hybrid_fusion(engine: SearchEngine, pairs: JudgedPairs, vectors: Mapping[str, np.ndarray], judgments: pl.DataFrame) -> FusionChoice:
    """Pick the hybrid's RRF k and lexical weight on judged queries (use validation ones) and set them on the engine (saved
    with its index). The objective is the hybrid's smaller margin over the better single retriever (BM25 or dense) in
    NDCG@10 of the two views, full-catalogue and condensed: fusion is for beating both lists in both views, and a mean
    of the two views would let the full-catalogue figures, which move ten times more with the weights, decide alone."""
    graded: dict[str, dict[str, float]] = {}
    texts: dict[str, str] = {}
    for query_id, query, item_id, grade in judgments.select("query_id", "query", "item_id", "grade").iter_rows():
        graded.setdefault(str(query_id), {})[item_id] = grade
        texts[str(query_id)] = query
    scored = [query_id for query_id, grades in graded.items() if max(grades.values()) >= 1]
    # Candidates and per-list orders are computed once; each grid point only re-fuses them.
    lists = engine.candidates([texts[q] for q in scored], np.vstack([vectors[texts[q]] for q in scored]), FULL_DEPTH)
    item_ids = engine.items["item_id"].to_list()
    column = {name: position for position, name in enumerate(pairs.names)}
    wanted = set(scored)
    condensed: list[tuple[str, list[str], np.ndarray, np.ndarray]] = []
    boundaries = np.flatnonzero(np.concatenate([[True], pairs.query_ids[1:] != pairs.query_ids[:-1], [True]]))
    for start, end in pairwise(boundaries):
        if str(pairs.query_ids[start]) in wanted:
            by_bm25, by_dense = (np.argsort(-pairs.features[start:end, column[name]], kind="stable") for name in (CORRECTED_BM25, "dense_cosine"))
            condensed.append((str(pairs.query_ids[start]), pairs.item_ids[start:end], by_bm25, by_dense))

    def full_ndcg(ranked: list[np.ndarray]) -> float:
        return float(np.mean([query_metrics([item_ids[row] for row in rows.tolist()], graded[q])["NDCG@10"] for q, rows in zip(scored, ranked, strict=True)]))

    def condensed_ndcg(orders: list[np.ndarray]) -> float:
        ranked = [([items[i] for i in order.tolist()], graded[q]) for (q, items, _, _), order in zip(condensed, orders, strict=True)]
        return float(np.mean([query_metrics(run, grades)["NDCG@10"] for run, grades in ranked]))

    best_full = max(full_ndcg([lexical for lexical, _ in lists]), full_ndcg([dense for _, dense in lists]))
    best_condensed = max(condensed_ndcg([by_bm25 for _, _, by_bm25, _ in condensed]), condensed_ndcg([by_dense for _, _, _, by_dense in condensed]))

    def objective(rrf_k: int, lexical_weight: float) -> float:
        full = full_ndcg([reciprocal_rank_fusion([lexical, dense], [lexical_weight, 1.0], rrf_k)[0][:FULL_DEPTH] for lexical, dense in lists])
        judged = condensed_ndcg([reciprocal_rank_fusion([by_bm25, by_dense], [lexical_weight, 1.0], rrf_k)[0] for _, _, by_bm25, by_dense in condensed])
        return min(full - best_full, judged - best_condensed)

    choice = tune_fusion(objective)
    engine.set_fusion(choice.rrf_k, choice.lexical_weight)
    return choice


def condensed_ndcg10(pairs: JudgedPairs, scores: np.ndarray) -> float:
    """Mean condensed NDCG@10 (graded gain) of judged pairs ordered by `scores` within each query (queries with a relevant item)."""
    judged = pl.DataFrame({"query_id": pairs.query_ids.astype(str), "item_id": pairs.item_ids, "grade": pairs.grades})
    run = condensed_runs(pairs, {"scores": np.asarray(scores)})["scores"]
    return float(evaluate_run(run, judged)["NDCG@10"].to_numpy().mean())


def _full_ndcg10_of_rankers(engine: SearchEngine, rankers: Sequence[LearnedRanker], judgments: pl.DataFrame, vectors: Mapping[str, np.ndarray]) -> list[float]:
    """Mean full-catalogue NDCG@10 of each ranker re-ordering the engine's fused top `depth` for the judged queries; the
    candidates and their features are computed once and scored by every ranker."""
    graded: dict[str, dict[str, float]] = {}
    texts: dict[str, str] = {}
    for query_id, query, item_id, grade in judgments.select("query_id", "query", "item_id", "grade").iter_rows():
        graded.setdefault(str(query_id), {})[item_id] = grade
        texts[str(query_id)] = query
    item_ids = engine.items["item_id"].to_list()
    builder = engine.ranking_features()
    totals = np.zeros(len(rankers))
    scored = [query_id for query_id, grades in graded.items() if max(grades.values()) >= 1]
    for query_id in scored:
        query, vector = texts[query_id], vectors[texts[query_id]]
        rows = np.asarray([hit.row for hit in engine.search(query, FULL_DEPTH, query_vector=vector, learned=False).hits], dtype=np.int64)
        if not len(rows):
            continue
        depth = max(ranker.meta.settings.depth for ranker in rankers)
        # The same features the engine's re-ranking computes (model scores when the rankers read them).
        features = builder.compute(query, rows[:depth], vector, engine.model_features(query, rows[:depth], rankers[0].features))
        for number, ranker in enumerate(rankers):
            depth = ranker.meta.settings.depth
            head = rows[:depth][np.argsort(-ranker.score(features[:depth]), kind="stable")]
            ranked = [item_ids[row] for row in np.concatenate([head, rows[depth:]]).tolist()]
            totals[number] += query_metrics(ranked, graded[query_id])["NDCG@10"]
    return (totals / max(len(scored), 1)).tolist()


def tune_ranker(
    engine: SearchEngine,
    train: JudgedPairs,
    validation: JudgedPairs,
    grid: Sequence[RankerSettings] = RANKER_GRID,
    judgments: pl.DataFrame | None = None,
    vectors: Mapping[str, np.ndarray] | None = None,
) -> tuple[LearnedRanker, list[float]]:
    """Train one ranker per settings of `grid` (each early-stopped on validation) and keep, on the engine, the best on the
    validation queries: by condensed NDCG@10 (graded gain), or, given those queries' `judgments` and query `vectors`, by the
    mean of condensed and full-catalogue NDCG@10 (a ranker must both order judged items and re-rank real candidates).
    Returns it and each grid point's objective; the best's condensed NDCG@10 is recorded in its meta."""
    if not grid:
        raise LongtailError("ranker tuning needs at least one settings in its grid")
    rankers = [fit_ranker(train, validation, settings) for settings in grid]
    condensed = [condensed_ndcg10(validation, ranker.score(validation.features)) for ranker in rankers]
    scores = condensed
    if judgments is not None and vectors is not None:
        full = _full_ndcg10_of_rankers(engine, rankers, judgments, vectors)
        scores = [(c + f) / 2.0 for c, f in zip(condensed, full, strict=True)]
    best = int(np.argmax(scores))
    # One yardstick for every objective: LambdaRank's own validation NDCG uses its training labels' gains.
    rankers[best].meta.validation_ndcg10 = condensed[best]
    engine.set_ranker(rankers[best])
    return rankers[best], scores


@dataclass
class CrossEncoderExamples:
    """Judged (query, indexed text) pairs of one judgment part with training targets in [0, 1]."""

    pairs: list[tuple[str, str]]
    targets: np.ndarray
    query_ids: list[str]
    item_ids: list[str]
    grades: np.ndarray


def cross_encoder_examples(items: pl.DataFrame, judgments: pl.DataFrame) -> CrossEncoderExamples:
    """The judged pairs whose item is in the catalogue, with the item's indexed text (what the cross-encoder reads at query
    time); targets are the raters' mean relevance (else the grade) scaled to [0, 1] by the judgments' own range."""
    target = "relevance" if "relevance" in judgments.columns else "grade"
    text_of = dict(zip(items["item_id"].to_list(), item_texts(items), strict=True))
    frame = judgments.filter(pl.col("item_id").is_in(list(text_of)))
    if frame.height == 0:
        raise LongtailError("none of the judged items is in the catalogue; give the catalogue the judgments refer to")
    values = frame[target].cast(pl.Float64).to_numpy()
    low, high = float(values.min()), float(values.max())
    targets = (values - low) / (high - low) if high > low else np.ones_like(values)
    return CrossEncoderExamples(
        [(query, text_of[item]) for query, item in zip(frame["query"].to_list(), frame["item_id"].to_list(), strict=True)],
        targets.astype(np.float32),
        [str(q) for q in frame["query_id"].to_list()],
        frame["item_id"].to_list(),
        frame["grade"].cast(pl.Float64).to_numpy(),
    )


def condensed_ndcg10_of(examples: CrossEncoderExamples, scores: np.ndarray, seed: int = 42) -> float:
    """Mean condensed NDCG@10 of each query's judged items ordered by `scores` (queries with a relevant item)."""
    judged = pl.DataFrame({"query_id": examples.query_ids, "item_id": examples.item_ids, "grade": examples.grades})
    tie_break = np.random.default_rng(seed).random(len(scores))
    positions: dict[str, list[int]] = {}
    for position, query_id in enumerate(examples.query_ids):
        positions.setdefault(query_id, []).append(position)
    run = {q: _order([examples.item_ids[i] for i in rows], scores[rows], tie_break[rows]) for q, rows in ((q, np.asarray(r)) for q, r in positions.items())}
    return float(evaluate_run(run, judged)["NDCG@10"].to_numpy().mean())


def _query_sample(examples: CrossEncoderExamples, queries: int, seed: int) -> CrossEncoderExamples:
    """The examples of at most `queries` randomly chosen queries (a cheaper validation set for frequent checks)."""
    distinct = list(dict.fromkeys(examples.query_ids))
    kept = set(np.random.default_rng(seed).permutation(distinct)[:queries].tolist()) if len(distinct) > queries else set(distinct)
    rows = [i for i, q in enumerate(examples.query_ids) if q in kept]
    return CrossEncoderExamples(
        [examples.pairs[i] for i in rows],
        examples.targets[rows],
        [examples.query_ids[i] for i in rows],
        [examples.item_ids[i] for i in rows],
        examples.grades[rows],
    )


@dataclass
class CrossFit:
    """Cross-encoders trained on folds of the training queries: their folders and reports, and each training pair's
    score from the model that did not see its query (what a ranker may train on without learning the model's overfit)."""

    directories: list[Path]
    reports: list[CrossEncoderReport]
    out_of_fold: dict[tuple[str, str], float]


def train_cross_encoders(
    train: CrossEncoderExamples,
    validation: CrossEncoderExamples,
    out_dir: str | Path,
    settings: CrossEncoderSettings | None = None,
    folds: int = 2,
    validation_queries: int = 400,
    seed: int = 42,
    quantised: bool = True,
    models: int | None = None,
) -> CrossFit:
    """Train `folds` cross-encoders, model k on every training query outside fold k, each early-stopped on condensed
    NDCG@10 of (a sample of) the validation queries; `out_dir/fold-k` holds model k, and fold 0's is the one to serve.
    Out-of-fold scores come from the scorer setting the index will use (`quantised`: dynamic int8). `models` < folds
    trains only the first models (a smaller budget): only those folds' queries get out-of-fold scores."""
    fold_of = query_folds(train.query_ids, folds, seed)
    sample = _query_sample(validation, validation_queries, seed)

    def validate(score: PairScorer) -> float:
        return condensed_ndcg10_of(sample, score(sample.pairs), seed)

    directories, reports = [], []
    out_of_fold: dict[tuple[str, str], float] = {}
    for fold in range(folds if models is None else min(models, folds)):
        inside = np.asarray([fold_of[q] != fold for q in train.query_ids])
        folder = Path(out_dir) / f"fold-{fold}"
        chosen = np.flatnonzero(inside)
        reports.append(
            train_cross_encoder([train.pairs[i] for i in chosen], train.targets[chosen], folder, settings, validate, [train.query_ids[i] for i in chosen])
        )
        directories.append(folder)
        held_out = np.flatnonzero(~inside)
        scores = CrossEncoderScorer(folder, quantised=quantised).score_pairs([train.pairs[i] for i in held_out])
        out_of_fold.update({(train.query_ids[i], train.item_ids[i]): float(s) for i, s in zip(held_out.tolist(), scores.tolist(), strict=True)})
    return CrossFit(directories, reports, out_of_fold)


def cross_fitted_scores(query_ids: Sequence[str], per_model: np.ndarray, fold_of: Mapping[str, int]) -> np.ndarray:
    """One score per pair from cross-fitted models (row k of `per_model`: model k, trained outside fold k): a training
    query's pairs take the model that did not see it, any other query's (validation, test) the mean of all models."""
    per_model = np.asarray(per_model, dtype=np.float64)
    fold = np.asarray([fold_of.get(str(query), -1) for query in query_ids], dtype=np.int64)
    if fold.max(initial=-1) >= len(per_model):
        raise LongtailError(f"a query's fold ({int(fold.max())}) has no model: {len(per_model)} cross-fitted models given")
    own = per_model[np.clip(fold, 0, None), np.arange(per_model.shape[1])]
    return np.where(fold >= 0, own, per_model.mean(axis=0)).astype(np.float32)


def query_segments(judgments: pl.DataFrame, vocabulary: Mapping[str, int], query_counts: Mapping[str, int] | None = None) -> dict[str, list[str]]:
    """Segment -> query ids: head/tail queries (by search count, else by number of judgments), misspelt (a word not in the
    catalogue's vocabulary), with numbers, long (≥ 5 words), and queries whose judged items have different grades."""
    per_query = judgments.group_by("query_id", maintain_order=True).agg(
        pl.col("query").first(), pl.len().alias("judged"), pl.col("grade").n_unique().alias("grades")
    )
    ids, texts = per_query["query_id"].to_list(), per_query["query"].to_list()
    frequency = [query_counts.get(t, 0) for t in texts] if query_counts is not None else per_query["judged"].to_list()
    ranked = sorted(range(len(ids)), key=lambda i: -frequency[i])
    head = {ids[i] for i in ranked[: max(1, int(len(ids) * HEAD_QUERY_SHARE))]}
    tokens = [tokenize(t) for t in texts]
    return {
        "head_queries": [q for q in ids if q in head],
        "tail_queries": [q for q in ids if q not in head],
        "misspelt_queries": [q for q, words in zip(ids, tokens, strict=True) if any(is_latin_word(w) and w not in vocabulary for w in words)],
        "number_queries": [q for q, t in zip(ids, texts, strict=True) if any(c.isdigit() for c in t)],
        "long_queries": [q for q, words in zip(ids, tokens, strict=True) if len(words) >= LONG_QUERY_WORDS],
        "mixed_grade_queries": [q for q, g in zip(ids, per_query["grades"].to_list(), strict=True) if g > 1],
    }


def rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(truth)) ** 2)))


def compare_runs(
    results: Mapping[str, RunResult], view: str, metric: str = "NDCG@10", baselines: Sequence[str] = ("bm25", "dense", "hybrid")
) -> dict[str, dict[str, dict[str, float]]]:
    """Run -> baseline -> paired bootstrap of the per-query `metric` difference (run minus baseline) in one view."""
    comparisons: dict[str, dict[str, dict[str, float]]] = {}
    for name, result in results.items():
        frame = getattr(result, view)
        if frame is None:
            continue
        for baseline in baselines:
            other = getattr(results[baseline], view) if baseline in results else None
            if baseline == name or other is None:
                continue
            candidate, base = aligned_scores(frame, other, metric)
            comparisons.setdefault(name, {})[baseline] = paired_comparison(base, candidate)
    return comparisons


def summarise_runs(results: Mapping[str, RunResult], segments: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The report's content (a JSON document): per run and view the means, segment means and CIs against the baselines."""
    runs: dict[str, dict[str, object]] = {}
    for name, result in results.items():
        entry: dict[str, object] = {}
        for view in ("condensed", "full"):
            frame = getattr(result, view)
            if frame is not None:
                entry[view] = summarize(frame, segments)
        if result.rmse is not None:
            entry["RMSE"] = result.rmse
        entry.update(result.extra)
        runs[name] = entry
    return {"runs": runs, "comparisons": {view: compare_runs(results, view) for view in ("condensed", "full")}}


def write_report(report: dict[str, Any], out_dir: str | Path, title: str, name: str = REPORT_NAME) -> tuple[Path, Path]:
    """Write `<name>.json` and `<name>.html` (tables and a chart of NDCG@10 per run) into a folder."""
    out = Path(out_dir)
    runs: dict[str, dict[str, Any]] = report["runs"]
    charts = []
    for view, label in (("condensed", "condensed (judged only)"), ("full", "full catalogue")):
        named = [(name, run[view]["metrics"]["NDCG@10"]) for name, run in runs.items() if view in run]
        if named:
            charts.append((f"NDCG@10, {label}", bar_chart([n for n, _ in named], [v for _, v in named], f"NDCG@10, {label}", "NDCG@10")))
    segment_names = sorted({s for run in runs.values() for view in ("condensed", "full") if view in run for s in run[view]["segments"]})
    context = {"title": title, "report": report, "runs": runs, "metrics": METRICS, "segment_names": segment_names, "charts": charts, "isnan": math.isnan}
    return write_report_pair(out / f"{name}.json", out / f"{name}.html", report, "search_evaluation.html", context)
