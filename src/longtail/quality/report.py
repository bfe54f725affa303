"""Render the audit report as HTML with charts, and write every audit artifact atomically."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from longtail.core.config import LongtailConfig, save_config
from longtail.reporting import charts
from longtail.reporting.pages import render_page
from longtail.quality.audit import AuditResult


def _charts(result: AuditResult) -> list[tuple[str, str]]:
    report = result.report
    figures = []
    for name, summary in report["tables"].items():
        reasons = {**summary["by_reason"], **{f"{k} (flag)": v for k, v in summary["flags_by_reason"].items()}}
        if reasons:
            figures.append((f"{name}: rows quarantined or flagged, by reason", charts.bar_chart(list(reasons), list(reasons.values()), f"{name} by reason", "rows", log=True)))
    for name in ("items", "events"):
        missing = {column: stats["missing_ratio"] for column, stats in report["completeness"][name].items()}
        figures.append((f"{name}: missing values per column", charts.bar_chart(list(missing), list(missing.values()), f"{name} missing ratio", "share of rows")))
    events = result.tables["events"].kept
    if events.height:
        daily = events.group_by(pl.col("timestamp").dt.date().alias("day")).len().sort("day")
        figures.append(("events per day (kept rows)", charts.line_chart(daily["day"].to_list(), daily["len"].to_list(), "events per day", "events")))
        per_user = events.group_by("user_id").len()["len"]
        figures.append(
            ("events per user (kept rows; log scale)", charts.histogram([math.log10(v) for v in per_user.to_list()], "events per user", "log10(events)"))
        )
    return figures + result.extra_charts


def render_html(result: AuditResult) -> str:
    """The report as one self-contained HTML page."""
    return render_page("audit.html", report=result.report, charts=_charts(result), sections=_sections(result.report))


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
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for folder in ("clean", "quarantine", "flags"):
            (staging / folder).mkdir()
        for name, outcome in result.tables.items():
            outcome.kept.write_parquet(staging / "clean" / f"{name}.parquet")
            outcome.quarantine.write_parquet(staging / "quarantine" / f"{name}.parquet")
            outcome.flags.write_parquet(staging / "flags" / f"{name}.parquet")
        merges = result.report.get("item_merges", {})
        pl.DataFrame({"item_id": list(merges), "merged_into": list(merges.values())}, schema={"item_id": pl.String, "merged_into": pl.String}).write_parquet(
            staging / "clean" / "item_merges.parquet"
        )
        (staging / "report.json").write_text(json.dumps(result.report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        (staging / "report.html").write_text(render_html(result), encoding="utf-8")
        save_config(config, staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir
