"""The audit on a Spark cluster: executors read the event files, audit each user's events together and write Parquet parts; the driver gathers aggregates."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from longtail.core.artifacts import atomic_folder
from longtail.core.config import LongtailConfig
from longtail.core.errors import ExecutorError
from longtail.core.executors import OutputSchema
from longtail.data.loaders import load_part, part_files
from longtail.data.schema import EVENTS, TABLES
from longtail.pipeline.spark import conform, run_partition, spark_ddl, start_session
from longtail.pipeline.spark_items import near_duplicates_on_spark, price_outliers_on_spark
from longtail.privacy.ingest import apply_privacy
from longtail.quality import checks, commerce, statistics
from longtail.quality.audit import (
    RATES_SCHEMA,
    AuditClock,
    AuditResult,
    EventBatchContext,
    EventContext,
    StepCallback,
    audit_event_batch,
    audit_items,
    audit_side_tables,
    event_user_rates,
    in_table_order,
)
from longtail.quality.report import write_audit_files

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

PART_FOLDERS = ("clean", "quarantine", "flags")
COUNTS_SCHEMA = {"item_id": pl.String, "events": pl.Int64}
BOTS_SCHEMA = {"user_id": pl.String, "peak": pl.Int64}


def _read_parts(rows: Iterator[pd.DataFrame], config: LongtailConfig, schema: OutputSchema) -> Iterator[pd.DataFrame]:
    """Worker side: load each assigned part file with the project's own loader, pseudonymise/scrub it, return pandas."""
    for frame in rows:
        for index, path in zip(frame["part"], frame["path"], strict=True):
            events = load_part(path, int(index), EVENTS, config.data.columns.events, config.data.csv_separator, config.data)
            yield conform(apply_privacy({"events": events}, config.privacy)["events"], schema).to_pandas()


def _audit_partition(
    batches: Iterator[pd.DataFrame], context: EventBatchContext, schema: OutputSchema, out_dir: Path, clock: AuditClock
) -> Iterator[pd.DataFrame]:
    """Worker side: audit every event of this partition's users, write kept/quarantined/flagged parts, return the figures."""
    import pandas as pd
    from pyspark import TaskContext

    frames = list(batches)
    if not frames:
        return
    batch = conform(pl.from_pandas(pd.concat(frames, ignore_index=True)), schema)
    events, outcome, findings = audit_event_batch(batch, context)
    task = TaskContext.get()
    # Named by partition, so a retried task overwrites its own earlier attempt rather than adding rows.
    name = f"part-{task.partitionId() if task else 0:05d}.parquet"
    for folder, table in zip(PART_FOLDERS, (outcome.kept, outcome.quarantine, outcome.flags), strict=True):
        target = out_dir / folder / "events"
        target.mkdir(parents=True, exist_ok=True)
        table.write_parquet(target / name)
    figures = statistics.table_figures(events, outcome, findings)
    yield statistics.figure_rows(figures, statistics.daily_times(events, clock.wall_clock)).to_pandas()


def _collect(frame: DataFrame, schema: OutputSchema) -> pl.DataFrame:
    collected = pl.from_arrow(frame.toArrow())
    assert isinstance(collected, pl.DataFrame)  # a Spark result is a table, never a single column
    return conform(collected, schema)


def _user_activity(by_user: DataFrame, schema: OutputSchema, config: LongtailConfig) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The bot-like users (user_id, peak) and the report's user activity; the per-user rates stay on the executors.

    The driver receives only how many users share each (peak, events) pair, which fixes the robust
    centre and spread exactly as in-process, then the few users whose peak marks a bot and the top ten.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    rates_function = partial(event_user_rates, window_seconds=config.quality.bot_window_seconds)
    rates = by_user.mapInPandas(partial(run_partition, function=rates_function, input_schema=schema, output_schema=RATES_SCHEMA), spark_ddl(RATES_SCHEMA))
    # Kept on the executors (spilling to their disk) for the three small queries below, so the events are read once.
    rates = rates.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = _collect(rates.groupBy("peak", "events").agg(F.count(F.lit(1)).alias("users")), checks.RATE_COUNTS_SCHEMA).sort("peak", "events")
        scores = checks.peak_scores(counts, config.quality)
        bot_peaks = scores.filter(pl.col("bot"))["peak"].to_list()
        bots = _collect(rates.where(F.col("peak").isin(bot_peaks)).select("user_id", "peak"), BOTS_SCHEMA) if bot_peaks else pl.DataFrame(schema=BOTS_SCHEMA)
        ranked = rates.orderBy(F.col("peak").desc(), F.col("events").desc(), F.col("user_id").asc()).limit(statistics.TOP_PEAK_USERS)
        top = _collect(ranked, RATES_SCHEMA).join(scores, on="peak", how="left")
    finally:
        rates.unpersist()
    return bots, statistics.user_activity(counts, statistics.top_peak_users(top))


def event_schema(events_path: Path, config: LongtailConfig) -> OutputSchema:
    """The events' canonical columns, from the first part loaded on the driver, which also proves they carry no transaction lines."""
    first = part_files(events_path)[0]
    sample = load_part(first, 0, EVENTS, config.data.columns.events, config.data.csv_separator, config.data)
    if commerce.has_lines(sample):
        raise ExecutorError(
            f"{first}: events carry transaction lines (quantity/price); their commerce rules compare lines across users "
            "and run only in-process: set pipeline.executor: local"
        )
    return dict(apply_privacy({"events": sample}, config.privacy)["events"].schema)


def read_event_parts(session: SparkSession, events_path: Path, schema: OutputSchema, config: LongtailConfig) -> DataFrame:
    """The events of a file or folder of parts, read by the executors (one task per part, each row keeping its `source_row`)."""
    parts = part_files(events_path)
    listing = session.sparkContext.parallelize([(index, str(path)) for index, path in enumerate(parts)], len(parts))
    return listing.toDF("part int, path string").mapInPandas(partial(_read_parts, config=config, schema=schema), spark_ddl(schema))


def audit_on_cluster(
    items: pl.DataFrame,
    events_path: str | Path,
    out_dir: str | Path,
    config: LongtailConfig,
    on_step: StepCallback | None = None,
    users: pl.DataFrame | None = None,
    judgments: pl.DataFrame | None = None,
) -> AuditResult:
    """Audit canonical items (and users, judgments) on the driver and the events file or folder of parts on the cluster.

    Executors read the event parts, the per-user checks run on partitions keyed by `user_id`, and
    each partition's kept, quarantined and flagged rows are written by its executor to
    `out_dir/{clean,quarantine,flags}/events/part-*.parquet` (kept rows keep `source_row`); the
    driver holds the catalogue, one row per user for the bot statistics, and the report's figures.
    `out_dir` must be on storage every executor can write (on loopback: the local disk).
    """
    step = on_step or (lambda _name: None)
    # Absolute paths: executors run in their own working folders, where a relative path names nothing.
    events_path, out_dir = Path(events_path).resolve(), Path(out_dir).resolve()
    schema = event_schema(events_path, config)
    clock = AuditClock.from_config(config.quality)
    step("start the Spark session")
    session: SparkSession = start_session(config.pipeline, "longtail-audit")
    try:
        events = read_event_parts(session, events_path, schema, config)
        step("items: case variants")
        variants = commerce.case_variant_ids(items)["item_id"].to_list()
        counts = (
            _collect(events.where(events.item_id.isin(variants)).groupBy("item_id").count().withColumnRenamed("count", "events"), COUNTS_SCHEMA)
            if variants
            else pl.DataFrame(schema=COUNTS_SCHEMA)
        )
        merges = commerce.case_variant_merges(items, counts)
        find_near = partial(near_duplicates_on_spark, session, partitions=config.pipeline.spark_partitions)
        price_outliers = partial(price_outliers_on_spark, session, partitions=config.pipeline.spark_partitions)
        item_audit = audit_items(items, None, merges, config, clock, step, find_near, price_outliers)
        side_outcomes, side_findings = audit_side_tables(items, item_audit.outcome.kept, users, judgments, config)
        by_user = events.repartition(config.pipeline.spark_partitions, "user_id")
        step("events: activity per user")
        bots, activity = _user_activity(by_user, schema, config)
        context = EventBatchContext(
            EventContext(checks.item_index(items, item_audit.outcome.kept["item_id"]), config.quality, clock.now, clock.catalogue_start),
            merges,
            bots,
            side_outcomes["users"].kept.select("user_id") if "users" in side_outcomes else None,
            config,
        )
        with atomic_folder(out_dir) as staging:
            step("events: checks, quarantine and parts")
            audit_function = partial(_audit_partition, context=context, schema=schema, out_dir=staging, clock=clock)
            figure_rows = _collect(by_user.mapInPandas(audit_function, spark_ddl(statistics.FIGURE_ROWS_SCHEMA)), statistics.FIGURE_ROWS_SCHEMA)
            event_figures, daily = statistics.merge_figure_rows(figure_rows, TABLES["events"].column_names)
            if event_figures.summary["kept_rows"] + event_figures.summary["quarantined_rows"] != event_figures.summary["input_rows"]:
                raise ExecutorError(f"events: kept + quarantined != input rows in the cluster's figures {event_figures.summary}")
            step("statistics")
            figures = {"items": statistics.table_figures(items, item_audit.outcome, item_audit.findings), "events": event_figures}
            figures |= {
                name: statistics.table_figures(table, side_outcomes[name], side_findings[name])
                for name, table in (("users", users), ("judgments", judgments))
                if table is not None
            }
            report = statistics.assemble_report(in_table_order(figures), items, activity, daily, clock.wall_clock, config)
            report["item_merges"] = dict(merges.iter_rows())
            result = AuditResult(in_table_order({"items": item_audit.outcome, **side_outcomes}), report)
            step("write artifacts")
            write_audit_files(result, staging, config)
    finally:
        session.stop()
    return result
