"""Search commands: build an `index`, `search` it, and `finetune` the text encoder on the shop's own pairs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer
from rich.table import Table

from longtail.cli.inputs import load_catalogue, read_canonical
from longtail.cli.options import BundledDatasetOption, DatasetsRootOption, ItemsFileOption
from longtail.cli.terminal import console, shorten_label
from longtail.core.artifacts import atomic_folder
from longtail.core.config import load_config
from longtail.core.errors import LongtailError, UnknownIdError
from longtail.data.schema import EVENTS

if TYPE_CHECKING:
    from longtail.encode.finetune import FinetuneReport
    from longtail.search.engine import SearchEngine, SearchResults

commands = typer.Typer()
SEARCH_MODES = ("hybrid", "lexical", "dense")


@dataclass(frozen=True)
class IndexSummary:
    """What `index` built: where, how many documents, which ANN and how many users can get personalised results."""

    out: Path
    documents: int
    ann: str
    users_with_history: int


def build_index(out: Path, items: Path | None, events: Path | None, dataset: str | None, config: Path | None, datasets_root: Path | None) -> IndexSummary:
    """Build and write a search index folder from a catalogue (and events, for personalisation)."""
    from longtail.search.engine import SearchEngine

    settings = load_config(config)
    item_table, event_table = load_catalogue(items, events, dataset, datasets_root, settings)
    console.print(f"indexing {item_table.height:,} items with encoder [bold]{settings.encode.encoder}[/]")
    # Built beside `out` and swapped in whole: a server (re)starting meanwhile, or a build killed halfway, sees the old index.
    with atomic_folder(out) as staging:
        engine = SearchEngine.build(item_table, settings, events=event_table, directory=staging, show_progress=True)
    return IndexSummary(out, len(engine.lexical), engine.dense.kind, engine.recent["user_id"].n_unique())


@commands.command()
def index(
    out: Annotated[Path, typer.Option(help="index folder to write (BM25, vectors, ANN, config)")],
    items: ItemsFileOption = None,
    events: Annotated[Path | None, typer.Option(help="events file; users' recent items personalise `search --user`")] = None,
    dataset: BundledDatasetOption = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (sections encode and search); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = None,
) -> None:
    """Build a search index folder from a catalogue: BM25 + item vectors + ANN + the config that made them."""
    summary = build_index(out, items, events, dataset, config, datasets_root)
    console.print(f"index: [bold]{summary.out}[/]  ({summary.documents:,} documents, ANN: {summary.ann}, users with history: {summary.users_with_history:,})")


def run_searches(
    index_dir: Path, queries: Iterable[str], k: int, filters: list[str], user: str | None, mode: str
) -> Iterator[tuple[SearchEngine, str, SearchResults]]:
    """Open an index once (the encoder loads once) and search it for each query as it comes; the engine comes back too,
    for the items' details."""
    from longtail.search.engine import SearchEngine
    from longtail.search.filters import parse_filters

    if mode not in SEARCH_MODES:
        raise LongtailError(f"unknown mode '{mode}'; use hybrid, lexical or dense")
    search_filter = parse_filters(filters)
    engine = SearchEngine.open(index_dir)
    # Say why nothing could come back instead of printing an empty table.
    price_bound = search_filter.price_min if search_filter.price_min is not None else search_filter.price_max
    for field, value in (("category", search_filter.category), ("brand", search_filter.brand), ("price", price_bound)):
        if value is not None and (field not in engine.items.columns or engine.items[field].null_count() == engine.items.height):
            raise LongtailError(f"--filter on {field}: the catalogue in {index_dir} has no {field} values, so nothing could match")
    if user is not None and engine.recent.filter(pl.col("user_id") == user).height == 0:
        raise UnknownIdError(f"unknown user {user!r}: the index holds no history for them (build it with --events to personalise)")
    for query in queries:
        yield engine, query, engine.search(query, k, search_filter, user_id=user, mode=mode)  # type: ignore[arg-type]


def run_search(index_dir: Path, query: str, k: int, filters: list[str], user: str | None, mode: str) -> tuple[SearchEngine, SearchResults]:
    """Open an index and search it for one query."""
    engine, _, results = next(run_searches(index_dir, [query], k, filters, user, mode))
    return engine, results


def prompted_queries(read: Callable[[str], str] = input) -> Iterator[str]:
    """Queries typed at a prompt, one a line, until an empty line or end of input."""
    while True:
        try:
            line = read("query> ").strip()
        except EOFError:
            return
        if not line:
            return
        yield line


def file_queries(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 file, one query each."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise LongtailError(f"{path}: cannot read the queries file ({error.strerror})") from None
    queries = [line.strip() for line in lines if line.strip()]
    if not queries:
        raise LongtailError(f"{path}: no queries (one per line)")
    return queries


def print_search_results(engine: SearchEngine, query: str, results: SearchResults, user: str | None = None) -> None:
    """Results as a table (with where each retriever ranked them), the BM25 terms used, and facet counts."""
    title = f"'{query}'" + (f" for user {user}" + ("" if results.personalised else " (no history: not personalised)") if user else "")
    table = Table(title=f"Results for {title}")
    for column in ("#", "item", "title", "category", "brand", "price", "score", "bm25 #", "dense #"):
        table.add_column(
            column, justify="right" if column in ("#", "price", "score", "bm25 #", "dense #") else "left", min_width=24 if column == "title" else None
        )
    details = engine.items.select("category", "brand", "price")
    for position, hit in enumerate(results.hits, start=1):
        category, brand, price = details.row(hit.row)
        table.add_row(
            str(position),
            hit.item_id,
            hit.title[:80],
            shorten_label((category or "-").split(" > ")[-1], 28),
            brand or "-",
            "-" if price is None else f"{price:,.2f}",
            f"{hit.score:.4f}",
            str(hit.lexical_rank or "-"),
            str(hit.dense_rank or "-"),
        )
    console.print(table)
    if results.query_terms:
        console.print(f"BM25 terms: {' '.join(results.query_terms)}")
    for field, counts in results.facets.items():
        if counts:
            console.print(f"[bold]{field}[/]: " + ", ".join(f"{value} ({count})" for value, count in counts[:6]), highlight=False)


@commands.command()
def search(
    query: Annotated[str | None, typer.Argument(help="what to search for (English or Chinese); without it, --queries-file or a prompt")] = None,
    queries_file: Annotated[Path | None, typer.Option(help="search for each line of this file, loading the index and encoder once")] = None,
    index_dir: Annotated[Path, typer.Option("--index", help="an index folder built by `longtail index`")] = Path("out/index"),
    user: Annotated[str | None, typer.Option(help="personalise by this user's recent items")] = None,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="category=A > B, brand=X, price>=N, price<=N (repeatable)")] = None,
    k: Annotated[int, typer.Option(help="number of results")] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, lexical or dense")] = "hybrid",
) -> None:
    """Search an index and print the results, where each retriever ranked them, and facet counts; several queries (a file,
    or typed at a prompt when no query is given) share one loaded index and encoder."""
    if query is not None and queries_file is not None:
        raise LongtailError("give a query or --queries-file, not both")
    queries: Iterable[str] = [query] if query is not None else file_queries(queries_file) if queries_file is not None else prompted_queries()
    for engine, asked, results in run_searches(index_dir, queries, k, filters or [], user, mode):
        print_search_results(engine, asked, results, user)


def finetune_from_files(
    out: Path, judgments: Path | None, events: Path | None, items: Path | None, dataset: str | None, config: Path | None, datasets_root: Path | None
) -> FinetuneReport:
    """Gather (query, item text) pairs from judgments and/or search events and fine-tune the encoder on them."""
    from longtail.encode.finetune import finetune_encoder, pairs_from_judgments, pairs_from_search_events
    from longtail.encode.item_text import item_texts
    from longtail.evaluate.search_metrics import load_judgments

    settings = load_config(config)
    item_table, _ = load_catalogue(items, None, dataset, datasets_root, settings)
    texts = item_texts(item_table)
    pairs = []
    if judgments is not None:
        pairs += pairs_from_judgments(load_judgments(judgments, settings.data.columns.judgments), item_table, texts)
    if events is not None:
        pairs += pairs_from_search_events(read_canonical(events, EVENTS, settings), item_table, texts)
    if not pairs:
        raise LongtailError("no (query, item) pairs: give --judgments and/or --events with searches followed by clicks")
    return finetune_encoder(pairs, out, settings, show_progress=True)


@commands.command()
def finetune(
    out: Annotated[Path, typer.Option(help="folder for the fine-tuned model (load it with encode.model_path)")],
    judgments: Annotated[Path | None, typer.Option(help="judgments file (query, item_id, grade): pairs with grade >= 2")] = None,
    events: Annotated[Path | None, typer.Option(help="events file: search followed by click/cart/purchase in a session")] = None,
    items: ItemsFileOption = None,
    dataset: BundledDatasetOption = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (section finetune)")] = None,
    datasets_root: DatasetsRootOption = None,
) -> None:
    """Fine-tune the MiniLM encoder contrastively on the shop's own (query, item) pairs; full or LoRA per config."""
    report = finetune_from_files(out, judgments, events, items, dataset, config, datasets_root)
    console.print(
        f"{report.mode}: {report.train_pairs:,} pairs, {report.steps} steps, validation loss {report.initial_validation_loss:.4f} -> "
        f"{report.best_validation_loss:.4f} (best step {report.best_step}{', stopped early' if report.stopped_early else ''}); model: [bold]{out}[/]"
    )
