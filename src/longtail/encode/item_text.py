"""Renders each catalogue item as one text and encodes it into the vectors that text-initialised models use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from longtail.encode.encoder import EmbeddingCache, TextEncoder, load_encoder


def render_item_text(items: pl.DataFrame) -> dict[str, str]:
    """item_id -> "title. category. brand. key: value ..." from whichever of those fields an item has."""
    texts = {}
    for row in items.iter_rows(named=True):
        parts = [row.get(name) for name in ("title", "category", "brand")]
        attributes = json.loads(row["attributes"]) if row.get("attributes") else {}
        # S3-Rec attribute ids already appear in the title as "attrN" tokens; other attributes read as "key: value"
        parts += [f"{key}: {value}" for key, value in attributes.items() if key != "attribute_ids"]
        texts[row["item_id"]] = ". ".join(str(part) for part in parts if part)
    return texts


def encode_items(item_ids: list[str], items: pl.DataFrame, cache_dir: str | Path, encoder: TextEncoder | None = None) -> np.ndarray:
    """(len(item_ids), dim) L2-normalised text vectors in the given order; items without a row get their id as text."""
    texts = render_item_text(items)
    cache = EmbeddingCache(cache_dir, encoder or load_encoder())
    return cache.encode([texts.get(item_id) or f"item {item_id}" for item_id in item_ids], batch_size=128)
