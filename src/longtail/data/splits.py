"""Leave-one-out and global temporal splits of events into per-user histories and held-out targets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

import numpy as np
import polars as pl

from longtail.core.errors import LongtailError
from longtail.core.executors import OutputSchema, TableMapper, map_in_process

Stage = Literal["valid", "test"]
T = TypeVar("T")


@dataclass
class Split:
    """Items and users as integer indices; per user a time-ordered training history and held-out targets.

    At the validation stage a model reads `train` and is scored on `valid`; at the test stage it reads
    `train` followed by `valid` and is scored on `test`. No held-out item is ever part of `train`.
    `new_items` (inductive splits only) marks the items held out of every model input, seen only as test targets.
    """

    item_ids: list[str]
    user_ids: list[str]
    train: list[np.ndarray]
    valid: list[np.ndarray]
    test: list[np.ndarray]
    protocol: str
    new_items: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def histories(self, stage: Stage) -> list[np.ndarray]:
        """What each user's model input is at a stage: training items, plus the validation items at test."""
        if stage == "valid":
            return self.train
        return [np.concatenate([t, v]) for t, v in zip(self.train, self.valid, strict=True)]

    def targets(self, stage: Stage) -> list[np.ndarray]:
        """The held-out items each user is scored on at a stage."""
        return self.valid if stage == "valid" else self.test

    def subset(self, users: np.ndarray) -> Split:
        """The same catalogue with only the given users (by index), e.g. a quick look at a large set."""
        return Split(
            self.item_ids,
            _pick(self.user_ids, users),
            _pick(self.train, users),
            _pick(self.valid, users),
            _pick(self.test, users),
            self.protocol,
            self.new_items,
        )

    def train_counts(self) -> np.ndarray:
        """Training interactions per item (the popularity every segment and baseline uses)."""
        return np.bincount(np.concatenate(self.train), minlength=self.n_items) if self.train else np.zeros(self.n_items, np.int64)


def _pick(rows: list[T], users: np.ndarray) -> list[T]:
    """The entries of a per-user list for the given user indices."""
    return [rows[u] for u in users]


def _day(micros: float) -> str:
    """A microsecond UTC timestamp as its calendar day."""
    return f"{datetime.fromtimestamp(micros / 1e6, tz=UTC):%Y-%m-%d}"


SEQUENCE_ROWS_SCHEMA: OutputSchema = {"user_id": pl.String, "item": pl.List(pl.Int64), "time": pl.List(pl.Int64)}


def user_sequence_rows(batch: pl.DataFrame) -> pl.DataFrame:
    """Per user of the batch (user_id, item index, timestamp, input order) the items and times in time order; needs each user whole."""
    ordered = batch.sort(["user_id", "timestamp", "order"]).group_by("user_id", maintain_order=True)
    return ordered.agg(pl.col("item"), pl.col("timestamp").dt.epoch("us").alias("time"))


def _ordered_sequences(
    items: pl.DataFrame, events: pl.DataFrame, map_table: TableMapper = map_in_process
) -> tuple[list[str], list[str], list[np.ndarray], list[np.ndarray]]:
    """Per user the item indices and timestamps of their interactions in time order (input order breaks ties).

    The per-user ordering runs through `map_table` with each user's events together (in-process or on Spark);
    users come back sorted by id either way.
    """
    interactions = events.filter(pl.col("item_id").is_not_null()).with_row_index("order").with_columns(pl.col("order").cast(pl.Int64))
    catalogue = list(dict.fromkeys([*items["item_id"].to_list(), *interactions["item_id"].unique(maintain_order=True).to_list()]))
    index = pl.DataFrame({"item_id": catalogue, "item": np.arange(len(catalogue), dtype=np.int64)})
    indexed = interactions.join(index, on="item_id", how="left").select("user_id", "item", "timestamp", "order")
    grouped = map_table(indexed, user_sequence_rows, SEQUENCE_ROWS_SCHEMA, "user_id").sort("user_id")
    sequences = [np.asarray(s, dtype=np.int64) for s in grouped["item"].to_list()]
    times = [np.asarray(t, dtype=np.int64) for t in grouped["time"].to_list()]
    return catalogue, grouped["user_id"].to_list(), sequences, times


def leave_one_out_train(sequences: pl.Expr) -> pl.Expr:
    """The training part of leave-one-out sequences (list column): all but the last two items, or all when under three."""
    return pl.when(sequences.list.len() >= 3).then(sequences.list.head(sequences.list.len() - 2)).otherwise(sequences)


def leave_one_out(items: pl.DataFrame, events: pl.DataFrame, map_table: TableMapper = map_in_process) -> Split:
    """Last interaction per user = test, the one before = validation, the rest = training.

    Users with fewer than three interactions keep them all for training and are not evaluated.
    The per-user sequences are built through `map_table` (in-process by default).
    """
    catalogue, users, sequences, _ = _ordered_sequences(items, events, map_table)
    empty = np.zeros(0, dtype=np.int64)
    train, valid, test = [], [], []
    for sequence in sequences:
        if len(sequence) < 3:
            train.append(sequence)
            valid.append(empty)
            test.append(empty)
        else:
            train.append(sequence[:-2])
            valid.append(sequence[-2:-1])
            test.append(sequence[-1:])
    return Split(catalogue, users, train, valid, test, "loo")


def temporal_split(
    items: pl.DataFrame, events: pl.DataFrame, valid_share: float = 0.1, test_share: float = 0.1, map_table: TableMapper = map_in_process
) -> Split:
    """One global time cut: the latest `test_share` of interactions is test, the `valid_share` before it validation.

    Targets are the distinct items a user interacted with inside a window; training holds only events before
    the validation cut, so nothing from the future leaks into a model's input.
    """
    if not (valid_share > 0 and test_share > 0 and valid_share + test_share < 1):
        raise LongtailError("temporal split: valid_share and test_share must be positive and sum to less than 1")
    catalogue, users, sequences, times = _ordered_sequences(items, events, map_table)
    every_time = np.concatenate(times) if times else np.zeros(0, np.int64)
    if every_time.size == 0:
        raise LongtailError("temporal split: there are no interaction events to split")
    valid_cut, test_cut = np.quantile(every_time, [1 - valid_share - test_share, 1 - test_share], method="lower")
    train, valid, test = [], [], []
    for sequence, time in zip(sequences, times, strict=True):
        train.append(sequence[time < valid_cut])
        valid.append(np.unique(sequence[(time >= valid_cut) & (time < test_cut)]))
        test.append(np.unique(sequence[time >= test_cut]))
    protocol = f"temporal (valid from {_day(valid_cut)}, test from {_day(test_cut)})"
    return Split(catalogue, users, train, valid, test, protocol)


def hold_out_new_items(split: Split, share: float = 0.1, seed: int = 42) -> Split:
    """The inductive new-item split: a random `share` of the catalogue is removed from every training history and
    validation target (so from every model input) and kept only as test targets, which models meet as new items."""
    if not 0 < share < 1:
        raise LongtailError(f"new-item split: share must be between 0 and 1, got {share}")
    new = np.zeros(split.n_items, dtype=bool)
    new[np.random.default_rng(seed).choice(split.n_items, size=round(share * split.n_items), replace=False)] = True
    train = [history[~new[history]] for history in split.train]
    valid = [targets[~new[targets]] for targets in split.valid]
    return Split(split.item_ids, split.user_ids, train, valid, split.test, f"{split.protocol} + {share:.0%} new items", new)


def split_events(items: pl.DataFrame, events: pl.DataFrame, protocol: Literal["loo", "temporal"] = "loo", map_table: TableMapper = map_in_process) -> Split:
    """Split by protocol name, the per-user sequences built through `map_table`."""
    if protocol == "loo":
        return leave_one_out(items, events, map_table)
    if protocol == "temporal":
        return temporal_split(items, events, map_table=map_table)
    raise LongtailError(f"unknown split protocol '{protocol}'; use loo or temporal")


def user_sequences(item_ids: list[str], events: pl.DataFrame) -> tuple[list[str], list[np.ndarray]]:
    """Per user the time-ordered item indices of their interactions, indexing `item_ids` (which must hold every item)."""
    catalogue, users, sequences, _ = _ordered_sequences(pl.DataFrame({"item_id": item_ids}), events)
    if len(catalogue) != len(item_ids):
        raise LongtailError(f"{len(catalogue) - len(item_ids)} event item(s) are missing from the catalogue")
    return users, sequences
