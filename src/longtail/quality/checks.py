"""Row-level audit checks: each is a pure function from tables to findings (source_row, reason, action, detail)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import polars as pl

from longtail.core.config import EVENT_TYPES, QualityConfig
from longtail.data.expressions import describe
from longtail.data.loaders import INVALID_FIELDS, INVALID_VALUES
from longtail.data.schema import EVENT_RULES, SOURCE_ROW
from longtail.quality import duplicates, text_noise

QUARANTINE = "quarantine"
FLAG = "flag"
FIX = "fix"
FINDING_SCHEMA = {SOURCE_ROW: pl.Int64, "reason": pl.String, "action": pl.String, "detail": pl.String}

# Order matters: a row quarantined for several reasons is reported under the first one listed here.
ITEM_QUARANTINE_ORDER = (
    "unparseable_price",
    "unparseable_created_at",
    "missing_item_id",
    "duplicate_item_id",
    "missing_title",
    "merged_variant",
    "non_merchandise",
    "junk_title",
    "invalid_price",
    "future_timestamp",
    "timestamp_before_catalogue",
)
USER_QUARANTINE_ORDER = ("missing_user_id", "duplicate_user_id")
JUDGMENT_QUARANTINE_ORDER = (
    "unparseable_grade",
    "missing_query",
    "missing_item_id",
    "missing_grade",
    "invalid_grade",
    "unknown_item",
    "quarantined_item",
    "duplicate_judgment",
)
EVENT_QUARANTINE_ORDER = (
    "unparseable_timestamp",
    "unparseable_rating",
    "missing_user_id",
    "missing_timestamp",
    "invalid_event_type",
    "missing_item_id",
    "missing_query",
    "non_merchandise",
    "cancellation",
    "negative_quantity",
    "non_positive_price",
    "missing_rating",
    "bot_user",
    "rating_out_of_range",
    "future_timestamp",
    "timestamp_before_catalogue",
    "unknown_item",
    "quarantined_item",
    "duplicate_event",
)


def no_findings() -> pl.DataFrame:
    """An empty findings frame."""
    return pl.DataFrame(schema=FINDING_SCHEMA)


def findings_where(table: pl.DataFrame, mask: pl.Expr, reason: str, action: str, detail: pl.Expr | str = "") -> pl.DataFrame:
    """One finding per row of `table` matching `mask`."""
    detail_expr = pl.lit(detail) if isinstance(detail, str) else detail
    return table.filter(mask).select(
        pl.col(SOURCE_ROW),
        pl.lit(reason).alias("reason"),
        pl.lit(action).alias("action"),
        detail_expr.cast(pl.String).fill_null("").alias("detail"),
    )


def unparseable_fields(table: pl.DataFrame) -> pl.DataFrame:
    """Cells whose text could not be read as the column's type (e.g. price 'abc')."""
    exploded = table.select(SOURCE_ROW, pl.col(INVALID_FIELDS).str.split(";"), INVALID_VALUES).explode(INVALID_FIELDS).filter(pl.col(INVALID_FIELDS) != "")
    return exploded.select(
        pl.col(SOURCE_ROW),
        describe("unparseable_", pl.col(INVALID_FIELDS)).alias("reason"),
        pl.lit(QUARANTINE).alias("action"),
        pl.col(INVALID_VALUES).alias("detail"),
    )


def blank(column: str) -> pl.Expr:
    """Null or only whitespace; shared by the audit's rules and the commerce rules."""
    # Cast so a number column (an event's rating) counts as blank only when null.
    return pl.col(column).is_null() | (pl.col(column).cast(pl.String).str.strip_chars() == "")


def _parsed_ok(table: pl.DataFrame, column: str) -> pl.Expr:
    return ~pl.col(INVALID_FIELDS).str.split(";").list.contains(column)


def _timestamp_window(frame: pl.DataFrame, column: str, now: datetime, catalogue_start: datetime | None) -> list[pl.DataFrame]:
    """Rows whose `column` lies in the future, or before the catalogue opened when that date is known."""
    stamp = pl.col(column)
    parts = [findings_where(frame, stamp > pl.lit(now), "future_timestamp", QUARANTINE, describe(f"{column} ", stamp))]
    if catalogue_start is not None:
        parts.append(findings_where(frame, stamp < pl.lit(catalogue_start), "timestamp_before_catalogue", QUARANTINE, describe(f"{column} ", stamp)))
    return parts


def item_validity(items: pl.DataFrame, config: QualityConfig, now: datetime, catalogue_start: datetime | None) -> pl.DataFrame:
    """Missing ids and titles, repeated ids, non-positive prices, impossible creation times."""
    repeated = repeated_key(["item_id"])
    parts = [
        findings_where(items, blank("item_id"), "missing_item_id", QUARANTINE),
        findings_where(items, repeated & ~blank("item_id"), "duplicate_item_id", QUARANTINE, describe("item_id ", pl.col("item_id"), " seen earlier")),
        findings_where(items, blank("title"), "missing_title", QUARANTINE),
        findings_where(
            items,
            (pl.col("price") <= 0) | pl.col("price").is_nan() | pl.col("price").is_infinite(),
            "invalid_price",
            QUARANTINE,
            describe("price ", pl.col("price")),
        ),
        *_timestamp_window(items, "created_at", now, catalogue_start),
    ]
    if config.allowed_currencies:
        bad_currency = pl.col("currency").is_not_null() & ~pl.col("currency").is_in(config.allowed_currencies)
    else:
        bad_currency = pl.col("currency").is_not_null() & ~pl.col("currency").str.contains(r"^[A-Z]{3}$")
    parts.append(findings_where(items, bad_currency, "unknown_currency", FLAG, describe("currency ", pl.col("currency"))))
    return pl.concat(parts)


NO_CATEGORY = "(no category)"


def priced_items(items: pl.DataFrame) -> pl.DataFrame:
    """Items with a positive price, those without a category under one shared name (the price-outlier check's input)."""
    return items.filter(pl.col("price") > 0).select(SOURCE_ROW, "price", pl.col("category").fill_null(NO_CATEGORY))


def price_outliers(items: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """Prices far from their category's median (a robust centre): flagged, since luxury items exist.

    Items without a category are compared with the median of all uncategorised items: the shop's own price distribution.
    """
    priced = priced_items(items)
    stats = priced.group_by("category").agg(pl.col("price").median().alias("category_median"), pl.len().alias("category_items"))
    return price_outlier_findings(priced.join(stats.filter(pl.col("category_items") >= config.price_outlier_min_category_items), on="category"), config)


def price_outlier_findings(joined: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """The findings for priced items that carry their category's median (`category_median`; only categories large enough)."""
    ratio = pl.col("price") / pl.col("category_median")
    mask = (ratio >= config.price_outlier_ratio) | (ratio <= 1.0 / config.price_outlier_ratio)
    return findings_where(
        joined, mask, "price_outlier", FLAG, describe("price ", pl.col("price"), " is ", ratio.round(1), "x the category median ", pl.col("category_median"))
    )


def category_consistency(items: pl.DataFrame) -> pl.DataFrame:
    """Category paths with empty levels, or a leaf name that sits under different parents."""
    paths = (
        items.select(SOURCE_ROW, "category")
        .drop_nulls("category")
        .with_columns(pl.col("category").str.split(">").list.eval(pl.element().str.strip_chars()).alias("levels"))
    )
    empty_level = pl.col("levels").list.eval(pl.element() == "").list.any()
    leaves = paths.with_columns(pl.col("levels").list.last().alias("leaf"), pl.col("levels").list.len().alias("depth"))
    multi_parent = leaves.filter(pl.col("depth") > 1).group_by("leaf").agg(pl.col("category").n_unique().alias("paths"))
    ambiguous = leaves.join(multi_parent.filter(pl.col("paths") > 1), on="leaf")
    return pl.concat(
        [
            findings_where(paths, empty_level, "malformed_category", FLAG, pl.col("category")),
            findings_where(
                ambiguous, pl.lit(True), "ambiguous_category", FLAG, describe("leaf '", pl.col("leaf"), "' appears under ", pl.col("paths"), " paths")
            ),
        ]
    )


def text_noise_findings(table: pl.DataFrame, columns: list[str], config: QualityConfig) -> pl.DataFrame:
    """HTML and mojibake are repaired (action fix); boilerplate is flagged."""
    parts = []
    for column in columns:
        if column not in table.columns:
            continue
        parts.append(findings_where(table, text_noise.html_mask(column), "html_in_text", FIX if config.fix_html else FLAG, pl.lit(column)))
        mojibake = table.join(text_noise.mojibake_rows(table, column, SOURCE_ROW), on=SOURCE_ROW)
        parts.append(findings_where(mojibake, pl.lit(True), "mojibake_text", FIX if config.fix_mojibake else FLAG, pl.lit(column)))
        parts.append(findings_where(table, text_noise.boilerplate_mask(column), "boilerplate_text", FLAG, pl.lit(column)))
    return pl.concat(parts) if parts else no_findings()


def item_duplicates(
    items: pl.DataFrame, config: QualityConfig, seed: int, find_near: duplicates.NearDuplicateFinder = duplicates.near_duplicates
) -> pl.DataFrame:
    """Items whose text equals (exact) or nearly equals (near) an earlier item's; flagged, the first one is kept.

    `find_near` is the near-duplicate search (in-process by default; pipeline/spark_items.py runs the same one on a cluster).
    """
    candidates = items.filter(~blank("item_id"), ~blank("title"), pl.col("item_id").is_first_distinct()).select(
        SOURCE_ROW, "item_id", duplicates.item_text(items).alias("text")
    )
    ids, texts = candidates["item_id"].to_list(), candidates["text"].to_list()
    exact = duplicates.exact_duplicates(ids, texts)
    remaining = [(i, t) for i, t in zip(ids, texts, strict=True) if i not in exact]
    near = find_near([i for i, _ in remaining], [t for _, t in remaining], config.near_duplicate_threshold, config.near_duplicate_shingle, seed)
    exact_frame = pl.DataFrame(
        {"item_id": list(exact), "detail": [f"same text as item {v}" for v in exact.values()]}, schema={"item_id": pl.String, "detail": pl.String}
    )
    near_frame = pl.DataFrame(
        {"item_id": list(near), "detail": [f"similar to item {o} (jaccard {s})" for o, s in near.values()]}, schema={"item_id": pl.String, "detail": pl.String}
    )
    return pl.concat(
        [
            findings_where(candidates.join(exact_frame, on="item_id"), pl.lit(True), "duplicate_item", FLAG, pl.col("detail")),
            findings_where(candidates.join(near_frame, on="item_id"), pl.lit(True), "near_duplicate_item", FLAG, pl.col("detail")),
        ]
    )


def event_validity(events: pl.DataFrame, config: QualityConfig, now: datetime, catalogue_start: datetime | None) -> pl.DataFrame:
    """Missing keys, unknown event types, ratings out of range, impossible times."""
    parts = [
        findings_where(events, blank("user_id"), "missing_user_id", QUARANTINE),
        findings_where(events, pl.col("timestamp").is_null() & _parsed_ok(events, "timestamp"), "missing_timestamp", QUARANTINE),
        findings_where(
            events,
            ~pl.col("event_type").is_in(list(EVENT_TYPES)).fill_null(False) | pl.col("event_type").is_null(),
            "invalid_event_type",
            QUARANTINE,
            describe("event_type ", pl.col("event_type")),
        ),
        *(findings_where(events, rule.applies_expr() & blank(rule.field), f"missing_{rule.field}", QUARANTINE) for rule in EVENT_RULES),
        findings_where(
            events,
            (pl.col("rating") < config.min_rating) | (pl.col("rating") > config.max_rating) | pl.col("rating").is_nan(),
            "rating_out_of_range",
            QUARANTINE,
            describe("rating ", pl.col("rating")),
        ),
        *_timestamp_window(events, "timestamp", now, catalogue_start),
    ]
    return pl.concat(parts)


def item_index(items: pl.DataFrame, kept_item_ids: pl.Series) -> pl.DataFrame:
    """One row per known item id: its creation time and whether its row survived cleaning."""
    return (
        items.drop_nulls("item_id")
        .unique("item_id", keep="first", maintain_order=True)
        .select("item_id", "created_at", pl.col("item_id").is_in(kept_item_ids.implode()).alias("kept"))
    )


def event_references(events: pl.DataFrame, index: pl.DataFrame) -> pl.DataFrame:
    """Events on items absent from the catalogue, on quarantined items, or before the item existed."""
    joined = events.select(SOURCE_ROW, "item_id", "timestamp").join(index, on="item_id", how="left")
    has_item = pl.col("item_id").is_not_null()
    return pl.concat(
        [
            findings_where(joined, has_item & pl.col("kept").is_null(), "unknown_item", QUARANTINE, describe("item_id ", pl.col("item_id"))),
            findings_where(joined, has_item & ~pl.col("kept"), "quarantined_item", QUARANTINE, describe("item_id ", pl.col("item_id"), " was quarantined")),
            findings_where(
                joined,
                pl.col("kept").fill_null(False) & (pl.col("timestamp") < pl.col("created_at")).fill_null(False),
                "event_before_item_created",
                FLAG,
                describe("item created ", pl.col("created_at")),
            ),
        ]
    )


def event_repeats(events: pl.DataFrame) -> pl.DataFrame:
    """Exact repeats of an earlier event (same user, item, type, time, session, query and attributes); the first is kept."""
    ordered = events.sort(SOURCE_ROW)
    key = ["user_id", "item_id", "event_type", "timestamp", "session_id", "query"] + (["attributes"] if "attributes" in events.columns else [])
    return findings_where(ordered, repeated_key(key), "duplicate_event", QUARANTINE)


def user_peak_rates(events: pl.DataFrame, window_seconds: int) -> pl.DataFrame:
    """Per user: total events and the most events inside any sliding window of the given length."""
    # Guest lines (no user id) are many people, not one very busy user: they stay out of the bot statistics.
    frame = events.select("user_id", "timestamp").drop_nulls().filter(pl.col("user_id").str.strip_chars() != "")
    if frame.height == 0:
        return pl.DataFrame(schema={"user_id": pl.String, "events": pl.Int64, "peak": pl.Int64})
    with duckdb.connect() as connection:
        connection.register("frame", frame.to_arrow())
        return connection.sql(
            f"""
            SELECT user_id, count(*)::BIGINT AS events, max(in_window)::BIGINT AS peak FROM (
                SELECT user_id, count(*) OVER (
                    PARTITION BY user_id ORDER BY timestamp
                    RANGE BETWEEN INTERVAL {int(window_seconds)} SECONDS PRECEDING AND CURRENT ROW) AS in_window
                FROM frame) GROUP BY user_id
            """
        ).pl()


def robust_centre(values: np.ndarray) -> tuple[float, float]:
    """The median and 1.4826 * MAD, with a floor on MAD so constant data gives finite scores."""
    median = float(np.median(values))
    return median, max(float(np.median(np.abs(values - median))) * 1.4826, 1e-9)


RATE_COUNTS_SCHEMA = {"peak": pl.Int64, "events": pl.Int64, "users": pl.Int64}


def rate_counts(rates: pl.DataFrame) -> pl.DataFrame:
    """How many users share each (peak, events) pair: all the bot statistics need, at a size independent of the user count."""
    return rates.group_by("peak", "events").agg(pl.len().cast(pl.Int64).alias("users")).sort("peak", "events")


def peak_scores(counts: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """Each distinct peak (from `rate_counts`) with its robust z-score over all users and whether it marks a bot."""
    peaks = counts.group_by("peak").agg(pl.col("users").sum()).sort("peak")
    log_peak = np.log1p(peaks["peak"].to_numpy().astype(float))
    # The centre and spread are over users, not distinct peaks, so each peak counts once per user holding it.
    median, mad = robust_centre(np.repeat(log_peak, peaks["users"].to_numpy()))
    scored = peaks.select("peak", pl.Series("peak_robust_z", (log_peak - median) / mad))
    is_bot = (pl.col("peak") > config.bot_max_events_per_window) | ((pl.col("peak_robust_z") > config.bot_robust_z) & (pl.col("peak") >= 50))
    return scored.with_columns(is_bot.alias("bot"))


def bot_table(rates: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """Per-user rates with a robust z-score of the peak and whether the user behaves like a bot."""
    if rates.height == 0:
        return rates.with_columns(pl.lit(None, pl.Float64).alias("peak_robust_z"), pl.lit(None, pl.Boolean).alias("bot"))
    return rates.join(peak_scores(rate_counts(rates), config), on="peak", how="left")


def bot_findings(events: pl.DataFrame, bots: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """Every event of a bot-like user (`bots`: user_id, peak)."""
    flagged = events.select(SOURCE_ROW, "user_id").join(bots.select("user_id", "peak"), on="user_id")
    action = QUARANTINE if config.quarantine_bots else FLAG
    detail = describe(pl.col("peak"), " events within ", pl.lit(config.bot_window_seconds), "s")
    return findings_where(flagged, pl.lit(True), "bot_user", action, detail)


def repeated_key(columns: list[str]) -> pl.Expr:
    """Rows whose key columns equal an earlier row's."""
    key = pl.struct(columns)
    return key.is_duplicated() & ~key.is_first_distinct()


def user_validity(users: pl.DataFrame) -> pl.DataFrame:
    """Users without an id, or with an id seen on an earlier row."""
    return pl.concat(
        [
            findings_where(users, blank("user_id"), "missing_user_id", QUARANTINE),
            findings_where(
                users, repeated_key(["user_id"]) & ~blank("user_id"), "duplicate_user_id", QUARANTINE, describe("user_id ", pl.col("user_id"), " seen earlier")
            ),
        ]
    )


def unknown_users(events: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """Events whose user is absent from a users table that was supplied (flagged: users are optional)."""
    known = users["user_id"].drop_nulls().unique().implode()
    return findings_where(
        events, pl.col("user_id").is_not_null() & ~pl.col("user_id").is_in(known), "unknown_user", FLAG, describe("user_id ", pl.col("user_id"))
    )


def judgment_validity(judgments: pl.DataFrame, items: pl.DataFrame, kept_item_ids: pl.Series) -> pl.DataFrame:
    """Judgments without query, item or grade, with a negative grade, on unknown items, or repeated."""
    known = items["item_id"].drop_nulls().unique().implode()
    kept = kept_item_ids.implode()
    has_item = ~blank("item_id")
    return pl.concat(
        [
            findings_where(judgments, blank("query"), "missing_query", QUARANTINE),
            findings_where(judgments, ~has_item, "missing_item_id", QUARANTINE),
            findings_where(judgments, pl.col("grade").is_null() & _parsed_ok(judgments, "grade"), "missing_grade", QUARANTINE),
            findings_where(judgments, (pl.col("grade") < 0) | pl.col("grade").is_nan(), "invalid_grade", QUARANTINE, describe("grade ", pl.col("grade"))),
            findings_where(judgments, has_item & ~pl.col("item_id").is_in(known), "unknown_item", QUARANTINE, describe("item_id ", pl.col("item_id"))),
            findings_where(
                judgments,
                has_item & pl.col("item_id").is_in(known) & ~pl.col("item_id").is_in(kept),
                "quarantined_item",
                QUARANTINE,
                describe("item_id ", pl.col("item_id"), " was quarantined"),
            ),
            findings_where(judgments, repeated_key(["query", "item_id"]), "duplicate_judgment", QUARANTINE),
        ]
    )
