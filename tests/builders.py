"""Tiny canonical tables for tests: items and events from a few literal values, typed as in `longtail.data.schema`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from longtail.data.schema import EVENTS, ITEMS

START = datetime(2024, 1, 1, tzinfo=UTC)


def items(ids: Sequence[str], **columns: Sequence[object]) -> pl.DataFrame:
    """Items with these ids; the title defaults to the id, and every other column given is cast to its canonical type."""
    data = {"item_id": list(ids), "title": list(ids), **{name: list(values) for name, values in columns.items()}}
    return pl.DataFrame(data, schema={name: ITEMS.columns[name] for name in data})


def events(
    rows: Sequence[tuple[str, str | None, str]],
    at: Sequence[datetime | timedelta] | None = None,
    start: datetime = START,
    step: timedelta = timedelta(minutes=5),
) -> pl.DataFrame:
    """Canonical events from (user, item, event_type) rows at the given times or offsets from `start`, else `step` apart in row order."""
    times = [start + i * step for i in range(len(rows))] if at is None else [start + t if isinstance(t, timedelta) else t for t in at]
    if len(times) != len(rows):
        raise ValueError(f"{len(rows)} event rows but {len(times)} times")
    columns = ("user_id", "item_id", "event_type", "timestamp")
    return pl.DataFrame([(*row, when) for row, when in zip(rows, times, strict=True)], schema={name: EVENTS.columns[name] for name in columns}, orient="row")


def hashed_encoder(items: pl.DataFrame) -> Callable[[Sequence[str]], np.ndarray]:
    """Item text as a hashed bag of words: real text vectors without loading a transformer."""
    from sklearn.feature_extraction.text import HashingVectorizer

    from longtail.encode.item_text import texts_for

    hashing = HashingVectorizer(n_features=128, alternate_sign=False)
    return lambda item_ids: hashing.transform(texts_for(item_ids, items)).toarray().astype(np.float32)


def first_users(items: pl.DataFrame, events: pl.DataFrame, count: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The first `count` users by id with all their events, and only the items those events touch."""
    users = events["user_id"].unique().sort().head(count)
    kept = events.filter(pl.col("user_id").is_in(users.implode()))
    return items.filter(pl.col("item_id").is_in(kept["item_id"].implode())), kept


def batch_mapper(parts: int) -> Callable[..., pl.DataFrame]:
    """An in-process table mapper shaped like Spark's: `parts` batches (each group key's rows together), results in reverse batch order."""

    def mapper(table: pl.DataFrame, function: Callable[[pl.DataFrame], pl.DataFrame], output_schema: dict, group_key: str | None = None) -> pl.DataFrame:
        keys = table[group_key].hash(seed=1) if group_key else pl.Series(np.arange(table.height, dtype=np.uint64))
        batches = [table.filter((keys % parts) == part) for part in range(parts)]
        return pl.concat([function(batch).cast(pl.Schema(output_schema)) for batch in reversed(batches)])

    return mapper
