"""What the operator console shows: the reports found beside the served data, the live search model, the rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from longtail.serve.merchandising import Rule

ReportKind = Literal["audit", "evaluation", "ablation", "other"]
# Reports are written as report.json (audit, evaluate) or named after their step; deeper folders are not searched.
_REPORT_NAMES = ("report.json", "ablation.json", "intent.json", "update.json")
_MAX_DEPTH = 3


class ReportSummary(BaseModel):
    """A report file, what kind it is, when it was written, and its headline figures."""

    path: str = Field(description="relative to the served data directory")
    kind: ReportKind
    modified: datetime
    summary: dict[str, Any]


class ConsoleSnapshot(BaseModel):
    """The operator's view: reports newest first, the services answering searches, and the merchandising rules."""

    services: str
    index: str | None = Field(description="the search index folder the live model was opened from (null: model-free services)")
    index_built: datetime | None
    reports: list[ReportSummary]
    rules: list[Rule]
    ab_tests: str = "none: this server runs no A/B tests"  # A/B results, when a server runs them


def _kind(name: str, report: dict[str, Any]) -> ReportKind:
    if "tables" in report:
        return "audit"
    if name == "ablation.json":
        return "ablation"
    if name == "report.json":
        return "evaluation"
    return "other"


def _summary(kind: ReportKind, report: dict[str, Any]) -> dict[str, Any]:
    """The figures worth a glance: rows kept and quarantined per table for an audit, scalar fields otherwise."""
    if kind == "audit":
        figures = ("input_rows", "kept_rows", "quarantined_rows", "flagged_rows")
        tables = {name: {key: table.get(key) for key in figures} for name, table in report["tables"].items()}
        return {"tables": tables, "imbalance": "imbalance" in report}
    return {key: value for key, value in report.items() if isinstance(value, str | int | float | bool)}


def find_reports(folder: Path | None) -> list[ReportSummary]:
    """Report files under the served data directory (up to three folders deep), newest first; unreadable ones skipped."""
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in folder.rglob("*.json"):
        relative = path.relative_to(folder)
        if path.name not in _REPORT_NAMES or len(relative.parts) > _MAX_DEPTH + 1:
            continue
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a report being written right now, or not a report at all
        if isinstance(report, dict):
            kind = _kind(path.name, report)
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            found.append(ReportSummary(path=relative.as_posix(), kind=kind, modified=modified, summary=_summary(kind, report)))
    return sorted(found, key=lambda report: report.modified, reverse=True)


def console_snapshot(reports_dir: Path | None, services: object, rules: list[Rule]) -> ConsoleSnapshot:
    """The console's view of this server."""
    # Model-backed services keep their search engine, which knows the index folder it was opened from.
    index_dir = getattr(getattr(services, "engine", None), "directory", None)
    built = datetime.fromtimestamp(index_dir.stat().st_mtime, UTC) if index_dir is not None and index_dir.exists() else None
    return ConsoleSnapshot(
        services=type(services).__name__, index=None if index_dir is None else str(index_dir), index_built=built, reports=find_reports(reports_dir), rules=rules
    )
