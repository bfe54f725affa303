"""The `longtail` command line: audit, convert and demo, with progress bars and readable tables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from longtail.config import load_config
from longtail.data.adapters import load_dataset
from longtail.errors import LongtailError
from longtail.pipeline.audit_step import RUN_AUDIT_STEPS, run_audit
from longtail.quality.audit import AuditResult

app = typer.Typer(help="Longtail: e-commerce search and recommendation that serves the long tail.", no_args_is_help=True)
console = Console()
error_console = Console(stderr=True)
REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DATA = REPO_ROOT / "data" / "demo"
DEFAULT_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


def _fail(error: LongtailError) -> None:
    error_console.print(f"[bold red]error:[/] {error}", highlight=False, markup=True)
    raise typer.Exit(code=2)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console, transient=False)


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


@app.command()
def audit(
    items: Annotated[Path, typer.Option(help="items file (.csv, .tsv, .parquet, .jsonl)")],
    events: Annotated[Path, typer.Option(help="events file (.csv, .tsv, .parquet, .jsonl)")],
    out: Annotated[Path, typer.Option(help="output directory (replaced atomically)")],
    config: Annotated[Path | None, typer.Option(help="YAML config; defaults when omitted")] = None,
) -> None:
    """Audit and clean a catalogue and its events; write report, clean tables, quarantine and flags."""
    try:
        settings = load_config(config)
        with _progress() as progress:
            task = progress.add_task("audit", total=RUN_AUDIT_STEPS)

            def advance(step: str) -> None:
                progress.update(task, advance=1, description=step)

            result = run_audit(items, events, out, settings, advance)
            progress.update(task, completed=RUN_AUDIT_STEPS, description="done")
    except LongtailError as error:
        _fail(error)
    print_audit_summary(result, out)


@app.command()
def convert(
    dataset: Annotated[str, typer.Argument(help="beauty, sports, toys, scientific, zh-reviews, gram-beauty, gram-toys")],
    out: Annotated[Path, typer.Option(help="directory for items and events files")],
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or jsonl")] = "parquet",
    datasets_root: Annotated[Path, typer.Option(help="folder holding the public datasets")] = DEFAULT_DATASETS,
) -> None:
    """Convert a bundled public dataset into canonical items and events files."""
    try:
        data = load_dataset(dataset, datasets_root)
    except LongtailError as error:
        _fail(error)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("items", data.items), ("events", data.events)):
        target = out / f"{name}.{fmt}"
        if fmt == "csv":
            frame.write_csv(target)
        elif fmt == "jsonl":
            frame.write_ndjson(target)
        else:
            frame.write_parquet(target)
        console.print(f"{name}: {frame.height:,} rows -> {target}")
    console.print(f"source: {data.provenance}")


@app.command()
def evaluate(
    out: Annotated[Path, typer.Option(help="output directory for report.html, report.json and config.yaml")],
    model: Annotated[list[str], typer.Option(help="recommender to evaluate (repeat the option): popularity, itemknn, als, ease, content, sasrec")] = ["popularity", "ease"],  # noqa: B006
    dataset: Annotated[str | None, typer.Option(help="a bundled public dataset (beauty, sports, toys, scientific, gram-beauty, gram-toys)")] = None,
    items: Annotated[Path | None, typer.Option(help="your items file, instead of --dataset")] = None,
    events: Annotated[Path | None, typer.Option(help="your events file, instead of --dataset")] = None,
    protocol: Annotated[str, typer.Option(help="loo (last item per user) or temporal (one global time cut)")] = "loo",
    max_users: Annotated[int | None, typer.Option(help="evaluate a random sample of this many users")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config; defaults when omitted")] = None,
    datasets_root: Annotated[Path, typer.Option(help="folder holding the public datasets")] = DEFAULT_DATASETS,
) -> None:
    """Fit recommenders and evaluate them with full-ranking metrics, segments and bootstrap intervals."""
    from longtail.data.loaders import load_table
    from longtail.data.schema import EVENTS, ITEMS
    from longtail.pipeline.evaluate_step import evaluate_models

    try:
        settings = load_config(config)
        if dataset is not None:
            data = load_dataset(dataset, datasets_root)
            item_table, event_table = data.items, data.events
        elif items is not None and events is not None:
            columns, separator = settings.data.columns, settings.data.csv_separator
            item_table = load_table(items, ITEMS, columns.items, separator)
            event_table = load_table(events, EVENTS, columns.events, separator)
        else:
            raise LongtailError("give --dataset, or both --items and --events")
        with _progress() as progress:
            task = progress.add_task("evaluate", total=2 * len(model))
            runs = evaluate_models(item_table, event_table, model, settings, out, protocol, max_users,
                                   advance=lambda step: progress.update(task, advance=1, description=step))
    except LongtailError as error:
        _fail(error)
    table = Table(title=f"Test metrics ({runs[0]['protocol']}, full ranking)")
    for column in ("model", "HR@10", "NDCG@10", "MRR", "tail HR@10", "tail NDCG@10", "coverage@10", "train s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for run in runs:
        tail = run["segments"]["tail"]
        metrics = run["metrics"]
        table.add_row(run["model"], f"{metrics['HR@10']:.4f}", f"{metrics['NDCG@10']:.4f}", f"{metrics['MRR']:.4f}",
                      f"{tail['HR@10']:.4f}", f"{tail['NDCG@10']:.4f}", f"{metrics['coverage@10']:.3f}", f"{run['train_seconds']:.1f}")
    console.print(table)
    console.print(f"Report: [bold]{out / 'report.html'}[/]  JSON: {out / 'report.json'}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the demo writes its artifacts")] = Path("out/demo"),
) -> None:
    """Run the end-to-end demo on the bundled real data (Amazon Industrial & Scientific)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    console.rule("[bold]Longtail demo: data-quality audit")
    audit(items=DEMO_DATA / "items.csv", events=DEMO_DATA / "events.parquet", out=out / "audit", config=DEMO_DATA / "config.yaml")


if __name__ == "__main__":
    app()
