"""Encoding as a pure batch step: ids and texts in, ids and float32 vectors out, on any executor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from longtail.encode.encoder import DEFAULT_ENCODER, TextEncoder, load_encoder

VECTOR_COLUMN = "vector"
_LOADED: dict[tuple[str, str | None], TextEncoder] = {}


def _encoder(name: str, model_path: str | None) -> TextEncoder:
    """Each worker process loads a model once and reuses it for every batch it gets."""
    key = (name, model_path)
    if key not in _LOADED:
        _LOADED[key] = load_encoder(name, Path(model_path) if model_path else None)
    return _LOADED[key]


def encode_batch(batch: pl.DataFrame, encoder_name: str = DEFAULT_ENCODER, model_path: str | None = None) -> pl.DataFrame:
    """Vectors for a batch of (id, text) rows; vectors travel as raw float32 bytes so every engine can carry them."""
    ordered = batch.sort("id")
    vectors = _encoder(encoder_name, model_path).encode(ordered["text"].to_list())
    return pl.DataFrame({"id": ordered["id"], VECTOR_COLUMN: [row.tobytes() for row in vectors]}, schema={"id": pl.String, VECTOR_COLUMN: pl.Binary})


def vectors_from_bytes(column: pl.Series) -> np.ndarray:
    """Stack a column of raw float32 vectors into a matrix."""
    return np.vstack([np.frombuffer(value, dtype=np.float32) for value in column.to_list()])
