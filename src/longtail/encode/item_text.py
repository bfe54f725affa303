"""The one text each catalogue item is read as, by search indexing and the recommenders' text vectors alike."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import polars as pl

from longtail.core.config import EncodeConfig
from longtail.encode.encoder import TextEncoder
from longtail.encode.factory import build_encoder

# The order matters: encoders truncate long texts, so the most telling fields come first.
TEXT_FIELDS = ("title", "brand", "category", "description")
# S3-Rec attribute ids already appear in the title as "attrN" tokens; other attributes read as "key: value".
SKIPPED_ATTRIBUTES = frozenset({"attribute_ids"})
ItemEncoder = Callable[[list[str]], np.ndarray]


def _attribute_text(attributes: str | None) -> str | None:
    """'key: value. key: value' from an item's JSON attributes (None when it has none worth reading)."""
    parsed = json.loads(attributes) if attributes else {}
    parts = [f"{key}: {value}" for key, value in parsed.items() if key not in SKIPPED_ATTRIBUTES]
    return ". ".join(parts) or None


def item_texts(items: pl.DataFrame) -> list[str]:
    """One text per row: title, brand, category, description, then attributes, whichever are present, joined by '. '."""
    present = [pl.col(name).cast(pl.String) for name in TEXT_FIELDS if name in items.columns]
    if "attributes" in items.columns:
        present.append(pl.col("attributes").map_elements(_attribute_text, return_dtype=pl.String))
    # Empty strings count as missing, so no text holds ". ." gaps.
    parts = [pl.when(part.str.len_chars() > 0).then(part) for part in present]
    joined = items.select(pl.concat_str(parts, separator=". ", ignore_nulls=True).alias("text")) if parts else None
    return joined["text"].fill_null("").to_list() if joined is not None else [""] * items.height


def texts_for(item_ids: list[str], items: pl.DataFrame) -> list[str]:
    """The texts of `item_ids` in that order; items without a row or text read as "item <id>"."""
    texts = dict(zip(items["item_id"].to_list(), item_texts(items), strict=True))
    return [texts.get(item_id) or f"item {item_id}" for item_id in item_ids]


def encode_items(item_ids: list[str], items: pl.DataFrame, encoder: TextEncoder) -> np.ndarray:
    """(len(item_ids), dim) L2-normalised text vectors of `texts_for(item_ids, items)`."""
    return encoder.encode(texts_for(item_ids, items))


def catalogue_encoder(items: pl.DataFrame, settings: EncodeConfig) -> ItemEncoder:
    """item ids -> text vectors from the catalogue; the encoder is built on first use, so models that read no text load none."""
    built: list[TextEncoder] = []

    def encode(item_ids: list[str]) -> np.ndarray:
        if not built:
            built.append(build_encoder(settings))
        return encode_items(item_ids, items, built[0])

    return encode
