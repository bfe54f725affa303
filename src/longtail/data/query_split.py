"""A seeded split of relevance judgments by query into train / validation / test, so no query is in two parts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from longtail.core.errors import LongtailError

PARTS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)


def split_by_query(judgments: pl.DataFrame, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, seed: int = 42) -> dict[str, pl.DataFrame]:
    """Each part's judgments: distinct query ids are shuffled with `seed` and cut by `fractions` (train, validation, test)."""
    if "query_id" not in judgments.columns:
        raise LongtailError("splitting judgments by query needs a query_id column")
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise LongtailError(f"split fractions must be three non-negative shares summing to 1, got {fractions}")
    # Sorted first, so the same file gives the same split whatever its row order.
    queries = np.asarray(sorted(judgments["query_id"].unique().to_list()), dtype=object)
    order = np.random.default_rng(seed).permutation(len(queries))
    train_end = round(fractions[0] * len(queries))
    validation_end = train_end + round(fractions[1] * len(queries))
    cuts = {"train": order[:train_end], "validation": order[train_end:validation_end], "test": order[validation_end:]}
    return {part: judgments.filter(pl.col("query_id").is_in(queries[rows].tolist())) for part, rows in cuts.items()}


def query_folds(query_ids: Sequence[str], folds: int, seed: int = 42) -> dict[str, int]:
    """Query id -> fold (0 .. folds-1): the distinct ids, in first-seen order, shuffled with `seed` and dealt round-robin,
    so every model cross-fitted on the same training queries (cross-encoders, fine-tuned encoders) shares the folds."""
    if folds < 2:
        raise LongtailError(f"cross-fitting needs at least 2 folds, got {folds}")
    distinct = list(dict.fromkeys(query_ids))
    return {query: number % folds for number, query in enumerate(np.random.default_rng(seed).permutation(distinct).tolist())}


def write_split(parts: dict[str, pl.DataFrame], out_dir: str | Path) -> dict[str, Path]:
    """Write each part as `<part>.csv` in a folder; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, frame in parts.items():
        paths[part] = out / f"{part}.csv"
        frame.write_csv(paths[part])
    return paths
