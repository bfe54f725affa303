"""Data commands: `audit` a catalogue and its events, measure `imbalance`, `convert` a bundled dataset to files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from longtail.cli.inputs import bundled_dataset, load_catalogue
from longtail.cli.options import BundledDatasetOption, ConfigOption, DatasetsRootOption, ItemsFileOption
from longtail.cli.terminal import console, progress
from longtail.core.config import load_config
from longtail.pipeline.audit_step import RUN_AUDIT_STEPS, run_audit
from longtail.quality.audit import AuditResult

commands = typer.Typer()


def audit_with_progress(items: Path, events: Path, out: Path, config: Path | None, users: Path | None = None,
                        judgments: Path | None = None) -> AuditResult:
    """Run the audit with a progress bar over its steps."""
    settings = load_config(config)
    with progress() as bar:
        task = bar.add_task("audit", total=RUN_AUDIT_STEPS)
        result = run_audit(items, events, out, settings, lambda step: bar.update(task, advance=1, description=step), users, judgments)
        bar.update(task, completed=RUN_AUDIT_STEPS, description="done")
    return result


def print_audit_summary(result: AuditResult, out_dir: Path) -> None:
    """A table of input/kept/quarantined/flagged rows and the top reasons per table."""
    table = Table(title="Audit summary")
    for column in ("table", "input", "kept", "quarantined", "flagged", "top reasons"):
        table.add_column(column, justify="left" if column in ("table", "top reasons") else "right")
    for name, summary in result.report["tables"].items():
        reasons = {**summary["by_reason"], **summary["flags_by_reason"]}
        top = ", ".join(f"{reason} {count:,}" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:4]) or "-"
        table.add_row(
            name, f"{summary['input_rows']:,}", f"{summary['kept_rows']:,}", f"{summary['quarantined_rows']:,}", f"{summary['flagged_rows']:,}", top
        )
    console.print(table)
    console.print(f"Report: [bold]{out_dir / 'report.html'}[/]  JSON: {out_dir / 'report.json'}")


@commands.command()
def audit(
    items: Annotated[Path, typer.Option(help="items file (.csv, .tsv, .parquet, .jsonl)")],
    events: Annotated[Path, typer.Option(help="events file (.csv, .tsv, .parquet, .jsonl)")],
    out: Annotated[Path, typer.Option(help="output directory (replaced atomically)")],
    config: ConfigOption = None,
    users: Annotated[Path | None, typer.Option(help="optional users file")] = None,
    judgments: Annotated[Path | None, typer.Option(help="optional search judgments file")] = None,
) -> None:
    """Audit and clean a catalogue and its events; write report, clean tables, quarantine and flags."""
    print_audit_summary(audit_with_progress(items, events, out, config, users, judgments), out)


@dataclass(frozen=True)
class WrittenTable:
    """One table `convert` wrote: its name, row count and file."""

    name: str
    rows: int
    path: Path


def convert_dataset(dataset: str, out: Path, fmt: str, datasets_root: Path | None) -> tuple[list[WrittenTable], str]:
    """Write a bundled dataset's items and events as canonical files; the tables written and the data's provenance."""
    data = bundled_dataset(dataset, datasets_root)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (("items", data.items), ("events", data.events)):
        target = out / f"{name}.{fmt}"
        if fmt == "csv":
            frame.write_csv(target)
        elif fmt == "jsonl":
            frame.write_ndjson(target)
        else:
            frame.write_parquet(target)
        written.append(WrittenTable(name, frame.height, target))
    return written, data.provenance


@commands.command()
def convert(
    dataset: Annotated[str, typer.Argument(help="beauty, sports, toys, scientific, zh-reviews, gram-beauty, gram-toys")],
    out: Annotated[Path, typer.Option(help="directory for items and events files")],
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or jsonl")] = "parquet",
    datasets_root: DatasetsRootOption = None,
) -> None:
    """Convert a bundled public dataset into canonical items and events files."""
    written, provenance = convert_dataset(dataset, out, fmt, datasets_root)
    for table in written:
        console.print(f"{table.name}: {table.rows:,} rows -> {table.path}")
    console.print(f"source: {provenance}")


def measure_imbalance(out: Path, items: Path | None, events: Path | None, dataset: str | None, config: Path | None,
                      datasets_root: Path | None) -> tuple[dict[str, Any], str]:
    """Compute and write the imbalance report of a catalogue and its events; the report and what it was measured on."""
    from longtail.balance.imbalance import imbalance_report, write_imbalance
    from longtail.data.schema import EVENTS, empty_table

    settings = load_config(config)
    item_table, event_table = load_catalogue(items, events, dataset, datasets_root, settings)
    buckets = settings.recommend
    report = imbalance_report(item_table, event_table if event_table is not None else empty_table(EVENTS),
                              buckets.head_item_share, buckets.tail_interaction_share)
    source = dataset or str(items)
    write_imbalance(report, out, source, settings)
    return report, source


def print_imbalance(report: dict[str, Any], source: str) -> None:
    """The headline imbalance figures as a table: popularity, segments, categories, event types, users."""
    table = Table(title=f"Imbalance: {source}")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    popularity = report["popularity"]
    if popularity is None:
        table.add_row("item popularity", "no interactions")
    else:
        table.add_row("items / interactions", f"{popularity['items']:,} / {popularity['interactions']:,}")
        table.add_row("item popularity Gini", f"{popularity['gini']:.3f}")
        for name, segment in popularity["segments"].items():
            table.add_row(f"{name} items: share of items / interactions", f"{segment['item_share']:.1%} / {segment['interaction_share']:.1%}")
    for title, key in (("items per category", "categories"), ("interactions per category", "category_interactions"), ("events per event type", "event_types")):
        balance = report[key]
        ratio = "-" if balance["imbalance_ratio"] is None else f"{balance['imbalance_ratio']:,}x"
        table.add_row(f"{title}: max / min, n", f"{balance['largest']:,} / {balance['smallest']:,} ({ratio}), {balance['labels']:,}")
    users = report["users"]
    if users["users"]:
        quantiles = users["quantiles"]
        table.add_row("users / user-activity Gini", f"{users['users']:,} / {users['gini']:.3f}")
        table.add_row("events per user: median / p90 / p99 / max", f"{quantiles['p50']:g} / {quantiles['p90']:g} / {quantiles['p99']:g} / {users['max']:,}")
    console.print(table)


@commands.command()
def imbalance(
    out: Annotated[Path, typer.Option(help="output directory for imbalance.json, imbalance.html and config.yaml")],
    items: ItemsFileOption = None,
    events: Annotated[Path | None, typer.Option(help="events file; without it only category balance is measured")] = None,
    dataset: BundledDatasetOption = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (head/tail buckets from section recommend); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = None,
) -> None:
    """Measure popularity skew (Gini, head/torso/tail), category, event-type and user-activity imbalance."""
    report, source = measure_imbalance(out, items, events, dataset, config, datasets_root)
    print_imbalance(report, source)
    console.print(f"Report: [bold]{out / 'imbalance.html'}[/]  JSON: {out / 'imbalance.json'}")
