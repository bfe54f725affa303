"""Table-level data-quality statistics: completeness, validity, consistency, uniqueness, outliers, noise, timeliness."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from longtail.core.config import LongtailConfig
from longtail.data.schema import SOURCE_ROW, TABLES

if TYPE_CHECKING:
    from longtail.quality.audit import TableOutcome

VALIDITY_REASONS = {
    "unparseable_price", "unparseable_created_at", "unparseable_timestamp", "unparseable_rating", "missing_item_id",
    "missing_title", "missing_user_id", "missing_timestamp", "missing_query", "invalid_price", "invalid_event_type",
    "rating_out_of_range", "future_timestamp", "timestamp_before_catalogue", "unparseable_grade", "missing_grade", "invalid_grade",
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


def completeness(table: pl.DataFrame, columns: list[str]) -> dict[str, dict[str, float]]:
    """Missing (null or blank) cells per column."""
    rows = max(table.height, 1)
    result = {}
    for column in columns:
        series = table[column]
        missing = series.null_count()
        if series.dtype == pl.String:
            missing += int((series.str.strip_chars() == "").sum())
        result[column] = {"missing": missing, "missing_ratio": round(missing / rows, 6)}
    return result


def _number(value: object) -> float:
    """A numeric aggregate of a non-empty column (polars types every aggregate as any Python scalar)."""
    if not isinstance(value, int | float):
        raise TypeError(f"expected a numeric aggregate, got {value!r}")
    return float(value)


def _counts(findings: pl.DataFrame, reasons: set[str]) -> dict[str, int]:
    selected = findings.filter(pl.col("reason").is_in(list(reasons))).group_by("reason").agg(pl.col(SOURCE_ROW).n_unique())
    return {reason: int(count) for reason, count in sorted(selected.iter_rows())}


def timeliness(events: pl.DataFrame, now: datetime, stale_after_days: int) -> dict[str, Any]:
    """Time span of the events, how stale the newest one is, and gaps with no events."""
    times = events["timestamp"].drop_nulls()
    times = times.filter(times <= now)
    if times.len() == 0:
        return {"events_with_time": 0}
    first, last = times.min(), times.max()
    assert isinstance(first, datetime) and isinstance(last, datetime)  # a non-empty datetime column
    days = times.dt.date().unique().sort()
    gaps = days.diff().dt.total_days().drop_nulls()
    staleness = (now - last).total_seconds() / 86400
    span_days = (last - first).total_seconds() / 86400
    return {
        "events_with_time": int(times.len()),
        "first_event": first.isoformat(),
        "last_event": last.isoformat(),
        "span_days": round(span_days, 2),
        "staleness_days": round(staleness, 2),
        "stale": staleness > stale_after_days,
        "active_days": int(days.len()),
        "days_without_events": int(max(span_days + 1 - days.len(), 0)),
        "longest_gap_days": int(_number(gaps.max())) if gaps.len() else 0,
    }


def user_activity(user_rates: pl.DataFrame) -> dict[str, Any]:
    """Distribution of events per user and the users with the highest peak rate."""
    if user_rates.height == 0:
        return {"users": 0}
    counts = user_rates["events"]
    top = user_rates.sort(["peak", "events", "user_id"], descending=[True, True, False]).head(10)
    return {
        "users": user_rates.height,
        "events_per_user": {
            "median": _number(counts.median()),
            "p99": _number(counts.quantile(0.99)),
            "max": int(_number(counts.max())),
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


def build_report(
    inputs: dict[str, pl.DataFrame],
    outcomes: dict[str, TableOutcome],
    findings_by_table: dict[str, pl.DataFrame],
    user_rates: pl.DataFrame,
    now: datetime,
    config: LongtailConfig,
) -> dict[str, Any]:
    """The JSON report: per-table counts and reasons, then one section per quality dimension."""
    findings = pl.concat([table_findings.with_columns(pl.lit(name).alias("table")) for name, table_findings in findings_by_table.items()])
    items, events = inputs["items"], inputs["events"]

    def by_table(reasons: set[str]) -> dict[str, dict[str, int]]:
        return {name: _counts(findings.filter(pl.col("table") == name), reasons) for name in findings_by_table}

    return {
        "generated_at": now.isoformat(),
        "tables": {name: outcome.summary() for name, outcome in outcomes.items()},
        "completeness": {name: completeness(table, TABLES[name].column_names) for name, table in inputs.items()},
        "validity": by_table(VALIDITY_REASONS),
        "consistency": {**by_table(CONSISTENCY_REASONS), "categories": int(items["category"].n_unique()), "prices": price_summary(items)},
        "uniqueness": by_table(UNIQUENESS_REASONS),
        "outliers": {**by_table(OUTLIER_REASONS), "user_activity": user_activity(user_rates)},
        "text_noise": by_table(NOISE_REASONS),
        "timeliness": timeliness(events, now, config.quality.stale_after_days),
    }
