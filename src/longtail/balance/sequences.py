"""Balancing components over behaviour sequences: inverse-popularity weights, tail over-sampling, head under-sampling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from longtail.balance.component import Component, as_training_table, register
from longtail.core.errors import LongtailError
from longtail.core.executors import TableMapper, map_in_process
from longtail.data.columns import MASKED, SYNTHETIC, WEIGHT
from longtail.data.segments import HEAD, TAIL, TORSO, item_segments

USER, ITEMS = "user", "items"
BUCKETS = (HEAD, TORSO, TAIL)


def sequence_table(histories: Sequence[np.ndarray]) -> pl.DataFrame:
    """One training row per user with a history: `user` (index into the split), `items` (item indices in time order),
    synthetic, weight. Users without training items (possible under a temporal split) have nothing to learn from."""
    table = pl.DataFrame(
        {USER: np.arange(len(histories), dtype=np.int64), ITEMS: [np.asarray(h, dtype=np.int64) for h in histories]},
        schema={USER: pl.Int64, ITEMS: pl.List(pl.Int64)},
    )
    return as_training_table(table.filter(pl.col(ITEMS).list.len() > 0))


def table_histories(table: pl.DataFrame) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The rows as model histories, and their loss weights (None when every weight is 1, the unweighted model)."""
    histories = [np.asarray(items, dtype=np.int64) for items in table[ITEMS].to_list()]
    weights = table[WEIGHT].to_numpy().astype(np.float64)
    return histories, None if np.all(weights == 1.0) else weights


ITEM_COUNTS_SCHEMA = {"item": pl.Int64, "count": pl.Int64}


def item_count_rows(batch: pl.DataFrame) -> pl.DataFrame:
    """Interactions per item in a batch's original (non-synthetic) rows; batches' rows add up to the table's."""
    items = batch.filter(~pl.col(SYNTHETIC)).select(pl.col(ITEMS).alias("item")).explode("item").drop_nulls()
    return items.filter(pl.col("item") != MASKED).group_by("item").agg(pl.len().cast(pl.Int64).alias("count"))


def item_counts(table: pl.DataFrame, map_table: TableMapper = map_in_process) -> np.ndarray:
    """Interactions per item in the original (non-synthetic) rows, indexed up to the largest item index present."""
    rows = map_table(table.select(ITEMS, SYNTHETIC), item_count_rows, ITEM_COUNTS_SCHEMA).group_by("item").agg(pl.col("count").sum())
    present = rows["item"].to_numpy()
    counts = np.zeros(int(present.max()) + 1 if present.size else 0, dtype=np.int64)
    counts[present] = rows["count"].to_numpy()
    return counts


def last_items(table: pl.DataFrame) -> np.ndarray:
    """Each row's newest unmasked item: the next-item target its final position trains on."""
    return table.select(pl.col(ITEMS).list.eval(pl.element().filter(pl.element() != MASKED)).list.last()).to_series().to_numpy()


def last_item_buckets(
    table: pl.DataFrame, head_item_share: float = 0.2, tail_interaction_share: float = 0.2, map_table: TableMapper = map_in_process
) -> np.ndarray:
    """head / torso / tail of each row's last item, with the evaluation's segment rule over the table's own popularity."""
    labels = item_segments(item_counts(table, map_table), head_item_share, tail_interaction_share)
    return labels[last_items(table)]


def _copies(table: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    """Duplicates of the given rows, marked synthetic (a component's made-up rows)."""
    return table[rows].with_columns(pl.lit(True).alias(SYNTHETIC))


class _PopularityComponent(Component):
    """A sequence component whose one table-wide statistic is item popularity (item_counts), which a mapper can count."""

    def apply(self, table: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
        return self.apply_mapped(table, rng, map_in_process)


@register
class SequenceWeights(_PopularityComponent):
    """Keep every sequence, but weight its loss by popularity(last item) ** -exponent (weights average 1)."""

    name = "inverse-popularity-weights"

    def __init__(self, exponent: float = 0.5) -> None:
        if exponent < 0:
            raise LongtailError("inverse-popularity-weights: exponent must be >= 0")
        self.exponent = exponent

    def apply_mapped(self, table: pl.DataFrame, rng: np.random.Generator, map_table: TableMapper) -> pl.DataFrame:
        popularity = item_counts(table, map_table)[last_items(table)].astype(np.float64)
        factor = np.maximum(popularity, 1.0) ** -self.exponent
        return table.with_columns((pl.col(WEIGHT) * pl.Series(factor / factor.mean())).alias(WEIGHT))


@register
class TailOverSampling(_PopularityComponent):
    """Copy sequences whose last item is in a smaller popularity bucket until that bucket has `ratio` x the largest's rows.

    Buckets are the evaluation segments (head / torso / tail) of the last item. Only the buckets named in
    `buckets` grow; copies are synthetic. ratio 1 balances them with the largest bucket.
    """

    name = "tail-oversampling"

    def __init__(self, ratio: float = 1.0, buckets: Sequence[str] = (TAIL,), head_item_share: float = 0.2, tail_interaction_share: float = 0.2) -> None:
        unknown = set(buckets) - set(BUCKETS)
        if unknown or not 0 < ratio <= 1:
            raise LongtailError(f"tail-oversampling: buckets must be among {BUCKETS} (got {sorted(unknown)}) and 0 < ratio <= 1")
        self.ratio = ratio
        self.buckets = list(buckets)
        self.shares = (head_item_share, tail_interaction_share)

    def targets(self, table: pl.DataFrame, labels: np.ndarray | None = None) -> dict[str, int]:
        """Rows each bucket has after over-sampling (`labels`: each row's bucket, when already known)."""
        labels = last_item_buckets(table, *self.shares) if labels is None else labels
        counts = {bucket: int(np.sum(labels == bucket)) for bucket in BUCKETS}
        goal = round(self.ratio * max(counts.values()))
        return {bucket: max(count, goal) if bucket in self.buckets and count else count for bucket, count in counts.items()}

    def apply_mapped(self, table: pl.DataFrame, rng: np.random.Generator, map_table: TableMapper) -> pl.DataFrame:
        labels = last_item_buckets(table, *self.shares, map_table=map_table)
        extra = []
        for bucket, goal in self.targets(table, labels).items():
            members = np.flatnonzero(labels == bucket)
            if goal > len(members):
                extra.append(rng.choice(members, size=goal - len(members), replace=True))
        rows = np.concatenate(extra) if extra else np.zeros(0, dtype=np.int64)
        return pl.concat([table, _copies(table, rows)])


@register
class HeadUnderSampling(_PopularityComponent):
    """Drop randomly chosen head-dominated sequences until they make up at most `max_share` of the rows.

    A sequence is head-dominated when at least `head_fraction` of its items are head items.
    """

    name = "head-undersampling"

    def __init__(self, max_share: float = 0.3, head_fraction: float = 0.5, head_item_share: float = 0.2, tail_interaction_share: float = 0.2) -> None:
        if not (0 <= max_share < 1 and 0 < head_fraction <= 1):
            raise LongtailError("head-undersampling: need 0 <= max_share < 1 and 0 < head_fraction <= 1")
        self.max_share = max_share
        self.head_fraction = head_fraction
        self.shares = (head_item_share, tail_interaction_share)

    def head_dominated(self, table: pl.DataFrame, map_table: TableMapper = map_in_process) -> np.ndarray:
        """Whether each row counts as head-dominated."""
        is_head = item_segments(item_counts(table, map_table), *self.shares) == HEAD
        fractions = [float(np.mean(is_head[items[items != MASKED]])) for items in map(np.asarray, table[ITEMS].to_list())]
        return np.asarray(fractions) >= self.head_fraction

    def apply_mapped(self, table: pl.DataFrame, rng: np.random.Generator, map_table: TableMapper) -> pl.DataFrame:
        dominated = np.flatnonzero(self.head_dominated(table, map_table))
        others = len(table) - len(dominated)
        # the largest k with k / (others + k) <= max_share
        keep = min(len(dominated), int(np.floor(self.max_share * others / (1 - self.max_share))))
        dropped = rng.choice(dominated, size=len(dominated) - keep, replace=False)
        return table.filter(~pl.Series(np.isin(np.arange(len(table)), dropped)))


def check_training_only(table: pl.DataFrame, train: Sequence[np.ndarray]) -> None:
    """Raise if any row holds an item outside its user's training history: held-out items must stay out of training."""
    rows = table.select(pl.col(USER), pl.col(ITEMS).alias("item")).explode("item").filter(pl.col("item") != MASKED)
    allowed = sequence_table(train).select(pl.col(USER), pl.col(ITEMS).alias("item")).explode("item").unique()
    leaked = rows.join(allowed, on=[USER, "item"], how="anti")
    if len(leaked):
        first = leaked.row(0, named=True)
        raise LongtailError(
            f"{len(leaked)} training positions hold items outside their user's training history "
            f"(e.g. user {first[USER]}, item {first['item']}): validation/test items must never enter training"
        )
