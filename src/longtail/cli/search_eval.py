"""Search commands that learn from and score against graded judgments: `split-judgments`, `train-ranker`, `evaluate-search`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from longtail.cli.inputs import read_canonical
from longtail.cli.options import ConfigOption, ItemsFileOption
from longtail.cli.terminal import console
from longtail.core.config import load_config
from longtail.data.schema import ITEMS

commands = typer.Typer()
JudgmentsOption = Annotated[Path, typer.Option(help="judgments file (query_id, query, item_id, grade[, relevance]): CSV, Parquet or JSONL")]
SeedOption = Annotated[int, typer.Option(help="seed of the split of the judgments by query (70% train / 10% validation / 20% test)")]
# The evaluation table's columns: (view, metric) of each run's summary.
EVALUATION_COLUMNS = (("condensed", "NDCG@10"), ("full", "NDCG@10"), ("full", "Recall@100"))


@dataclass(frozen=True)
class RankerSummary:
    """What `train-ranker` trained: query counts, the early-stopping point and its validation scores."""

    index: Path
    train_queries: int
    validation_queries: int
    best_iteration: int
    validation_ndcg10: float
    validation_rmse: float


@dataclass(frozen=True)
class SearchEvaluation:
    """What `evaluate-search` scored: the part and query count, each run's headline figures, and where the report is."""

    part: str
    queries: int
    runs: dict[str, dict[str, float]]
    report: Path


def split_judgment_file(judgments: Path, out: Path, seed: int) -> dict[str, Path]:
    """Split a judgments file by query and write train/validation/test CSVs; returns each part's path."""
    from longtail.data.query_split import split_by_query, write_split
    from longtail.evaluate.search_metrics import load_judgments

    return write_split(split_by_query(load_judgments(judgments), seed=seed), out)


def train_index_ranker(index_dir: Path, judgments: Path, seed: int) -> RankerSummary:
    """Train the learned ranker of an index folder on the train queries of the judgments and save it there."""
    from longtail.pipeline.search_ranking_step import train_ranker_step
    from longtail.search.engine import SearchEngine

    trained = train_ranker_step(SearchEngine.open(index_dir), judgments, seed)
    return RankerSummary(
        index_dir,
        trained["train_queries"],
        trained["validation_queries"],
        trained["best_iteration"],
        trained["validation_ndcg10"],
        trained["validation_rmse"],
    )


def evaluate_judged_search(
    judgments: Path,
    out: Path,
    index_dir: Path | None,
    items: Path | None,
    config: Path | None,
    part: str,
    seed: int,
    full: bool,
    limit: int | None,
) -> SearchEvaluation:
    """Score an index (or a new index of `items`) on one part of the judgment split; writes the JSON and HTML report into `out`."""
    from longtail.evaluate.search_eval import REPORT_NAME
    from longtail.pipeline.search_ranking_step import evaluate_search_step, open_engine

    settings = load_config(config)
    item_table = read_canonical(items, ITEMS, settings) if items is not None else None
    engine = open_engine(index_dir, item_table, settings, out / "index")
    report = evaluate_search_step(engine, judgments, out, part, seed, full, limit)
    runs = {
        name: {f"{view} {metric}": run[view]["metrics"][metric] for view, metric in EVALUATION_COLUMNS if view in run} for name, run in report["runs"].items()
    }
    return SearchEvaluation(part, report["queries"], runs, out / f"{REPORT_NAME}.html")


@commands.command("split-judgments")
def split_judgments(
    judgments: JudgmentsOption,
    out: Annotated[Path, typer.Option(help="folder for train.csv, validation.csv, test.csv")],
    seed: SeedOption = 42,
) -> None:
    """Split a judgment file by query into train / validation / test, so no query is in two parts."""
    paths = split_judgment_file(judgments, out, seed)
    console.print(", ".join(f"{part}: [bold]{path}[/]" for part, path in paths.items()))


@commands.command("train-ranker")
def train_ranker(
    index_dir: Annotated[Path, typer.Option("--index", help="an index folder built by `longtail index`; the ranker is saved into it")],
    judgments: JudgmentsOption,
    seed: SeedOption = 42,
) -> None:
    """Train the index's learned ranker (LightGBM LambdaRank + relevance regressor) on the train queries, early-stopped on validation."""
    summary = train_index_ranker(index_dir, judgments, seed)
    console.print(
        f"ranker: {summary.train_queries:,} train / {summary.validation_queries:,} validation queries, best iteration "
        f"{summary.best_iteration}, validation NDCG@10 {summary.validation_ndcg10:.4f}, relevance RMSE {summary.validation_rmse:.4f}; "
        f"saved in [bold]{summary.index}[/]"
    )


def print_search_evaluation(evaluation: SearchEvaluation) -> None:
    """Each run's condensed and full-catalogue NDCG@10 and full Recall@100 as a table, then where the report is."""
    table = Table(title=f"Search evaluation ({evaluation.queries:,} {evaluation.part} queries)")
    table.add_column("run")
    labels = [f"{view} {metric}" for view, metric in EVALUATION_COLUMNS]
    for label in labels:
        table.add_column(label, justify="right")
    for name, figures in evaluation.runs.items():
        table.add_row(name, *[f"{figures[label]:.4f}" if label in figures else "–" for label in labels])
    console.print(table)
    console.print(f"report: [bold]{evaluation.report}[/]")


@commands.command("evaluate-search")
def evaluate_search(
    judgments: JudgmentsOption,
    out: Annotated[Path, typer.Option(help="folder for search_evaluation.json and .html")],
    index_dir: Annotated[Path | None, typer.Option("--index", help="an index folder; omit it to index --items first")] = None,
    items: ItemsFileOption = None,
    config: ConfigOption = None,
    part: Annotated[str, typer.Option(help="which queries of the split to score: train, validation, test or all")] = "test",
    seed: SeedOption = 42,
    full: Annotated[bool, typer.Option(help="also rank the whole catalogue (slower; unjudged items count as not relevant)")] = True,
    limit: Annotated[int | None, typer.Option(help="score only the first N queries of the part")] = None,
) -> None:
    """NDCG@10, MRR and Recall@100, condensed and full-catalogue, per segment, with paired bootstrap CIs between runs."""
    print_search_evaluation(evaluate_judged_search(judgments, out, index_dir, items, config, part, seed, full, limit))
