"""The encode step: item text to vectors through the configured executor."""

from __future__ import annotations

from functools import partial

import numpy as np
import polars as pl

from longtail.core.config import EncodeConfig
from longtail.core.executors import TableMapper, map_in_process
from longtail.encode.batch import VECTOR_COLUMN, encode_batch, vectors_from_bytes
from longtail.encode.item_text import item_texts

ENCODED_SCHEMA = {"id": pl.String, VECTOR_COLUMN: pl.Binary}


def run_encode(items: pl.DataFrame, map_table: TableMapper = map_in_process, settings: EncodeConfig | None = None) -> tuple[list[str], np.ndarray]:
    """Item ids (sorted) and their L2-normalised vectors, from the encoder `settings` select (defaults when None)."""
    texts = pl.DataFrame({"id": items["item_id"], "text": item_texts(items)})
    encoded = map_table(texts, partial(encode_batch, settings=settings or EncodeConfig()), ENCODED_SCHEMA).sort("id")
    return encoded["id"].to_list(), vectors_from_bytes(encoded[VECTOR_COLUMN])
