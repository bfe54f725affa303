"""Search metrics (NDCG@10, MRR, Recall@100) on graded judgments, per query and per query segment."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from longtail.core.errors import InputDataError
from longtail.data.loaders import INVALID_FIELDS, read_raw, to_canonical
from longtail.data.schema import JUDGMENTS

METRICS = ("NDCG@10", "MRR", "Recall@100")
RELEVANCE = "relevance"
HEAD_SHARE = 0.2
TORSO_SHARE = 0.3


def load_judgments(path: str | Path, mapping: dict[str, str] | None = None) -> pl.DataFrame:
    """Read judgments (query_id, query, item_id, grade, and `relevance` when present) from CSV/Parquet/JSONL; a missing
    query_id becomes the query text."""
    raw = read_raw(path)
    table = to_canonical(raw, JUDGMENTS, path, mapping)
    bad = table.filter(pl.col(INVALID_FIELDS) != "")
    if bad.height:
        raise InputDataError(path, f"unparseable values: {bad['_invalid_values'][0]}", row=int(bad["source_row"][0]))
    if table["grade"].null_count():
        row = int(table.filter(pl.col("grade").is_null())["source_row"][0])
        raise InputDataError(path, "every judgment needs a grade", row=row, column="grade")
    columns = [pl.coalesce("query_id", "query").alias("query_id"), "query", "item_id", "grade"]
    relevance = next((source for source, target in (mapping or {}).items() if target == RELEVANCE), RELEVANCE)
    if relevance in raw.columns:
        # The raters' mean score, when the file has it, is what relevance regressors are scored against.
        table = table.with_columns(raw[relevance].cast(pl.Float64, strict=False).alias(RELEVANCE))
        columns.append(RELEVANCE)
    return table.select(columns)


def query_metrics(ranked: Sequence[str], grades: Mapping[str, float], min_relevant_grade: float = 1.0) -> dict[str, float]:
    """NDCG@10 (gain 2^grade - 1), reciprocal rank of the first relevant item, and Recall@100 for one query."""
    relevant = {item for item, grade in grades.items() if grade >= min_relevant_grade}
    dcg = sum((2.0 ** grades.get(item, 0.0) - 1.0) / math.log2(rank + 2) for rank, item in enumerate(ranked[:10]))
    ideal = sorted(grades.values(), reverse=True)[:10]
    idcg = sum((2.0**grade - 1.0) / math.log2(rank + 2) for rank, grade in enumerate(ideal))
    first = next((rank for rank, item in enumerate(ranked, start=1) if item in relevant), None)
    return {
        "NDCG@10": dcg / idcg if idcg > 0 else 0.0,
        "MRR": 1.0 / first if first else 0.0,
        "Recall@100": len(relevant & set(ranked[:100])) / len(relevant) if relevant else 0.0,
    }


def evaluate_run(run: Mapping[str, Sequence[str]], judgments: pl.DataFrame, min_relevant_grade: float = 1.0) -> pl.DataFrame:
    """Per-query metrics for a run (query_id -> ranked item ids); queries without a relevant item are left out."""
    grades: dict[str, dict[str, float]] = {}
    for query_id, item_id, grade in judgments.select("query_id", "item_id", "grade").iter_rows():
        grades.setdefault(query_id, {})[item_id] = grade
    rows = []
    for query_id, judged in grades.items():
        if max(judged.values()) < min_relevant_grade:
            continue
        rows.append({"query_id": query_id, **query_metrics(list(run.get(query_id, [])), judged, min_relevant_grade)})
    return pl.DataFrame(rows, schema={"query_id": pl.String, **{m: pl.Float64 for m in METRICS}})


def popularity_tiers(popularity: Mapping[str, int]) -> dict[str, str]:
    """Items ranked by interactions: the top 20% are head, the next 30% torso, the rest (and unseen items) tail."""
    ranked = sorted(popularity, key=lambda item: -popularity[item])
    head_end = int(len(ranked) * HEAD_SHARE)
    torso_end = head_end + int(len(ranked) * TORSO_SHARE)
    return {item: "head" if i < head_end else "torso" if i < torso_end else "tail" for i, item in enumerate(ranked)}


def query_segments(
    judgments: pl.DataFrame,
    item_popularity: Mapping[str, int] | None = None,
    query_counts: Mapping[str, int] | None = None,
    min_relevant_grade: float = 1.0,
) -> dict[str, list[str]]:
    """Segment name -> query ids: head/tail queries by search frequency; head/torso/tail-item queries by the most popular relevant item."""
    segments: dict[str, list[str]] = {}
    query_ids = judgments["query_id"].unique(maintain_order=True).to_list()
    if query_counts is not None:
        text_of = dict(zip(judgments["query_id"].to_list(), judgments["query"].to_list(), strict=True))
        ranked = sorted(query_ids, key=lambda q: -query_counts.get(text_of[q], 0))
        head = set(ranked[: max(1, int(len(ranked) * HEAD_SHARE))])
        segments["head_queries"] = [q for q in query_ids if q in head]
        segments["tail_queries"] = [q for q in query_ids if q not in head]
    if item_popularity is not None:
        tiers = popularity_tiers(item_popularity)
        order = {"head": 0, "torso": 1, "tail": 2}
        relevant = judgments.filter(pl.col("grade") >= min_relevant_grade)
        best: dict[str, str] = {}
        for query_id, item_id in relevant.select("query_id", "item_id").iter_rows():
            tier = tiers.get(item_id, "tail")
            if query_id not in best or order[tier] < order[best[query_id]]:
                best[query_id] = tier
        for tier in order:
            segments[f"{tier}_item_queries"] = [q for q in query_ids if best.get(q) == tier]
    return segments


def _mean(column: pl.Series) -> float:
    """The mean of a numeric metric column with at least one value."""
    value = column.mean()
    assert isinstance(value, int | float)
    return float(value)


def summarize(per_query: pl.DataFrame, segments: Mapping[str, Sequence[str]] | None = None) -> dict[str, object]:
    """Mean metrics over all queries and within each segment, with the number of queries behind each mean."""

    def means(frame: pl.DataFrame) -> dict[str, float]:
        return {metric: _mean(frame[metric]) if frame.height else float("nan") for metric in METRICS}

    by_segment: dict[str, dict[str, float]] = {}
    result: dict[str, object] = {"queries": per_query.height, "metrics": means(per_query), "segments": by_segment}
    for name, members in (segments or {}).items():
        subset = per_query.filter(pl.col("query_id").is_in(list(members)))
        by_segment[name] = {"queries": subset.height, **means(subset)}
    return result


def aligned_scores(first: pl.DataFrame, second: pl.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-query values of a metric for two runs over the same queries, in the same order (for paired tests)."""
    joined = first.select("query_id", metric).join(second.select("query_id", metric), on="query_id", suffix="_b", maintain_order="left")
    return joined[metric].to_numpy(), joined[f"{metric}_b"].to_numpy()
