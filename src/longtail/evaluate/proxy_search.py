"""A proxy search task from real catalogue text (known-item queries made of title words), never a relevance judgment set."""

from __future__ import annotations

import re

import numpy as np
import polars as pl

PROXY_LABEL = "proxy: known-item search, query = 2-4 words of one item's title, relevant = that item only"
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
# Words that say nothing about which item is meant; a query made of them would be unanswerable.
_STOPWORDS = frozenset(
    [
        "and",
        "the",
        "for",
        "with",
        "from",
        "pack",
        "set",
        "inch",
        "inches",
        "each",
        "per",
        "pcs",
        "piece",
        "pieces",
        "count",
        "size",
        "small",
        "large",
        "mini",
        "new",
        "our",
        "you",
        "your",
        "this",
        "that",
        "are",
        "not",
    ]
)


def known_item_queries(items: pl.DataFrame, n_queries: int, seed: int = 42, item_ids: list[str] | None = None) -> pl.DataFrame:
    """Queries in the judgments format: each keeps 2-4 content words of an item's title (in order); that item has grade 1."""
    rng = np.random.default_rng(seed)
    pool = items if item_ids is None else items.filter(pl.col("item_id").is_in(item_ids))
    rows: list[dict[str, object]] = []
    for position in rng.permutation(pool.height):
        if len(rows) == n_queries:
            break
        item_id, title = pool["item_id"][int(position)], pool["title"][int(position)] or ""
        words = list(dict.fromkeys(w for w in _WORD.findall(title) if w.lower() not in _STOPWORDS))
        if len(words) < 3:
            continue
        # Keep at most 60% of the words, so the query never simply repeats a short title.
        keep = int(rng.integers(2, min(4, max(2, int(len(words) * 0.6))) + 1))
        chosen = sorted(rng.choice(len(words), size=keep, replace=False))
        rows.append({"query_id": f"q{len(rows)}", "query": " ".join(words[i] for i in chosen).lower(), "item_id": item_id, "grade": 1.0})
    return pl.DataFrame(rows, schema={"query_id": pl.String, "query": pl.String, "item_id": pl.String, "grade": pl.Float64})
