"""The event audit split into batches by user (as a cluster runs it) gives the whole-table outcome and report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from longtail.core.config import LongtailConfig
from longtail.data.loaders import to_canonical
from longtail.data.schema import EVENTS, ITEMS, SOURCE_ROW, TABLES
from longtail.quality import checks, commerce, statistics
from longtail.quality.audit import (
    AuditClock,
    EventBatchContext,
    EventContext,
    audit,
    audit_event_batch,
    event_user_rates,
)

CONFIG = LongtailConfig.model_validate({"quality": {"reference_time": "2026-04-01T00:00:00+00:00", "bot_max_events_per_window": 30}})


def _tables() -> tuple[pl.DataFrame, pl.DataFrame]:
    items = pl.DataFrame(
        {"item_id": ["A1", "a1", "B2", "C3"], "title": ["Red mug", "red mug", "Blue lamp", "<b>Green</b> bag"], "price": ["5", "5", "20", "-1"]}
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [("u1", "A1", "view", start + timedelta(days=d)) for d in range(5)]
    rows += [("u2", "a1", "purchase", start), ("u2", "a1", "purchase", start), ("u3", "GHOST", "view", start), ("u3", "C3", "view", start)]
    rows += [("bot", "B2", "view", start + timedelta(seconds=s)) for s in range(40)]
    rows += [("u4", "B2", "view", start + timedelta(days=800))]
    events = pl.DataFrame(rows, schema=["user_id", "item_id", "event_type", "timestamp"], orient="row").with_columns(pl.col("timestamp").cast(pl.String))
    return to_canonical(items, ITEMS, "items"), to_canonical(events, EVENTS, "events")


def test_batches_by_user_give_the_whole_table_outcome_and_report() -> None:
    items, events = _tables()
    whole = audit(items, events, CONFIG)
    clock = AuditClock.from_config(CONFIG.quality)
    merges = commerce.case_variant_merges(items, events.group_by("item_id").len("events"))
    rates = checks.bot_table(event_user_rates(events, CONFIG.quality.bot_window_seconds), CONFIG.quality)
    context = EventBatchContext(
        EventContext(checks.item_index(items, whole.tables["items"].kept["item_id"]), CONFIG.quality, clock.now, clock.catalogue_start),
        merges,
        rates.filter(pl.col("bot")).select("user_id", "peak"),
        None,
        CONFIG,
    )
    rows, kept, quarantine = [], [], []
    for users in (["u1", "bot"], ["u2", "u3"], ["u4"]):
        renamed, outcome, findings = audit_event_batch(events.filter(pl.col("user_id").is_in(users)), context)
        figures = statistics.table_figures(renamed, outcome, findings)
        rows.append(statistics.figure_rows(figures, statistics.daily_times(renamed, clock.wall_clock)))
        kept.append(outcome.kept)
        quarantine.append(outcome.quarantine)
    merged, daily = statistics.merge_figure_rows(pl.concat(rows), TABLES["events"].column_names)

    assert pl.concat(kept).sort(SOURCE_ROW).drop(SOURCE_ROW).equals(whole.tables["events"].kept)
    assert pl.concat(quarantine).sort(SOURCE_ROW).equals(whole.tables["events"].quarantine)
    assert merged.summary == whole.report["tables"]["events"]
    assert merged.summary["by_reason"] == {"bot_user": 40, "duplicate_event": 1, "future_timestamp": 1, "quarantined_item": 1, "unknown_item": 1}
    assert statistics.timeliness_from_daily(daily, clock.wall_clock, CONFIG.quality.stale_after_days) == whole.report["timeliness"]
    assert statistics.completeness_from_counts(merged.missing, merged.summary["input_rows"]) == whole.report["completeness"]["events"]
    assert {r: n for r, n in merged.reasons.items() if r in statistics.UNIQUENESS_REASONS} == whole.report["uniqueness"]["events"]
