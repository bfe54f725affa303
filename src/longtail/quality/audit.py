"""Run every audit check, apply the cleaning rules, and split each table into kept, quarantined and flagged rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import polars as pl

from longtail.core.config import LongtailConfig, QualityConfig
from longtail.core.errors import ReconciliationError
from longtail.core.executors import TableMapper, map_in_process
from longtail.data.expressions import describe
from longtail.data.loaders import INVALID_FIELDS, INVALID_VALUES
from longtail.data.schema import CLEAN_CONTRACTS, EVENTS, ITEMS, JUDGMENTS, SOURCE_ROW, USERS, TableSpec
from longtail.quality import checks, commerce, duplicates, statistics, text_noise

ITEM_TEXT_COLUMNS = ["title", "description"]
EVENT_TEXT_COLUMNS = ["query", "text"]
StepCallback = Callable[[str], None]
AUDIT_STEPS = 8
Listed = TypeVar("Listed")
TABLE_ORDER = ("items", "users", "events", "judgments")
RATES_SCHEMA = {"user_id": pl.String, "events": pl.Int64, "peak": pl.Int64}


@dataclass(frozen=True)
class EventContext:
    """What every batch of events needs to know; small enough to ship to each worker."""

    items: pl.DataFrame
    config: QualityConfig
    now: datetime
    catalogue_start: datetime | None


def event_row_findings(batch: pl.DataFrame, context: EventContext) -> pl.DataFrame:
    """Checks that need only the row itself (and the item index): validity, references, text noise."""
    return pl.concat(
        [
            checks.unparseable_fields(batch),
            checks.event_validity(batch, context.config, context.now, context.catalogue_start),
            checks.event_references(batch, context.items),
            checks.text_noise_findings(batch, EVENT_TEXT_COLUMNS, context.config),
        ]
    )


def event_user_rates(batch: pl.DataFrame, window_seconds: int) -> pl.DataFrame:
    """Per-user activity; needs every event of a user in the same batch."""
    return checks.user_peak_rates(batch, window_seconds)


def event_bot_and_repeat_findings(batch: pl.DataFrame, bots: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """Bot events and exact repeats; repeats share their user, so grouping by user keeps them together."""
    return pl.concat([checks.bot_findings(batch, bots, config), checks.event_repeats(batch)])


@dataclass
class TableOutcome:
    """One table after cleaning: what was kept, what was quarantined (with reasons), what was flagged."""

    name: str
    input_rows: int
    kept: pl.DataFrame
    quarantine: pl.DataFrame
    flags: pl.DataFrame

    def summary(self) -> dict[str, Any]:
        """Counts for the report: input, kept, quarantined, and quarantined rows by reason."""
        by_reason = self.quarantine.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
        flagged = self.flags.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
        return {
            "input_rows": self.input_rows,
            "kept_rows": self.kept.height,
            "quarantined_rows": self.quarantine.height,
            "by_reason": dict(by_reason.iter_rows()),
            "flagged_rows": self.flags[SOURCE_ROW].n_unique() if self.flags.height else 0,
            "flags_by_reason": dict(flagged.iter_rows()),
        }


@dataclass
class AuditResult:
    """Cleaned tables plus the data-quality report, and charts of report sections added after the audit (title, SVG)."""

    tables: dict[str, TableOutcome]
    report: dict[str, Any] = field(default_factory=dict)
    extra_charts: list[tuple[str, str]] = field(default_factory=list)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _quarantine_rows(table: pl.DataFrame, findings: pl.DataFrame, order: tuple[str, ...]) -> pl.DataFrame:
    """One row per quarantined source row: its primary reason (by `order`), all reasons, and details."""
    rank = {reason: position for position, reason in enumerate(order)}
    ranked = findings.filter(pl.col("action") == checks.QUARANTINE).with_columns(
        pl.col("reason").replace_strict(rank, default=len(order), return_dtype=pl.Int64).alias("rank")
    )
    primary = (
        ranked.sort([SOURCE_ROW, "rank", "reason"])
        .group_by(SOURCE_ROW, maintain_order=True)
        .agg(
            pl.col("reason").first(),
            pl.col("reason").unique(maintain_order=True).str.join(";").alias("all_reasons"),
            pl.col("detail").first(),
        )
    )
    return table.join(primary, on=SOURCE_ROW, how="inner").sort(SOURCE_ROW)


def _flag_rows(table: pl.DataFrame, findings: pl.DataFrame) -> pl.DataFrame:
    """Flagged or repaired rows with their original values; one row per (row, reason)."""
    kept_findings = findings.filter(pl.col("action") != checks.QUARANTINE).unique([SOURCE_ROW, "reason", "detail"])
    return table.join(kept_findings, on=SOURCE_ROW, how="inner").sort([SOURCE_ROW, "reason"])


def _repair_text(table: pl.DataFrame, columns: list[str], config: LongtailConfig) -> pl.DataFrame:
    for column in columns:
        if column in table.columns:
            table = text_noise.repair_column(table, column, SOURCE_ROW, config.quality.fix_html, config.quality.fix_mojibake)
    return table


def _outcome(
    spec: TableSpec,
    table: pl.DataFrame,
    findings: pl.DataFrame,
    order: tuple[str, ...],
    config: LongtailConfig,
    text_columns: list[str],
    keep_source_row: bool = False,
) -> TableOutcome:
    """Split a table by its findings, repair what the rules fix, and check the counts reconcile.

    With `keep_source_row`, kept rows keep their row id (parts written by many workers need it to be put back in order).
    """
    original = table.drop(INVALID_FIELDS, INVALID_VALUES)
    quarantine = _quarantine_rows(original, findings, order)
    kept_with_row = original.join(quarantine.select(SOURCE_ROW), on=SOURCE_ROW, how="anti").sort(SOURCE_ROW)
    flags = _flag_rows(kept_with_row, findings)
    kept = _repair_text(kept_with_row, text_columns, config)
    kept = kept if keep_source_row else kept.drop(SOURCE_ROW)
    outcome = TableOutcome(spec.name, table.height, kept, quarantine, flags)
    reconcile(outcome)
    contract = CLEAN_CONTRACTS.get(spec.name)
    if contract is not None:
        contract.validate(kept.select(spec.column_names))
    return outcome


def reconcile(outcome: TableOutcome) -> None:
    """Raise unless every input row is either kept or quarantined, exactly once."""
    if outcome.kept.height + outcome.quarantine.height != outcome.input_rows:
        raise ReconciliationError(f"{outcome.name}: kept {outcome.kept.height} + quarantined {outcome.quarantine.height} != input {outcome.input_rows}")
    if outcome.quarantine[SOURCE_ROW].n_unique() != outcome.quarantine.height:
        raise ReconciliationError(f"{outcome.name}: a row was quarantined twice")


def in_table_order(tables: dict[str, Listed]) -> dict[str, Listed]:
    """Per-table values in the order the report lists tables: items, users, events, judgments."""
    return {name: tables[name] for name in TABLE_ORDER if name in tables}


@dataclass(frozen=True)
class AuditClock:
    """The audit's notion of now (with the future tolerance) and the catalogue's opening, from the quality config."""

    wall_clock: datetime
    now: datetime
    catalogue_start: datetime | None

    @classmethod
    def from_config(cls, quality: QualityConfig) -> AuditClock:
        """Read `reference_time` (default: the current time), `future_tolerance_seconds` and `catalogue_start`."""
        wall_clock = _parse_time(quality.reference_time) or datetime.now(UTC)
        return cls(wall_clock, wall_clock + timedelta(seconds=quality.future_tolerance_seconds), _parse_time(quality.catalogue_start))


@dataclass
class ItemAudit:
    """The items' outcome, their findings and the commerce rules' item findings."""

    outcome: TableOutcome
    findings: pl.DataFrame
    commerce: pl.DataFrame


def audit_items(
    items: pl.DataFrame,
    lines: pl.DataFrame | None,
    merges: pl.DataFrame,
    config: LongtailConfig,
    clock: AuditClock,
    step: StepCallback,
    find_near: duplicates.NearDuplicateFinder = duplicates.near_duplicates,
    price_outliers: Callable[[pl.DataFrame, QualityConfig], pl.DataFrame] = checks.price_outliers,
) -> ItemAudit:
    """Every item check (validity, commerce rules, duplicates, outliers, text noise) and the items' outcome.

    `find_near` and `price_outliers` are the catalogue-wide checks, in-process by default (pipeline/spark_items.py has cluster twins).
    """
    quality = config.quality
    step("items: validity")
    commerce_items = commerce.item_findings(items, lines, merges, quality)
    item_findings = [checks.unparseable_fields(items), checks.item_validity(items, quality, clock.now, clock.catalogue_start), commerce_items]
    step("items: duplicates")
    item_findings.append(checks.item_duplicates(items, quality, config.seed, find_near))
    step("items: outliers and consistency")
    item_findings += [price_outliers(items, quality), checks.category_consistency(items)]
    step("items: text noise")
    item_findings.append(checks.text_noise_findings(items, ITEM_TEXT_COLUMNS, quality))
    findings = pl.concat(item_findings)
    return ItemAudit(_outcome(ITEMS, items, findings, checks.ITEM_QUARANTINE_ORDER, config, ITEM_TEXT_COLUMNS), findings, commerce_items)


def audit_side_tables(
    items: pl.DataFrame, kept_items: pl.DataFrame, users: pl.DataFrame | None, judgments: pl.DataFrame | None, config: LongtailConfig
) -> tuple[dict[str, TableOutcome], dict[str, pl.DataFrame]]:
    """Outcomes and findings of the optional users and judgments tables."""
    outcomes: dict[str, TableOutcome] = {}
    findings: dict[str, pl.DataFrame] = {}
    if users is not None:
        findings["users"] = pl.concat([checks.unparseable_fields(users), checks.user_validity(users)])
        outcomes["users"] = _outcome(USERS, users, findings["users"], checks.USER_QUARANTINE_ORDER, config, [])
    if judgments is not None:
        judgment_checks = checks.judgment_validity(judgments, items, kept_items["item_id"])
        findings["judgments"] = pl.concat([checks.unparseable_fields(judgments), judgment_checks])
        outcomes["judgments"] = _outcome(JUDGMENTS, judgments, findings["judgments"], checks.JUDGMENT_QUARANTINE_ORDER, config, ["query"])
    return outcomes, findings


def merged_variant_findings(events: pl.DataFrame, merges: pl.DataFrame) -> pl.DataFrame:
    """Events naming a case variant that was merged into another spelling (fixed: they are renamed)."""
    detail = describe("item ", pl.col("item_id"), " merged into ", pl.col("merged_into")).alias("detail")
    remapped = events.join(merges, on="item_id", how="inner").select(SOURCE_ROW, detail)
    return checks.findings_where(remapped, pl.lit(True), "merged_variant", checks.FIX, pl.col("detail"))


def apply_merges(events: pl.DataFrame, merges: pl.DataFrame) -> pl.DataFrame:
    """Events of a merged case variant renamed to the kept spelling, so they count for one item everywhere downstream."""
    return events.with_columns(pl.col("item_id").replace(dict(merges.iter_rows())))


@dataclass(frozen=True)
class EventBatchContext:
    """What the audit of a batch holding every event of its users needs besides the row checks; shipped to each worker."""

    rows: EventContext
    merges: pl.DataFrame
    bots: pl.DataFrame
    kept_users: pl.DataFrame | None
    config: LongtailConfig


def audit_event_batch(batch: pl.DataFrame, context: EventBatchContext) -> tuple[pl.DataFrame, TableOutcome, pl.DataFrame]:
    """The audit of a batch of events as loaded (every event of its users): the renamed events, their outcome and findings.

    The outcome's kept rows keep `source_row`, so parts from many batches can be put back in input order.

    No commerce (transaction-line) rules: those compare lines across users and run only on the whole table.
    """
    merged = merged_variant_findings(batch, context.merges)
    events = apply_merges(batch, context.merges)
    parts = [
        event_row_findings(events, context.rows),
        merged,
        event_bot_and_repeat_findings(events, context.bots, context.config.quality),
    ]
    if context.kept_users is not None:
        parts.append(checks.unknown_users(events, context.kept_users))
    findings = pl.concat(parts)
    outcome = _outcome(EVENTS, events, findings, checks.EVENT_QUARANTINE_ORDER, context.config, EVENT_TEXT_COLUMNS, keep_source_row=True)
    return events, outcome, findings


def audit(
    items: pl.DataFrame,
    events: pl.DataFrame,
    config: LongtailConfig,
    on_step: StepCallback | None = None,
    users: pl.DataFrame | None = None,
    judgments: pl.DataFrame | None = None,
    map_table: TableMapper = map_in_process,
) -> AuditResult:
    """Audit and clean canonical items and events, and users and judgments when given (as returned by the loaders).

    Event checks are pure batch functions run through `map_table`, so an executor (in-process by
    default, or a cluster) decides where they run; items, users and judgments are small and
    audited in-process.
    """
    step = on_step or (lambda _name: None)
    quality = config.quality
    clock = AuditClock.from_config(quality)

    lines = commerce.line_table(events) if commerce.has_lines(events) else None
    merges = commerce.case_variant_merges(items, events.group_by("item_id").len("events"))
    item_audit = audit_items(items, lines, merges, config, clock, step)
    item_outcome = item_audit.outcome

    commerce_report = commerce.commerce_report(lines, events, items, item_audit.commerce, merges) if lines is not None else None
    event_findings = [merged_variant_findings(events, merges)]
    events = apply_merges(events, merges)
    context = EventContext(checks.item_index(items, item_outcome.kept["item_id"]), quality, clock.now, clock.catalogue_start)
    step("events: validity, references and text noise")
    event_findings.insert(0, map_table(events, partial(event_row_findings, context=context), checks.FINDING_SCHEMA))
    if lines is not None:
        fee_codes = items.join(item_audit.commerce.filter(pl.col("reason") == "non_merchandise"), on=SOURCE_ROW)["item_id"]
        event_findings.append(commerce.event_findings(lines, fee_codes, items))
    step("events: activity per user")
    user_rates = checks.bot_table(map_table(events, partial(event_user_rates, window_seconds=quality.bot_window_seconds), RATES_SCHEMA, "user_id"), quality)
    step("events: bot-like users and repeats")
    bots = user_rates.filter(pl.col("bot")).select("user_id", "peak")
    event_findings.append(map_table(events, partial(event_bot_and_repeat_findings, bots=bots, config=quality), checks.FINDING_SCHEMA, "user_id"))
    side_outcomes, side_findings = audit_side_tables(items, item_outcome.kept, users, judgments, config)
    if "users" in side_outcomes:
        event_findings.append(checks.unknown_users(events, side_outcomes["users"].kept))
    findings = {"items": item_audit.findings, **side_findings, "events": pl.concat(event_findings)}
    event_outcome = _outcome(EVENTS, events, findings["events"], checks.EVENT_QUARANTINE_ORDER, config, EVENT_TEXT_COLUMNS)
    outcomes = in_table_order({"items": item_outcome, "events": event_outcome, **side_outcomes})
    inputs = {"items": items, "events": events} | {name: table for name, table in (("users", users), ("judgments", judgments)) if table is not None}

    step("statistics")
    report = statistics.build_report(inputs, outcomes, findings, user_rates, clock.wall_clock, config)
    if commerce_report is not None:
        report["commerce"] = commerce_report
    report["item_merges"] = dict(merges.iter_rows())
    return AuditResult(outcomes, report)


def apply_event_rules(events: pl.DataFrame, config: LongtailConfig) -> tuple[pl.DataFrame, dict[str, int]]:
    """Events (as loaded, with `_invalid_fields`) that pass the audit's row rules, and counts of the others by reason.

    For commands that read raw event files without an audit (profile, index), so they accept nothing the audit rejects.
    """
    clock = AuditClock.from_config(config.quality)
    findings = pl.concat([checks.unparseable_fields(events), checks.event_validity(events, config.quality, clock.now, clock.catalogue_start)])
    rejected = _quarantine_rows(events.select(SOURCE_ROW), findings, checks.EVENT_QUARANTINE_ORDER)
    kept = events.join(rejected.select(SOURCE_ROW), on=SOURCE_ROW, how="anti").select(EVENTS.column_names)
    return kept, dict(rejected.group_by("reason").len().sort("reason").iter_rows())
