"""Table-level data-quality statistics: completeness, validity, consistency, uniqueness, outliers, noise, timeliness."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from longtail.core.config import LongtailConfig
from longtail.data.schema import SOURCE_ROW, TABLES
from longtail.quality import checks

if TYPE_CHECKING:
    from longtail.quality.audit import TableOutcome

VALIDITY_REASONS = {
    "unparseable_price",
    "unparseable_created_at",
    "unparseable_timestamp",
    "unparseable_rating",
    "missing_item_id",
    "missing_title",
    "missing_user_id",
    "missing_timestamp",
    "missing_query",
    "invalid_price",
    "invalid_event_type",
    "rating_out_of_range",
    "future_timestamp",
    "timestamp_before_catalogue",
    "unparseable_grade",
    "missing_grade",
    "invalid_grade",
}
CONSISTENCY_REASONS = {
    "unknown_user",
    "unknown_item",
    "quarantined_item",
    "event_before_item_created",
    "unknown_currency",
    "malformed_category",
    "ambiguous_category",
}
UNIQUENESS_REASONS = {"duplicate_item_id", "duplicate_item", "near_duplicate_item", "duplicate_event", "duplicate_user_id", "duplicate_judgment"}
OUTLIER_REASONS = {"bot_user", "price_outlier"}
NOISE_REASONS = {"html_in_text", "mojibake_text", "boilerplate_text"}


def missing_counts(table: pl.DataFrame, columns: list[str]) -> dict[str, int]:
    """Missing (null or blank) cells per column; additive over row batches."""
    result = {}
    for column in columns:
        series = table[column]
        missing = series.null_count()
        if series.dtype == pl.String:
            missing += int((series.str.strip_chars() == "").sum())
        result[column] = missing
    return result


def completeness_from_counts(missing: dict[str, int], rows: int) -> dict[str, dict[str, float]]:
    """The completeness section from missing-cell counts and the table's row count."""
    return {column: {"missing": count, "missing_ratio": round(count / max(rows, 1), 6)} for column, count in missing.items()}


def completeness(table: pl.DataFrame, columns: list[str]) -> dict[str, dict[str, float]]:
    """Missing (null or blank) cells per column."""
    return completeness_from_counts(missing_counts(table, columns), table.height)


def _number(value: object) -> float:
    """A numeric aggregate of a non-empty column (polars types every aggregate as any Python scalar)."""
    if not isinstance(value, int | float):
        raise TypeError(f"expected a numeric aggregate, got {value!r}")
    return float(value)


def reason_counts(findings: pl.DataFrame) -> dict[str, int]:
    """Distinct rows per finding reason; additive over batches that never split a row."""
    counted = findings.group_by("reason").agg(pl.col(SOURCE_ROW).n_unique())
    return {reason: int(count) for reason, count in sorted(counted.iter_rows())}


def daily_times(events: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Per day with events up to `now`: the event count and the first and last time; merge batches with sum/min/max."""
    times = events.select("timestamp").drop_nulls().filter(pl.col("timestamp") <= now)
    return times.group_by(pl.col("timestamp").dt.date().alias("day")).agg(
        pl.len().cast(pl.Int64).alias("events"), pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last")
    )


def timeliness(events: pl.DataFrame, now: datetime, stale_after_days: int) -> dict[str, Any]:
    """Time span of the events, how stale the newest one is, and gaps with no events."""
    return timeliness_from_daily(daily_times(events, now), now, stale_after_days)


def timeliness_from_daily(daily: pl.DataFrame, now: datetime, stale_after_days: int) -> dict[str, Any]:
    """The timeliness section from per-day counts and first/last times (see daily_times)."""
    if daily.height == 0:
        return {"events_with_time": 0}
    first, last = daily["first"].min(), daily["last"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)  # a non-empty datetime column
    days = daily["day"].unique().sort()
    gaps = days.diff().dt.total_days().drop_nulls()
    staleness = (now - last).total_seconds() / 86400
    span_days = (last - first).total_seconds() / 86400
    return {
        "events_with_time": int(daily["events"].sum()),
        "first_event": first.isoformat(),
        "last_event": last.isoformat(),
        "span_days": round(span_days, 2),
        "staleness_days": round(staleness, 2),
        "stale": staleness > stale_after_days,
        "active_days": int(days.len()),
        "days_without_events": int(max(span_days + 1 - days.len(), 0)),
        "longest_gap_days": int(_number(gaps.max())) if gaps.len() else 0,
    }


TOP_PEAK_USERS = 10


def top_peak_users(user_rates: pl.DataFrame) -> pl.DataFrame:
    """The users with the highest peak rate (then most events, then id), as the report lists them."""
    return user_rates.sort(["peak", "events", "user_id"], descending=[True, True, False]).head(TOP_PEAK_USERS)


def user_activity(counts: pl.DataFrame, top: pl.DataFrame) -> dict[str, Any]:
    """Distribution of events per user (from checks.rate_counts) and the users with the highest peak rate (`top`, scored)."""
    if counts.height == 0:
        return {"users": 0}
    # Expanded to one value per user so the median and percentile are exactly those of the per-user table.
    per_user = pl.Series("events", np.repeat(counts["events"].to_numpy(), counts["users"].to_numpy()))
    return {
        "users": int(counts["users"].sum()),
        "events_per_user": {
            "median": _number(per_user.median()),
            "p99": _number(per_user.quantile(0.99)),
            "max": int(_number(per_user.max())),
        },
        "top_peak_users": top.select("user_id", "events", "peak", pl.col("peak_robust_z").round(2)).to_dicts(),
    }


def price_summary(items: pl.DataFrame) -> dict[str, Any]:
    """Per-category price medians and spread (robust: median and MAD), for the top categories."""
    priced = items.filter(pl.col("price") > 0)
    if priced.height == 0:
        return {"priced_items": 0}
    by_category = (
        priced.drop_nulls("category")
        .group_by("category")
        .agg(
            pl.len().alias("items"),
            pl.col("price").median().alias("median"),
            (pl.col("price") - pl.col("price").median()).abs().median().alias("mad"),
            pl.col("price").max().alias("max"),
        )
        .sort("items", descending=True)
        .head(15)
    )
    currencies = items.group_by("currency").len().drop_nulls("currency")
    return {
        "priced_items": priced.height,
        "currencies": dict(currencies.iter_rows()),
        "mixed_currencies": currencies.height > 1,
        "top_categories": by_category.to_dicts(),
    }


@dataclass
class TableFigures:
    """What the report needs of one table; every field is additive over batches that keep each row whole."""

    summary: dict[str, Any]
    reasons: dict[str, int]
    missing: dict[str, int]


def table_figures(table: pl.DataFrame, outcome: TableOutcome, findings: pl.DataFrame) -> TableFigures:
    """The report's figures of one (batch of a) table."""
    return TableFigures(outcome.summary(), reason_counts(findings), missing_counts(table, TABLES[outcome.name].column_names))


def build_report(
    inputs: dict[str, pl.DataFrame],
    outcomes: dict[str, TableOutcome],
    findings_by_table: dict[str, pl.DataFrame],
    user_rates: pl.DataFrame,
    now: datetime,
    config: LongtailConfig,
) -> dict[str, Any]:
    """The JSON report: per-table counts and reasons, then one section per quality dimension."""
    figures = {name: table_figures(inputs[name], outcome, findings_by_table[name]) for name, outcome in outcomes.items()}
    activity = user_activity(checks.rate_counts(user_rates), top_peak_users(user_rates))
    return assemble_report(figures, inputs["items"], activity, daily_times(inputs["events"], now), now, config)


def assemble_report(
    figures: dict[str, TableFigures], items: pl.DataFrame, activity: dict[str, Any], daily: pl.DataFrame, now: datetime, config: LongtailConfig
) -> dict[str, Any]:
    """The JSON report from per-table figures, the item table, the user activity (see user_activity) and per-day event times."""

    def by_table(reasons: set[str]) -> dict[str, dict[str, int]]:
        return {name: {r: n for r, n in table.reasons.items() if r in reasons} for name, table in figures.items()}

    return {
        "generated_at": now.isoformat(),
        "tables": {name: table.summary for name, table in figures.items()},
        "completeness": {name: completeness_from_counts(table.missing, table.summary["input_rows"]) for name, table in figures.items()},
        "validity": by_table(VALIDITY_REASONS),
        "consistency": {**by_table(CONSISTENCY_REASONS), "categories": int(items["category"].n_unique()), "prices": price_summary(items)},
        "uniqueness": by_table(UNIQUENESS_REASONS),
        "outliers": {**by_table(OUTLIER_REASONS), "user_activity": activity},
        "text_noise": by_table(NOISE_REASONS),
        "timeliness": timeliness_from_daily(daily, now, config.quality.stale_after_days),
    }


FIGURE_ROWS_SCHEMA = {"section": pl.String, "key": pl.String, "value": pl.Int64}
_SUMMARY_COUNTS = ("input_rows", "kept_rows", "quarantined_rows", "flagged_rows")
_DAY_SECTIONS = {"day_events": "sum", "day_first": "min", "day_last": "max"}


def figure_rows(figures: TableFigures, daily: pl.DataFrame) -> pl.DataFrame:
    """A batch's figures and per-day times as flat (section, key, value) rows, so any engine can merge them."""
    summary = figures.summary
    rows: list[tuple[str, str, int]] = [("summary", key, int(summary[key])) for key in _SUMMARY_COUNTS]
    rows += [("by_reason", r, n) for r, n in summary["by_reason"].items()]
    rows += [("flags_by_reason", r, n) for r, n in summary["flags_by_reason"].items()]
    rows += [("reasons", r, n) for r, n in figures.reasons.items()]
    rows += [("missing", column, n) for column, n in figures.missing.items()]
    for day, events, first, last in daily.select("day", "events", pl.col("first").dt.epoch("us"), pl.col("last").dt.epoch("us")).iter_rows():
        key = day.isoformat()
        rows += [("day_events", key, events), ("day_first", key, first), ("day_last", key, last)]
    return pl.DataFrame(rows, schema=FIGURE_ROWS_SCHEMA, orient="row")


def merge_figure_rows(rows: pl.DataFrame, columns: list[str]) -> tuple[TableFigures, pl.DataFrame]:
    """The figures and per-day times of a whole table (with these columns) from its batches' rows (see figure_rows)."""
    totals = rows.filter(~pl.col("section").is_in(list(_DAY_SECTIONS))).group_by("section", "key").agg(pl.col("value").sum())
    by_section: dict[str, dict[str, int]] = {}
    for section, key, value in totals.iter_rows():
        by_section.setdefault(section, {})[key] = int(value)

    def ranked(section: str) -> dict[str, int]:
        return dict(sorted(by_section.get(section, {}).items(), key=lambda pair: (-pair[1], pair[0])))

    counts = by_section.get("summary", {})
    summary = {
        "input_rows": counts.get("input_rows", 0),
        "kept_rows": counts.get("kept_rows", 0),
        "quarantined_rows": counts.get("quarantined_rows", 0),
        "by_reason": ranked("by_reason"),
        "flagged_rows": counts.get("flagged_rows", 0),
        "flags_by_reason": ranked("flags_by_reason"),
    }
    parts = [
        rows.filter(pl.col("section") == section).group_by("key").agg(getattr(pl.col("value"), how)().alias(section)) for section, how in _DAY_SECTIONS.items()
    ]
    daily = (
        parts[0]
        .join(parts[1], on="key")
        .join(parts[2], on="key")
        .select(
            pl.col("key").str.to_date().alias("day"),
            pl.col("day_events").alias("events"),
            pl.from_epoch("day_first", "us").dt.replace_time_zone("UTC").alias("first"),
            pl.from_epoch("day_last", "us").dt.replace_time_zone("UTC").alias("last"),
        )
    )
    missing = {column: by_section.get("missing", {}).get(column, 0) for column in columns}
    return TableFigures(summary, dict(sorted(by_section.get("reasons", {}).items())), missing), daily
