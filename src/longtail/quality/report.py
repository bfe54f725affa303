"""Render the audit report as HTML with charts, and write every audit artifact as one folder, all or nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl

from longtail.core.artifacts import atomic_folder
from longtail.core.config import LongtailConfig, save_config
from longtail.quality.audit import AuditResult
from longtail.reporting import charts
from longtail.reporting.writers import write_report_pair


def _charts(result: AuditResult) -> list[tuple[str, str]]:
    report = result.report
    figures = []
    for name, summary in report["tables"].items():
        reasons = {**summary["by_reason"], **{f"{k} (flag)": v for k, v in summary["flags_by_reason"].items()}}
        if reasons:
            figures.append(
                (
                    f"{name}: rows quarantined or flagged, by reason",
                    charts.bar_chart(list(reasons), list(reasons.values()), f"{name} by reason", "rows", log=True),
                )
            )
    for name in ("items", "events"):
        missing = {column: stats["missing_ratio"] for column, stats in report["completeness"][name].items()}
        figures.append(
            (f"{name}: missing values per column", charts.bar_chart(list(missing), list(missing.values()), f"{name} missing ratio", "share of rows"))
        )
    # An audit run on a cluster leaves its events in Parquet parts on the executors: no per-day or per-user charts then.
    events = result.tables["events"].kept if "events" in result.tables else pl.DataFrame()
    if events.height:
        daily = events.group_by(pl.col("timestamp").dt.date().alias("day")).len().sort("day")
        figures.append(("events per day (kept rows)", charts.line_chart(daily["day"].to_list(), daily["len"].to_list(), "events per day", "events")))
        per_user = events.group_by("user_id").len()["len"]
        figures.append(
            ("events per user (kept rows; log scale)", charts.histogram([math.log10(v) for v in per_user.to_list()], "events per user", "log10(events)"))
        )
    return figures + result.extra_charts


def _page_context(result: AuditResult) -> dict[str, Any]:
    """What the audit page shows: the report, its charts and its sections as indented JSON."""
    return {"report": result.report, "charts": _charts(result), "sections": _sections(result.report)}


def _sections(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (title, json.dumps(report[key], indent=2, ensure_ascii=False, default=str))
        for title, key in (
            ("Validity", "validity"),
            ("Consistency", "consistency"),
            ("Uniqueness", "uniqueness"),
            ("Outliers", "outliers"),
            ("Text noise", "text_noise"),
            ("Timeliness", "timeliness"),
            ("Imbalance", "imbalance"),
            ("Commerce (transaction lines)", "commerce"),
        )
        if key in report
    ]


def write_audit(result: AuditResult, out_dir: str | Path, config: LongtailConfig) -> Path:
    """Write report.json/html, clean/, quarantine/, flags/ and config.yaml; all or nothing."""
    with atomic_folder(out_dir) as staging:
        write_audit_files(result, staging, config)
    return Path(out_dir)


def write_audit_files(result: AuditResult, staging: Path, config: LongtailConfig) -> None:
    """Write the audit's artifacts into a folder being staged (tables the result holds; a cluster writes its own parts)."""
    for folder in ("clean", "quarantine", "flags"):
        (staging / folder).mkdir(exist_ok=True)
    for name, outcome in result.tables.items():
        outcome.kept.write_parquet(staging / "clean" / f"{name}.parquet")
        outcome.quarantine.write_parquet(staging / "quarantine" / f"{name}.parquet")
        outcome.flags.write_parquet(staging / "flags" / f"{name}.parquet")
    merges = result.report.get("item_merges", {})
    pl.DataFrame({"item_id": list(merges), "merged_into": list(merges.values())}, schema={"item_id": pl.String, "merged_into": pl.String}).write_parquet(
        staging / "clean" / "item_merges.parquet"
    )
    write_report_pair(staging / "report.json", staging / "report.html", result.report, "audit.html", _page_context(result))
    save_config(config, staging)
