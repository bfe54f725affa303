"""Catalogue-wide item checks as Spark jobs: near-duplicates (the in-process MinHash banding) and per-category price outliers (window functions)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from longtail.core.config import QualityConfig
from longtail.data.schema import SOURCE_ROW
from longtail.pipeline.spark import conform, spark_ddl
from longtail.quality import checks, duplicates

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

TEXTS_SCHEMA = {"position": pl.Int64, "compact": pl.String}
BUCKETS_SCHEMA = {"position": pl.Int64, "band": pl.Int32, "key": pl.Int64}
MATCHES_SCHEMA = {"later": pl.Int64, "earlier": pl.Int64, "similarity": pl.Float64}
MEDIANS_SCHEMA = {SOURCE_ROW: pl.Int64, "price": pl.Float64, "category_median": pl.Float64}


def _band_rows(batches: Iterator[pd.DataFrame], shingle_size: int, seed: int) -> Iterator[pd.DataFrame]:
    """Worker side: MinHash signatures of a batch of texts, as one (position, band, bucket key) row per band."""
    for batch in batches:
        frame = conform(pl.from_pandas(batch), TEXTS_SCHEMA)
        hashes, counts = duplicates.shingle_hashes(frame["compact"].to_list(), shingle_size)
        present = counts > 0
        if not present.any():
            continue
        keys = duplicates.band_keys(duplicates.minhash_signatures(hashes, counts[present], seed))
        positions = frame["position"].to_numpy()[present]
        yield pl.DataFrame(
            {
                "position": np.repeat(positions, duplicates.BANDS),
                "band": np.tile(np.arange(duplicates.BANDS, dtype=np.int32), positions.size),
                "key": keys.ravel().view(np.int64),  # Spark has no unsigned 64-bit type; equality is all that matters
            }
        ).to_pandas()


def _verify_pairs(batches: Iterator[pd.DataFrame], shingle_size: int, threshold: float) -> Iterator[pd.DataFrame]:
    """Worker side: the exact shingle Jaccard of candidate pairs, keeping those at or above the threshold."""
    for batch in batches:
        later, earlier = batch["later"].to_numpy(), batch["earlier"].to_numpy()
        similarity = np.array(
            [
                len(a & b) / len(a | b)
                for a, b in (
                    (duplicates.shingles(x, shingle_size), duplicates.shingles(y, shingle_size))
                    for x, y in zip(batch["later_text"], batch["earlier_text"], strict=True)
                )
            ],
            dtype=np.float64,
        )
        keep = similarity >= threshold
        yield pl.DataFrame({"later": later[keep], "earlier": earlier[keep], "similarity": similarity[keep]}).to_pandas()


def near_duplicates_on_spark(
    session: SparkSession, ids: list[str], texts: list[str], threshold: float, shingle_size: int, seed: int = 1, partitions: int = 8
) -> dict[str, tuple[str, float]]:
    """The result of quality.duplicates.near_duplicates, computed on the cluster (candidates are not pre-filtered by the MinHash estimate)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    compact = [duplicates.compact_text(text) for text in texts]
    frame = session.createDataFrame(pl.DataFrame({"position": np.arange(len(compact), dtype=np.int64), "compact": compact}).to_pandas())
    frame = frame.repartition(partitions)
    buckets = frame.mapInPandas(partial(_band_rows, shingle_size=shingle_size, seed=seed), spark_ddl(BUCKETS_SCHEMA))
    left, right = buckets.alias("a"), buckets.alias("b")
    pairs = (
        left.join(right, (F.col("a.band") == F.col("b.band")) & (F.col("a.key") == F.col("b.key")) & (F.col("a.position") > F.col("b.position")))
        .select(F.col("a.position").alias("later"), F.col("b.position").alias("earlier"))
        .distinct()
    )
    texts_frame = frame.select("position", "compact")
    with_text = pairs.join(texts_frame.withColumnRenamed("position", "later").withColumnRenamed("compact", "later_text"), "later").join(
        texts_frame.withColumnRenamed("position", "earlier").withColumnRenamed("compact", "earlier_text"), "earlier"
    )
    matches = with_text.mapInPandas(partial(_verify_pairs, shingle_size=shingle_size, threshold=threshold), spark_ddl(MATCHES_SCHEMA))
    # Per later item the most similar earlier one, ties to the earliest: the in-process rule.
    best = Window.partitionBy("later").orderBy(F.col("similarity").desc(), F.col("earlier").asc())
    chosen = matches.withColumn("rank", F.row_number().over(best)).where(F.col("rank") == 1).drop("rank")
    collected = pl.from_arrow(chosen.toArrow())
    assert isinstance(collected, pl.DataFrame)  # a Spark result is a table, never a single column
    return {ids[later]: (ids[earlier], float(np.round(similarity, 3))) for later, earlier, similarity in conform(collected, MATCHES_SCHEMA).iter_rows()}


def price_outliers_on_spark(session: SparkSession, items: pl.DataFrame, config: QualityConfig, partitions: int = 8) -> pl.DataFrame:
    """The findings of quality.checks.price_outliers, with each category's median price computed by window functions on the cluster.

    Within a category, prices are numbered by `row_number` and counted; the median is the middle price,
    or `lower + (upper - lower) / 2` of the two middle ones (how polars interpolates), so it is bit-identical.
    Only rows whose ratio to the median is extreme come back to the driver.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    priced_schema = {SOURCE_ROW: pl.Int64, "price": pl.Float64, "category": pl.String}
    # The schema is given so a catalogue without prices (an empty frame) still makes a table.
    priced = session.createDataFrame(checks.priced_items(items).to_pandas(), spark_ddl(priced_schema)).repartition(partitions, "category")
    ordered = Window.partitionBy("category").orderBy("price")
    whole = Window.partitionBy("category")
    numbered = priced.withColumn("rank", F.row_number().over(ordered)).withColumn("size", F.count(F.lit(1)).over(whole))
    lower, upper = F.floor((F.col("size") + 1) / 2), F.floor(F.col("size") / 2) + 1
    middle = numbered.groupBy("category", "size").agg(
        F.max(F.when(F.col("rank") == lower, F.col("price"))).alias("lower"), F.max(F.when(F.col("rank") == upper, F.col("price"))).alias("upper")
    )
    medians = middle.where(F.col("size") >= config.price_outlier_min_category_items).select(
        "category", (F.col("lower") + (F.col("upper") - F.col("lower")) * 0.5).alias("category_median")
    )
    ratio = F.col("price") / F.col("category_median")
    extreme = (ratio >= config.price_outlier_ratio) | (ratio <= 1.0 / config.price_outlier_ratio)
    flagged = priced.join(medians, "category").where(extreme).select(SOURCE_ROW, "price", "category_median")
    collected = pl.from_arrow(flagged.toArrow())
    assert isinstance(collected, pl.DataFrame)  # a Spark result is a table, never a single column
    # In catalogue order, as the in-process join returns them.
    return checks.price_outlier_findings(conform(collected, MEDIANS_SCHEMA).sort(SOURCE_ROW), config)
