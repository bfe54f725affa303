"""Run every audit check, apply the cleaning rules, and split each table into kept, quarantined and flagged rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import polars as pl

from longtail.config import LongtailConfig
from longtail.data.loaders import INVALID_FIELDS, INVALID_VALUES
from longtail.data.schema import CLEAN_CONTRACTS, EVENTS, ITEMS, JUDGMENTS, SOURCE_ROW, USERS, TableSpec
from longtail.errors import ReconciliationError
from longtail.quality import checks, statistics, text_noise

ITEM_TEXT_COLUMNS = ["title", "description"]
EVENT_TEXT_COLUMNS = ["query", "text"]
StepCallback = Callable[[str], None]
AUDIT_STEPS = 9


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
    """Cleaned tables plus the data-quality report."""

    tables: dict[str, TableOutcome]
    report: dict[str, Any] = field(default_factory=dict)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


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


def _outcome(spec: TableSpec, table: pl.DataFrame, findings: pl.DataFrame, order: tuple[str, ...], config: LongtailConfig, text_columns: list[str]) -> TableOutcome:
    """Split a table by its findings, repair what the rules fix, and check the counts reconcile."""
    original = table.drop(INVALID_FIELDS, INVALID_VALUES)
    quarantine = _quarantine_rows(original, findings, order)
    kept_with_row = original.join(quarantine.select(SOURCE_ROW), on=SOURCE_ROW, how="anti").sort(SOURCE_ROW)
    flags = _flag_rows(kept_with_row, findings)
    kept = _repair_text(kept_with_row, text_columns, config).drop(SOURCE_ROW)
    outcome = TableOutcome(spec.name, table.height, kept, quarantine, flags)
    reconcile(outcome)
    contract = CLEAN_CONTRACTS.get(spec.name)
    if contract is not None:
        contract.validate(kept.select(spec.column_names))
    return outcome


def reconcile(outcome: TableOutcome) -> None:
    """Raise unless every input row is either kept or quarantined, exactly once."""
    if outcome.kept.height + outcome.quarantine.height != outcome.input_rows:
        raise ReconciliationError(
            f"{outcome.name}: kept {outcome.kept.height} + quarantined {outcome.quarantine.height} != input {outcome.input_rows}"
        )
    if outcome.quarantine[SOURCE_ROW].n_unique() != outcome.quarantine.height:
        raise ReconciliationError(f"{outcome.name}: a row was quarantined twice")


def audit(
    items: pl.DataFrame,
    events: pl.DataFrame,
    config: LongtailConfig,
    on_step: StepCallback | None = None,
    users: pl.DataFrame | None = None,
    judgments: pl.DataFrame | None = None,
) -> AuditResult:
    """Audit and clean canonical items and events, and users and judgments when given (as returned by the loaders)."""
    step = on_step or (lambda _name: None)
    quality = config.quality
    wall_clock = _parse_time(quality.reference_time) or datetime.now(timezone.utc)
    now = wall_clock + timedelta(seconds=quality.future_tolerance_seconds)
    catalogue_start = _parse_time(quality.catalogue_start)

    step("items: validity")
    item_findings = [checks.unparseable_fields(items), checks.item_validity(items, quality, now, catalogue_start)]
    step("items: duplicates")
    item_findings.append(checks.item_duplicates(items, quality, config.seed))
    step("items: outliers and consistency")
    item_findings += [checks.price_outliers(items, quality), checks.category_consistency(items)]
    step("items: text noise")
    item_findings.append(checks.text_noise_findings(items, ITEM_TEXT_COLUMNS, quality))
    all_item_findings = pl.concat(item_findings)
    item_outcome = _outcome(ITEMS, items, all_item_findings, checks.ITEM_QUARANTINE_ORDER, config, ITEM_TEXT_COLUMNS)

    step("events: validity")
    event_findings = [checks.unparseable_fields(events), checks.event_validity(events, quality, now, catalogue_start)]
    step("events: bot-like users")
    bot_findings, user_rates = checks.bot_users(events, quality)
    event_findings.append(bot_findings)
    step("events: references to items")
    event_findings.append(checks.event_references(events, items, item_outcome.kept["item_id"]))
    step("events: text noise")
    event_findings.append(checks.text_noise_findings(events, EVENT_TEXT_COLUMNS, quality))
    outcomes = {"items": item_outcome}
    inputs = {"items": items, "events": events}
    findings = {"items": all_item_findings}
    if users is not None:
        findings["users"] = pl.concat([checks.unparseable_fields(users), checks.user_validity(users)])
        outcomes["users"] = _outcome(USERS, users, findings["users"], checks.USER_QUARANTINE_ORDER, config, [])
        inputs["users"] = users
        event_findings.append(checks.unknown_users(events, outcomes["users"].kept))
    findings["events"] = pl.concat(event_findings)
    outcomes["events"] = _outcome(EVENTS, events, findings["events"], checks.EVENT_QUARANTINE_ORDER, config, EVENT_TEXT_COLUMNS)
    if judgments is not None:
        judgment_checks = checks.judgment_validity(judgments, items, item_outcome.kept["item_id"])
        findings["judgments"] = pl.concat([checks.unparseable_fields(judgments), judgment_checks])
        outcomes["judgments"] = _outcome(JUDGMENTS, judgments, findings["judgments"], checks.JUDGMENT_QUARANTINE_ORDER, config, ["query"])
        inputs["judgments"] = judgments

    step("statistics")
    report = statistics.build_report(inputs, outcomes, findings, user_rates, wall_clock, config)
    return AuditResult(outcomes, report)
