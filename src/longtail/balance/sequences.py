"""Balancing components over behaviour sequences: inverse-popularity weights, tail over-sampling, head under-sampling.

Their statistics (item popularity, rows per last item) are counted batch by batch and their row decisions are made
per row (balance.rows), so they run per partition through any table mapper."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from longtail.balance.component import Component, as_training_table, register
from longtail.balance.rows import RowDraws, component_stream, keep_with_probability, map_rows, repeat
from longtail.core.errors import LongtailError
from longtail.core.executors import Rows, RowsT, TableMapper, map_in_process
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


def item_counts(table: Rows, map_table: TableMapper = map_in_process) -> np.ndarray:
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


LAST_ITEM_COUNTS_SCHEMA = {"item": pl.Int64, "rows": pl.Int64}


def last_item_count_rows(batch: pl.DataFrame) -> pl.DataFrame:
    """Rows per last item in a batch (every row, synthetic ones too); batches' rows add up to the table's."""
    return pl.DataFrame({"item": last_items(batch)}, schema={"item": pl.Int64}).group_by("item").agg(pl.len().cast(pl.Int64).alias("rows"))


def last_item_counts(table: Rows, map_table: TableMapper = map_in_process) -> tuple[np.ndarray, np.ndarray]:
    """The last items present (ascending) and how many rows end in each, counted batch by batch through `map_table`."""
    rows = map_table(table.select(ITEMS), last_item_count_rows, LAST_ITEM_COUNTS_SCHEMA).group_by("item").agg(pl.col("rows").sum()).sort("item")
    return rows["item"].to_numpy(), rows["rows"].to_numpy()


@register
class SequenceWeights(Component):
    """Keep every sequence, but weight its loss by popularity(last item) ** -exponent (weights average 1)."""

    name = "inverse-popularity-weights"

    def __init__(self, exponent: float = 0.5) -> None:
        if exponent < 0:
            raise LongtailError("inverse-popularity-weights: exponent must be >= 0")
        self.exponent = exponent

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        factor = np.maximum(item_counts(table, map_table).astype(np.float64), 1.0) ** -self.exponent
        items, rows = last_item_counts(table, map_table)
        # the mean over rows from exact per-item row counts, summed in item order: the same bits however the table is split
        mean = float(np.sum(rows * factor[items])) / max(table.height, 1)

        def reweight(batch: pl.DataFrame, draws: RowDraws) -> pl.DataFrame:
            scaled = batch.with_columns((pl.col(WEIGHT) * pl.Series(factor[last_items(batch)] / mean)).alias(WEIGHT))
            return repeat(scaled, np.ones(batch.height, dtype=np.int64))

        return map_rows(table, reweight, map_table, component_stream(rng, self.name))


@register
class TailOverSampling(Component):
    """Copy sequences whose last item is in a smaller popularity bucket until that bucket has `ratio` x the largest's rows.

    Buckets are the evaluation segments (head / torso / tail) of the last item. Only the buckets named in
    `buckets` grow; copies are synthetic. ratio 1 balances them with the largest bucket. A bucket that needs
    r copies per row on average gives every row floor(r) copies and one more with probability r - floor(r),
    decided row by row, so the bucket reaches its target in expectation.
    """

    name = "tail-oversampling"

    def __init__(self, ratio: float = 1.0, buckets: Sequence[str] = (TAIL,), head_item_share: float = 0.2, tail_interaction_share: float = 0.2) -> None:
        unknown = set(buckets) - set(BUCKETS)
        if unknown or not 0 < ratio <= 1:
            raise LongtailError(f"tail-oversampling: buckets must be among {BUCKETS} (got {sorted(unknown)}) and 0 < ratio <= 1")
        self.ratio = ratio
        self.buckets = list(buckets)
        self.shares = (head_item_share, tail_interaction_share)

    def targets(self, table: Rows, map_table: TableMapper = map_in_process) -> dict[str, int]:
        """Rows each bucket is to have after over-sampling (in expectation)."""
        return self._targets(self._bucket_rows(self._segments(table, map_table), table, map_table))

    def _segments(self, table: Rows, map_table: TableMapper) -> np.ndarray:
        return item_segments(item_counts(table, map_table), *self.shares)

    def _bucket_rows(self, segments: np.ndarray, table: Rows, map_table: TableMapper) -> dict[str, int]:
        items, rows = last_item_counts(table, map_table)
        return {bucket: int(rows[segments[items] == bucket].sum()) for bucket in BUCKETS}

    def _targets(self, counts: dict[str, int]) -> dict[str, int]:
        goal = round(self.ratio * max(counts.values()))
        return {bucket: max(count, goal) if bucket in self.buckets and count else count for bucket, count in counts.items()}

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        segments = self._segments(table, map_table)
        counts = self._bucket_rows(segments, table, map_table)
        extra = {bucket: goal / counts[bucket] - 1.0 for bucket, goal in self._targets(counts).items() if counts[bucket]}

        def oversample(batch: pl.DataFrame, draws: RowDraws) -> pl.DataFrame:
            labels = segments[last_items(batch)]
            mean = np.zeros(batch.height, dtype=np.float64)
            for bucket, rate in extra.items():
                mean[labels == bucket] = rate
            whole = np.floor(mean)
            return repeat(batch, 1 + whole.astype(np.int64) + (draws.uniform() < mean - whole))

        return map_rows(table, oversample, map_table, component_stream(rng, self.name))


@register
class HeadUnderSampling(Component):
    """Drop randomly chosen head-dominated sequences until they make up at most `max_share` of the rows (in expectation:
    each head-dominated row is kept with the same probability, decided row by row).

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
        return self._dominated(table, item_segments(item_counts(table, map_table), *self.shares) == HEAD)

    def _dominated(self, batch: pl.DataFrame, is_head: np.ndarray) -> np.ndarray:
        fractions = [float(np.mean(is_head[items[items != MASKED]])) for items in map(np.asarray, batch[ITEMS].to_list())]
        return np.asarray(fractions, dtype=np.float64) >= self.head_fraction

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        is_head = item_segments(item_counts(table, map_table), *self.shares) == HEAD
        counted = map_table(table.select(ITEMS), lambda batch: pl.DataFrame({"rows": [int(self._dominated(batch, is_head).sum())]}), {"rows": pl.Int64})
        dominated = int(counted["rows"].sum())
        # the largest k with k / (others + k) <= max_share, as the expected number of head-dominated rows kept
        keep = min(dominated, int(np.floor(self.max_share * (table.height - dominated) / (1 - self.max_share))))
        share = keep / dominated if dominated else 1.0

        def undersample(batch: pl.DataFrame, draws: RowDraws) -> pl.DataFrame:
            return keep_with_probability(batch, np.where(self._dominated(batch, is_head), share, 1.0), draws)

        return map_rows(table, undersample, map_table, component_stream(rng, self.name))


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
