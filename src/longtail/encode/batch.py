"""Encoding as a pure batch step: ids and texts in, ids and float32 vectors out, on any executor."""

from __future__ import annotations

import numpy as np
import polars as pl

from longtail.core.config import EncodeConfig
from longtail.encode.encoder import TextEncoder
from longtail.encode.factory import build_encoder

VECTOR_COLUMN = "vector"
_LOADED: dict[str, TextEncoder] = {}


def _encoder(settings: EncodeConfig) -> TextEncoder:
    """Each worker process loads a model once and reuses it for every batch it gets."""
    key = settings.model_dump_json()
    if key not in _LOADED:
        # Workers run in parallel processes: one on-disk cache written by all of them at once would lose entries.
        _LOADED[key] = build_encoder(settings.model_copy(update={"cache_dir": None}))
    return _LOADED[key]


def encode_batch(batch: pl.DataFrame, settings: EncodeConfig) -> pl.DataFrame:
    """Vectors for a batch of (id, text) rows; vectors travel as raw float32 bytes so every engine can carry them."""
    ordered = batch.sort("id")
    vectors = _encoder(settings).encode(ordered["text"].to_list())
    return pl.DataFrame({"id": ordered["id"], VECTOR_COLUMN: [row.tobytes() for row in vectors]}, schema={"id": pl.String, VECTOR_COLUMN: pl.Binary})


def vectors_from_bytes(column: pl.Series) -> np.ndarray:
    """Stack a column of raw float32 vectors into a matrix."""
    return np.vstack([np.frombuffer(value, dtype=np.float32) for value in column.to_list()])
