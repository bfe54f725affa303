"""Data commands: `audit` a catalogue and its events, measure `imbalance`, `convert` a bundled dataset or a transaction log to files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from longtail.cli.inputs import bundled_dataset, load_catalogue
from longtail.cli.options import BundledDatasetOption, ConfigOption, DatasetsRootOption, ItemsFileOption
from longtail.cli.terminal import console, data_warnings, progress
from longtail.core.config import load_config
from longtail.core.errors import LongtailError
from longtail.pipeline.audit_step import RUN_AUDIT_STEPS, run_audit
from longtail.quality.audit import AuditResult

commands = typer.Typer()


def audit_with_progress(
    items: Path,
    events: Path,
    out: Path,
    config: Path | None,
    users: Path | None = None,
    judgments: Path | None = None,
    executor: str | None = None,
    master: str | None = None,
) -> AuditResult:
    """Run the audit with a progress bar over its steps; `executor`/`master` override pipeline.executor/spark_master."""
    settings = load_config(config)
    overrides = {key: value for key, value in (("executor", executor), ("spark_master", master)) if value is not None}
    if master is not None and executor is None:
        overrides["executor"] = "spark"  # a master only makes sense for Spark
    if overrides:
        settings = settings.model_copy(update={"pipeline": settings.pipeline.model_validate(settings.pipeline.model_dump() | overrides)})
    with progress() as bar:
        task = bar.add_task("audit", total=RUN_AUDIT_STEPS)
        with data_warnings():
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
        table.add_row(name, f"{summary['input_rows']:,}", f"{summary['kept_rows']:,}", f"{summary['quarantined_rows']:,}", f"{summary['flagged_rows']:,}", top)
    console.print(table)
    console.print(f"Report: [bold]{out_dir / 'report.html'}[/]  JSON: {out_dir / 'report.json'}")


@commands.command()
def audit(
    items: Annotated[Path, typer.Option(help="items file (.csv, .tsv, .parquet, .jsonl)")],
    events: Annotated[Path, typer.Option(help="events file (.csv, .tsv, .parquet, .jsonl) or a folder of such part files")],
    out: Annotated[Path, typer.Option(help="output directory (replaced atomically)")],
    config: ConfigOption = None,
    users: Annotated[Path | None, typer.Option(help="optional users file")] = None,
    judgments: Annotated[Path | None, typer.Option(help="optional search judgments file")] = None,
    executor: Annotated[str | None, typer.Option(help="local or spark (overrides pipeline.executor)")] = None,
    master: Annotated[str | None, typer.Option(help="Spark master, local[N] or spark://host:port (implies --executor spark)")] = None,
) -> None:
    """Audit and clean a catalogue and its events (a file or a folder of part files); write report, clean tables, quarantine and flags."""
    print_audit_summary(audit_with_progress(items, events, out, config, users, judgments, executor, master), out)


@dataclass(frozen=True)
class WrittenTable:
    """One table `convert` wrote: its name, row count and file."""

    name: str
    rows: int
    path: Path


def convert_dataset(
    dataset: str | None, out: Path, fmt: str, datasets_root: Path | None, transactions: Path | None = None, config: Path | None = None
) -> tuple[list[WrittenTable], str]:
    """Write a bundled dataset's, or a transaction log's, items and events as canonical files; the tables written and the data's provenance.

    A transaction log also gets `conversion.json`: what the converter found (column roles, returns, guests) and kept.
    """
    from longtail.data.loaders import read_raw
    from longtail.data.transactions import convert_transactions

    if (dataset is None) == (transactions is None):
        raise LongtailError("give either a dataset NAME or --transactions FILE")
    if transactions is not None:
        data_config = load_config(config).data
        with data_warnings():
            converted = convert_transactions(read_raw(transactions, data_config.csv_separator, data_config.encoding), data_config, transactions)
        frames, provenance = {"items": converted.items, "events": converted.events}, json.dumps(converted.summary, ensure_ascii=False)
    else:
        assert dataset is not None  # guaranteed by the either/or check above
        data = bundled_dataset(dataset, datasets_root)
        frames, provenance = {"items": data.items, "events": data.events}, data.provenance
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in frames.items():
        target = out / f"{name}.{fmt}"
        if fmt == "csv":
            frame.write_csv(target)
        elif fmt == "jsonl":
            frame.write_ndjson(target)
        else:
            frame.write_parquet(target)
        written.append(WrittenTable(name, frame.height, target))
    if transactions is not None:
        (out / "conversion.json").write_text(provenance, encoding="utf-8")
    return written, provenance


@commands.command()
def convert(
    out: Annotated[Path, typer.Option(help="directory for items and events files")],
    dataset: Annotated[str | None, typer.Argument(help="beauty, sports, toys, scientific, zh-reviews, gram-beauty, gram-toys")] = None,
    transactions: Annotated[Path | None, typer.Option(help="a shop's line-item log (one row per invoice line) instead of a bundled dataset")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or jsonl")] = "parquet",
    config: ConfigOption = None,
    datasets_root: DatasetsRootOption = None,
) -> None:
    """Convert a bundled public dataset, or a transaction log, into canonical items and events files."""
    written, provenance = convert_dataset(dataset, out, fmt, datasets_root, transactions, config)
    for table in written:
        console.print(f"{table.name}: {table.rows:,} rows -> {table.path}")
    console.print(f"source: {provenance}", highlight=False)


def measure_imbalance(
    out: Path, items: Path | None, events: Path | None, dataset: str | None, config: Path | None, datasets_root: Path | None
) -> tuple[dict[str, Any], str]:
    """Compute and write the imbalance report of a catalogue and its events; the report and what it was measured on."""
    from longtail.balance.imbalance import imbalance_report, write_imbalance
    from longtail.data.schema import EVENTS, empty_table

    settings = load_config(config)
    item_table, event_table = load_catalogue(items, events, dataset, datasets_root, settings)
    buckets = settings.recommend
    report = imbalance_report(
        item_table, event_table if event_table is not None else empty_table(EVENTS), buckets.head_item_share, buckets.tail_interaction_share
    )
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
