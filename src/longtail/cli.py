"""The `longtail` command line: audit, imbalance, convert, index, search, profile, finetune, evaluate, ablate, intent, train, update, serve, keys and demo, with progress bars and readable tables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from longtail.profile.profiles import ProfileSummary
    from longtail.search.engine import SearchEngine, SearchResults

from longtail.core.artifacts import atomic_folder
from longtail.core.config import LongtailConfig, load_config
from longtail.data.adapters import load_dataset
from longtail.data.loaders import load_table
from longtail.data.schema import EVENTS, ITEMS, TableSpec
from longtail.core.errors import LongtailError
from longtail.pipeline.audit_step import RUN_AUDIT_STEPS, run_audit
from longtail.quality.audit import AuditResult
from longtail.serve.auth import create_key, key_id_of
from longtail.serve.store import EventStore, open_store

app = typer.Typer(help="Longtail: e-commerce search and recommendation that serves the long tail.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys (stored hashed in the event store).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()
error_console = Console(stderr=True)
REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DATA = REPO_ROOT / "data" / "demo"
DEFAULT_DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
# Options several commands share, declared once so their flags and help read the same everywhere.
ConfigOption = Annotated[Path | None, typer.Option(help="YAML config; defaults when omitted")]
DatasetsRootOption = Annotated[Path, typer.Option(help="folder holding the public datasets")]
ItemsFileOption = Annotated[Path | None, typer.Option(help="your items file (.csv, .tsv, .parquet, .jsonl), instead of --dataset")]
BundledDatasetOption = Annotated[
    str | None, typer.Option(help="a bundled public dataset instead of --items/--events: beauty, sports, toys, scientific, zh-reviews, gram-beauty, gram-toys")
]


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
    config: ConfigOption = None,
    users: Annotated[Path | None, typer.Option(help="optional users file")] = None,
    judgments: Annotated[Path | None, typer.Option(help="optional search judgments file")] = None,
) -> None:
    """Audit and clean a catalogue and its events; write report, clean tables, quarantine and flags."""
    try:
        settings = load_config(config)
        with _progress() as progress:
            task = progress.add_task("audit", total=RUN_AUDIT_STEPS)

            def advance(step: str) -> None:
                progress.update(task, advance=1, description=step)

            result = run_audit(items, events, out, settings, advance, users, judgments)
            progress.update(task, completed=RUN_AUDIT_STEPS, description="done")
    except LongtailError as error:
        _fail(error)
    print_audit_summary(result, out)


@app.command()
def convert(
    dataset: Annotated[str, typer.Argument(help="beauty, sports, toys, scientific, zh-reviews, gram-beauty, gram-toys")],
    out: Annotated[Path, typer.Option(help="directory for items and events files")],
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or jsonl")] = "parquet",
    datasets_root: DatasetsRootOption = DEFAULT_DATASETS,
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


DataOption = Annotated[Path, typer.Option("--data", help="served directory: items (and events) tables; the SQLite store lives here")]


@app.command()
def serve(
    data: DataOption,
    port: Annotated[int | None, typer.Option(help="TCP port (default: serve.port, 8000)")] = None,
    host: Annotated[str | None, typer.Option(help="interface (default: serve.host, 127.0.0.1)")] = None,
    index_dir: Annotated[Path | None, typer.Option("--index", help="a search index from `longtail index` (default: DATA/index when built there): model-backed search, recommendations and live profiles")] = None,
    config: ConfigOption = None,
) -> None:
    """Serve search, recommendations, events and profiles over HTTP until interrupted (model-free defaults without an index)."""
    from longtail.serve.server import serve as run_server

    try:
        run_server(data, load_config(config), host, port, index_dir)
    except LongtailError as error:
        _fail(error)


@app.command()
def check(
    data: DataOption,
    index_dir: Annotated[Path | None, typer.Option("--index", help="the search index to verify (default: DATA/index when built there)")] = None,
    config: ConfigOption = None,
) -> None:
    """Verify what `serve` would open, without serving: the items table, the event store and the index's manifest (exit 2 on any problem)."""
    from longtail.serve.maintenance import check_served

    try:
        findings = check_served(data, load_config(config), index_dir)
    except LongtailError as error:
        _fail(error)
    for finding in findings:
        mark = "[green]ok[/]" if finding.ok else "[bold red]FAILED[/]"
        console.print(f"{mark} {finding.part}: {finding.detail}", highlight=False)
    if not all(finding.ok for finding in findings):
        raise typer.Exit(code=2)


@app.command()
def backup(
    data: DataOption,
    out: Annotated[Path, typer.Option(help="backup file, or a folder for a time-stamped one")],
    config: ConfigOption = None,
) -> None:
    """Copy the SQLite event store with SQLite's online backup, safe while serving (PostgreSQL: see the message)."""
    from longtail.serve.maintenance import backup_store

    try:
        written = backup_store(data, load_config(config), out)
    except LongtailError as error:
        _fail(error)
    console.print(f"backed up to {written}")


@app.command()
def restore(
    data: DataOption,
    backup_file: Annotated[Path, typer.Option("--from", help="a file written by `longtail backup`")],
    replace: Annotated[bool, typer.Option(help="replace the store already there (it is kept beside it); stop the server first")] = False,
    config: ConfigOption = None,
) -> None:
    """Put a backup in place of the served SQLite event store; the server must be stopped."""
    from longtail.serve.maintenance import restore_store

    try:
        moved = restore_store(data, load_config(config), backup_file, replace)
    except LongtailError as error:
        _fail(error)
    console.print(f"restored from {backup_file}" + (f"; the replaced store is kept at {moved}" if moved else ""))


def _open_key_store(data: Path, config: Path | None) -> EventStore:
    return open_store(load_config(config).serve, data)


@keys_app.command("create")
def keys_create(
    data: DataOption,
    scope: Annotated[list[str], typer.Option("--scope", help="read, write_events or admin; repeat for several")],
    label: Annotated[str, typer.Option(help="a note saying who or what uses the key")] = "",
    config: ConfigOption = None,
) -> None:
    """Create an API key and print it once; only its salted hash is stored."""
    try:
        with _open_key_store(data, config) as store:
            key = create_key(store, scope, label)
    except LongtailError as error:
        _fail(error)
    error_console.print(f"scopes: {', '.join(dict.fromkeys(scope))}. Save the key now: it cannot be shown again.")
    print(key)


@keys_app.command("list")
def keys_list(data: DataOption, config: ConfigOption = None) -> None:
    """List keys by id, scopes and state (never their secrets)."""
    try:
        with _open_key_store(data, config) as store:
            records = store.keys()
    except LongtailError as error:
        _fail(error)
    table = Table(title="API keys")
    for column in ("key id", "scopes", "label", "created", "revoked"):
        table.add_column(column)
    for record in records:
        revoked = record.revoked_at.isoformat(timespec="seconds") if record.revoked_at else "-"
        table.add_row(record.key_id, " ".join(record.scopes), record.label, record.created_at.isoformat(timespec="seconds"), revoked)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key id (the part after 'lt_'), or the whole key")],
    data: DataOption,
    config: ConfigOption = None,
) -> None:
    """Revoke a key; requests with it get 401 from then on."""
    try:
        with _open_key_store(data, config) as store:
            revoked = store.revoke_key(key_id_of(key_id))
    except LongtailError as error:
        _fail(error)
    if not revoked:
        error_console.print(f"[bold red]error:[/] no active key with id {key_id_of(key_id)!r}")
        raise typer.Exit(code=2)
    console.print(f"revoked {key_id_of(key_id)}")


def _read_canonical(path: Path, spec: TableSpec, mapping: dict[str, str], separator: str) -> pl.DataFrame:
    return load_table(path, spec, mapping, separator).select(spec.column_names)


def _catalogue(items: Path | None, events: Path | None, dataset: str | None, datasets_root: Path, settings: LongtailConfig) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Items (and optional events) from files in the canonical schema or from a bundled dataset."""
    if (items is None) == (dataset is None):
        raise LongtailError("give either --items FILE or --dataset NAME")
    if dataset is not None:
        data = load_dataset(dataset, datasets_root)
        return data.items, data.events
    columns, separator = settings.data.columns, settings.data.csv_separator
    item_table = _read_canonical(items, ITEMS, columns.items, separator)  # type: ignore[arg-type]
    event_table = _read_canonical(events, EVENTS, columns.events, separator) if events is not None else None
    return item_table, event_table


@app.command()
def index(
    out: Annotated[Path, typer.Option(help="index folder to write (BM25, vectors, ANN, config)")],
    items: ItemsFileOption = None,
    events: Annotated[Path | None, typer.Option(help="events file; users' recent items personalise `search --user`")] = None,
    dataset: BundledDatasetOption = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (sections encode and search); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = DEFAULT_DATASETS,
) -> None:
    """Build a search index folder from a catalogue: BM25 + item vectors + ANN + the config that made them."""
    from longtail.search.engine import SearchEngine

    try:
        settings = load_config(config)
        item_table, event_table = _catalogue(items, events, dataset, datasets_root, settings)
        console.print(f"indexing {item_table.height:,} items with encoder [bold]{settings.encode.encoder}[/]")
        # Built beside `out` and swapped in whole: a server (re)starting meanwhile, or a build killed halfway, sees the old index.
        with atomic_folder(out) as staging:
            engine = SearchEngine.build(item_table, settings, events=event_table, directory=staging, show_progress=True)
    except LongtailError as error:
        _fail(error)
    console.print(f"index: [bold]{out}[/]  ({len(engine.lexical):,} documents, ANN: {engine.dense.kind}, users with history: {engine.recent['user_id'].n_unique():,})")


def _tail(text: str, width: int) -> str:
    """The end of a long label (the most specific part of a category), marked as cut."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def print_search_results(engine: SearchEngine, query: str, results: SearchResults, user: str | None = None) -> None:
    """Results as a table (with where each retriever ranked them), the BM25 terms used, and facet counts."""
    title = f"'{query}'" + (f" for user {user}" + ("" if results.personalised else " (no history: not personalised)") if user else "")
    table = Table(title=f"Results for {title}")
    for column in ("#", "item", "title", "category", "brand", "price", "score", "bm25 #", "dense #"):
        table.add_column(column, justify="right" if column in ("#", "price", "score", "bm25 #", "dense #") else "left", min_width=24 if column == "title" else None)
    details = engine.items.select("category", "brand", "price")
    for position, hit in enumerate(results.hits, start=1):
        category, brand, price = details.row(hit.row)
        table.add_row(
            str(position), hit.item_id, hit.title[:80], _tail((category or "-").split(" > ")[-1], 28), brand or "-",
            "-" if price is None else f"{price:,.2f}", f"{hit.score:.4f}", str(hit.lexical_rank or "-"), str(hit.dense_rank or "-"),
        )
    console.print(table)
    if results.query_terms:
        console.print(f"BM25 terms: {' '.join(results.query_terms)}")
    for field, counts in results.facets.items():
        if counts:
            console.print(f"[bold]{field}[/]: " + ", ".join(f"{value} ({count})" for value, count in counts[:6]), highlight=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to search for (English or Chinese)")],
    index_dir: Annotated[Path, typer.Option("--index", help="an index folder built by `longtail index`")] = Path("out/index"),
    user: Annotated[str | None, typer.Option(help="personalise by this user's recent items")] = None,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="category=A > B, brand=X, price>=N, price<=N (repeatable)")] = None,
    k: Annotated[int, typer.Option(help="number of results")] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, lexical or dense")] = "hybrid",
) -> None:
    """Search an index and print the results, where each retriever ranked them, and facet counts."""
    from longtail.search.engine import SearchEngine
    from longtail.search.filters import parse_filters

    try:
        if mode not in ("hybrid", "lexical", "dense"):
            raise LongtailError(f"unknown mode '{mode}'; use hybrid, lexical or dense")
        search_filter = parse_filters(filters or [])
        engine = SearchEngine.open(index_dir)
        results = engine.search(query, k, search_filter, user_id=user, mode=mode)  # type: ignore[arg-type]
    except LongtailError as error:
        _fail(error)
    print_search_results(engine, query, results, user)


def print_profile(summary: ProfileSummary, titles: dict[str, str]) -> None:
    """A profile for people: the headline figures, then each part with the items or events behind it."""
    def title(item_id: str | None) -> str:
        return "-" if item_id is None else titles.get(item_id, item_id)[:70]

    band = summary.price_band
    console.print(
        f"[bold]{summary.user_id}[/]: {summary.events:,} events, last seen {summary.last_seen:%Y-%m-%d %H:%M} UTC, "
        f"{summary.activity.level} ({summary.activity.events_per_active_day:.2f} events per active day over {summary.activity.active_days} days), "
        + (f"price band {band.low:,.2f} / {band.median:,.2f} / {band.high:,.2f} over {band.items} items" if band else "no prices"),
        highlight=False,
    )
    interests = Table(title="Long-term interests (time-decayed): the items behind the vector")
    for column in ("item", "title", "share"):
        interests.add_column(column, justify="right" if column == "share" else "left")
    for contribution in summary.long_term_items:
        interests.add_row(contribution.item_id, title(contribution.item_id), f"{contribution.share:.1%}")
    console.print(interests)
    session = Table(title=f"Current session: {summary.session_events} events since {summary.session_start:%Y-%m-%d %H:%M}")
    for column in ("time", "event", "item", "title"):
        session.add_column(column)
    for moment in summary.session:
        session.add_row(f"{moment.timestamp:%Y-%m-%d %H:%M}", moment.event_type, moment.item_id or "-", title(moment.item_id))
    console.print(session)
    for name, rows in (("Categories", summary.categories), ("Brands", summary.brands)):
        dp = f" (ε = {summary.dp_epsilon:g} differentially private)" if name == "Categories" and summary.dp_epsilon else ""
        table = Table(title=f"{name} by affinity{dp}")
        for column in (name[:-1].lower().replace("categorie", "category"), "affinity", "items behind it"):
            table.add_column(column, justify="right" if column == "affinity" else "left")
        for affinity in rows:
            table.add_row(_tail(affinity.name, 60), f"{affinity.affinity:.1%}", ", ".join(f"{c.item_id} ({c.share:.0%})" for c in affinity.items))
        console.print(table)
    console.print("[bold]Intent[/] (event types in the recent window): " + (", ".join(f"{kind} {share:.0%}" for kind, share in summary.intent.items()) or "-"), highlight=False)


@app.command()
def profile(
    user: Annotated[str, typer.Argument(help="the user id, as it appears in the events")],
    items: ItemsFileOption = None,
    events: Annotated[Path | None, typer.Option(help="events file")] = None,
    dataset: BundledDatasetOption = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (sections profile and encode); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = DEFAULT_DATASETS,
    dp_epsilon: Annotated[float | None, typer.Option(help="release the category affinities with this ε (event-level differential privacy)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines instead of tables")] = False,
) -> None:
    """Build one user's profile from an events file and print it with the items and events behind each part."""
    import dataclasses
    import json

    from longtail.encode.factory import build_encoder
    from longtail.encode.item_text import item_texts
    from longtail.privacy.dp import category_domain
    from longtail.profile.profiles import build_profile, dp_category_shares, profile_items, summarise

    try:
        settings = load_config(config)
        if dp_epsilon is not None and dp_epsilon <= 0:
            raise LongtailError("--dp-epsilon must be positive")
        item_table, event_table = _catalogue(items, events, dataset, datasets_root, settings)
        if event_table is None:
            raise LongtailError("give --events (or --dataset): a profile is built from events")
        mine = event_table.filter(pl.col("user_id") == user)
        if mine.height == 0:
            raise LongtailError(f"no events for user {user!r} in the events")
        touched = item_table.filter(pl.col("item_id").is_in(mine["item_id"].drop_nulls().unique().implode()))
        vectors = build_encoder(settings.encode).encode(item_texts(touched)) if touched.height else None
        built = build_profile(user, mine, profile_items(touched, vectors), settings.profile)
        shares = None
        if dp_epsilon is not None:
            # The release time is the latest event in the whole file, not this user's own last event.
            at = event_table["timestamp"].max()
            shares = dp_category_shares(built, category_domain(item_table), dp_epsilon, at, settings.seed, settings.profile)  # type: ignore[arg-type]
        summary = summarise(built, settings.profile, shares, dp_epsilon)
    except LongtailError as error:
        _fail(error)
    if as_json:
        print(json.dumps(dataclasses.asdict(summary), default=str, ensure_ascii=False, indent=2))
        return
    print_profile(summary, dict(zip(touched["item_id"].to_list(), touched["title"].to_list())))


@app.command()
def finetune(
    out: Annotated[Path, typer.Option(help="folder for the fine-tuned model (load it with encode.model_path)")],
    judgments: Annotated[Path | None, typer.Option(help="judgments file (query, item_id, grade): pairs with grade >= 2")] = None,
    events: Annotated[Path | None, typer.Option(help="events file: search followed by click/cart/purchase in a session")] = None,
    items: ItemsFileOption = None,
    dataset: BundledDatasetOption = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (section finetune)")] = None,
    datasets_root: DatasetsRootOption = DEFAULT_DATASETS,
) -> None:
    """Fine-tune the MiniLM encoder contrastively on the shop's own (query, item) pairs; full or LoRA per config."""
    from longtail.encode.item_text import item_texts
    from longtail.encode.finetune import pairs_from_judgments, pairs_from_search_events, finetune_encoder
    from longtail.evaluate.search_metrics import load_judgments

    try:
        settings = load_config(config)
        item_table, _ = _catalogue(items, None, dataset, datasets_root, settings)
        texts = item_texts(item_table)
        pairs = []
        if judgments is not None:
            pairs += pairs_from_judgments(load_judgments(judgments, settings.data.columns.judgments), item_table, texts)
        if events is not None:
            pairs += pairs_from_search_events(_read_canonical(events, EVENTS, settings.data.columns.events, settings.data.csv_separator), item_table, texts)
        if not pairs:
            raise LongtailError("no (query, item) pairs: give --judgments and/or --events with searches followed by clicks")
        report = finetune_encoder(pairs, out, settings, show_progress=True)
    except LongtailError as error:
        _fail(error)
    console.print(
        f"{report.mode}: {report.train_pairs:,} pairs, {report.steps} steps, validation loss {report.initial_validation_loss:.4f} -> "
        f"{report.best_validation_loss:.4f} (best step {report.best_step}{', stopped early' if report.stopped_early else ''}); model: [bold]{out}[/]"
    )


def print_imbalance(report: dict, source: str) -> None:
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


@app.command()
def imbalance(
    out: Annotated[Path, typer.Option(help="output directory for imbalance.json, imbalance.html and config.yaml")],
    items: ItemsFileOption = None,
    events: Annotated[Path | None, typer.Option(help="events file; without it only category balance is measured")] = None,
    dataset: BundledDatasetOption = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (head/tail buckets from section recommend); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = DEFAULT_DATASETS,
) -> None:
    """Measure popularity skew (Gini, head/torso/tail), category, event-type and user-activity imbalance."""
    from longtail.balance.imbalance import imbalance_report, write_imbalance
    from longtail.data.schema import empty_table

    try:
        settings = load_config(config)
        item_table, event_table = _catalogue(items, events, dataset, datasets_root, settings)
        buckets = settings.recommend
        report = imbalance_report(item_table, event_table if event_table is not None else empty_table(EVENTS),
                                  buckets.head_item_share, buckets.tail_interaction_share)
        source = dataset or str(items)
        write_imbalance(report, out, source, settings)
    except LongtailError as error:
        _fail(error)
    print_imbalance(report, source)
    console.print(f"Report: [bold]{out / 'imbalance.html'}[/]  JSON: {out / 'imbalance.json'}")


DEMO_QUERIES = ("sanding roll 120 grit", "3d printer filamnet pla", "digital caliper stainless")


@app.command()
def evaluate(
    out: Annotated[Path, typer.Option(help="output directory for report.html, report.json and config.yaml")],
    model: Annotated[list[str], typer.Option(help="recommender to evaluate (repeat the option): popularity, itemknn, als, ease, content, sasrec")] = ["popularity", "ease"],  # noqa: B006
    dataset: BundledDatasetOption = None,
    items: ItemsFileOption = None,
    events: Annotated[Path | None, typer.Option(help="your events file, instead of --dataset")] = None,
    protocol: Annotated[str, typer.Option(help="loo (last item per user) or temporal (one global time cut)")] = "loo",
    max_users: Annotated[int | None, typer.Option(help="evaluate a random sample of this many users")] = None,
    config: ConfigOption = None,
    datasets_root: DatasetsRootOption = DEFAULT_DATASETS,
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
def intent(
    out: Annotated[Path, typer.Option(help="output directory for intent.json, intent.html, the model and config.yaml")],
    dataset: BundledDatasetOption = None,
    items: ItemsFileOption = None,
    events: Annotated[Path | None, typer.Option(help="your events file, instead of --dataset")] = None,
    max_users: Annotated[int | None, typer.Option(help="use a random sample of this many users")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (section intent); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = DEFAULT_DATASETS,
) -> None:
    """Train the behaviour-intent model (next action, browse/compare/buy) on some users; evaluate it on the others against baselines."""
    from longtail.pipeline.intent_step import REPORT_FILE, RESULT_FILE, run_intent

    try:
        settings = load_config(config)
        item_table, event_table = _catalogue(items, events, dataset, datasets_root, settings)
        if event_table is None:
            raise LongtailError("the intent model learns from events: give --events with --items")
        with _progress() as progress:
            task = progress.add_task("intent", total=3)
            result = run_intent(item_table, event_table, settings, out, dataset or str(events), max_users,
                                advance=lambda step: progress.update(task, advance=1, description=step))
    except LongtailError as error:
        _fail(error)
    for head, outcome in result["heads"].items():
        table = Table(title=f"{head} on {result['users']['test']:,} held-out users ({result['rows']['test']:,} positions)")
        for column in ("model", "accuracy", "macro-F1", "macro AUC", *(f"{name} F1" for name in outcome["classes"]), "macro-F1 vs model"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for name, metrics in outcome["models"].items():
            compared = outcome["comparisons"].get(name)
            interval = f"{compared['difference']:+.4f} [{compared['low']:+.4f}, {compared['high']:+.4f}]" if compared else "-"
            per_class = [f"{metrics['per_class'][c]['f1']:.3f}" for c in outcome["classes"]]
            table.add_row(name, f"{metrics['accuracy']:.4f}", f"{metrics['macro_f1']:.4f}", f"{metrics['macro_auc']:.4f}", *per_class, interval)
        console.print(table)
    for note in result["notes"]:
        console.print(note, highlight=False)
    console.print(f"Report: [bold]{out / REPORT_FILE}[/]  JSON: {out / RESULT_FILE}")


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="model folder to write (model.pt, items.json, history.parquet, config.yaml)")],
    dataset: BundledDatasetOption = None,
    items: ItemsFileOption = None,
    events: Annotated[Path | None, typer.Option(help="your events file, instead of --dataset")] = None,
    hold_back: Annotated[int, typer.Option(help="keep each user's newest N interactions out of training, to replay with `update`")] = 0,
    held_back_out: Annotated[Path | None, typer.Option(help="where --hold-back writes those events (parquet)")] = None,
    fusion: Annotated[bool, typer.Option(help="also train the fusion ranker over SASRec, EASE, item kNN, content and popularity")] = False,
    config: Annotated[Path | None, typer.Option(help="YAML config (recommend.sequential); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = DEFAULT_DATASETS,
) -> None:
    """Train the sequential (SASRec) model, and with --fusion the fusion ranker, into a folder `longtail update` can warm-start."""
    from longtail.pipeline.incremental import hold_back as split_newest
    from longtail.pipeline.incremental import train_model_folder

    try:
        settings = load_config(config)
        item_table, event_table = _catalogue(items, events, dataset, datasets_root, settings)
        if event_table is None:
            raise LongtailError("training needs events: give --events with --items")
        if hold_back and held_back_out is None:
            raise LongtailError("--hold-back needs --held-back-out FILE for the held-back events")
        if hold_back:
            event_table, held = split_newest(event_table, hold_back)
            held.write_parquet(held_back_out)  # type: ignore[arg-type]
            console.print(f"held back {held.height:,} events -> {held_back_out}")
        with console.status("training the sequential model" + (" and the fusion ranker" if fusion else "")):
            model = train_model_folder(item_table, event_table, settings, out, fusion=fusion)
    except LongtailError as error:
        _fail(error)
    console.print(f"model folder: [bold]{out}[/]  ({model.n_items_:,} items, {len(model.history_)} epochs, validation NDCG@10 {model.best_valid_:.4f}"
                  + (", with the fusion ranker)" if fusion else ")"))


@app.command()
def update(
    model: Annotated[Path, typer.Option(help="a model folder written by `longtail train` (replaced only if the update passes)")],
    events: Annotated[Path, typer.Option(help="the new events file")],
    dataset: Annotated[str | None, typer.Option(help="the catalogue: a bundled public dataset")] = None,
    items: Annotated[Path | None, typer.Option(help="the catalogue: your items file (new items get rows from their text)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (section incremental); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = DEFAULT_DATASETS,
) -> None:
    """Warm-start the model (and its fusion ranker, if the folder holds one) on new events; keep them only if not worse on the newest events."""
    from longtail.pipeline.incremental import DECISION_FILE, update_model_folder

    try:
        settings = load_config(config)
        item_table, _ = _catalogue(items, None, dataset, datasets_root, settings)
        new_events = _read_canonical(events, EVENTS, settings.data.columns.events, settings.data.csv_separator)
        with console.status("warm-starting and judging the update"):
            decision = update_model_folder(model, new_events, item_table, settings)
    except LongtailError as error:
        _fail(error)
    table = Table(title=f"Update on {decision['held_out_events']:,} held-out newest events ({decision['evaluated_users']:,} users)")
    for column in ("model", "metric", "old", "new", "new - old (95% CI)", "tolerance", "passed"):
        table.add_column(column, justify="left" if column in ("model", "metric", "passed") else "right")
    for name, part in (("sequential", decision), ("fusion ranker", decision.get("ranker"))):
        if part is not None:
            ci = part["new_minus_old_ci"]
            table.add_row(name, part["metric"], f"{part['old']:.4f}", f"{part['new']:.4f}", f"{part['difference']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]",
                          f"{part['tolerance']:.4f}", "[green]yes[/]" if part["passed"] else "[yellow]no[/]")
    console.print(table)
    colour = "green" if decision["decision"] == "replaced" else "yellow"
    console.print(f"decision: [{colour}]{decision['decision']}[/]")
    console.print(f"trained on {decision['trained_events']:,} new events; {decision['items_added']:,} new items. Decision: {model / DECISION_FILE}")


@app.command()
def ablate(
    config: Annotated[Path, typer.Argument(help="YAML config: the recommend section is the baseline, the ablation section lists dataset and variants")],
    out: Annotated[Path, typer.Option(help="output directory for ablation.json, ablation.html and config.yaml")] = Path("out/ablation"),
    datasets_root: DatasetsRootOption = DEFAULT_DATASETS,
) -> None:
    """Train the baseline and every variant alike and compare them overall, per item segment and for cold users
    (or, with `ablation.task: classification`, every balancing strategy per class on an imbalanced classifier)."""
    from longtail.core.config import save_config
    from longtail.evaluate.ablation import SEGMENTS, run_ablation, write_results

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        settings = load_config(config)
        if settings.ablation.task == "classification":
            _classification_ablation(settings, datasets_root, out)
            return
        with _progress() as progress:
            arms = 2 + len(settings.ablation.variants) + (settings.ablation.combine_best > 1)
            task = progress.add_task("ablate", total=arms)
            result, evaluations = run_ablation(settings, datasets_root, on_step=lambda step: progress.update(task, advance=1, description=step))
    except LongtailError as error:
        _fail(error)
    write_results(result, evaluations, settings, out / "ablation.json", out / "ablation.html")
    save_config(settings, out)
    table = Table(title=f"Ablation on {result['dataset']} ({result['protocol']}, NDCG@10; change vs baseline)")
    for column in ("variant", *SEGMENTS, "train s", "goal"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    goals = result["goal"]["variants"]
    for run in result["runs"]:
        name = run["model"]
        rows = result["vs_baseline"].get(name, {})
        cells = []
        for segment in SEGMENTS:
            value = run["metrics"]["NDCG@10"] if segment == "all" else run["segments"][segment]["NDCG@10"]
            change = rows.get(f"{segment}/NDCG@10")
            cells.append(f"{value:.4f}" + (f" ({change['relative']:+.0%})" if change else ""))
        goal = "-" if name not in goals else ("met" if goals[name]["meets_goal"] else "no")
        table.add_row(name, *cells, f"{run['train_seconds']:.0f}", goal)
    console.print(table)
    console.print(f"Report: [bold]{out / 'ablation.html'}[/]  JSON: {out / 'ablation.json'}")


def _classification_ablation(settings: LongtailConfig, datasets_root: Path, out: Path) -> None:
    """Run and print the classification ablation: macro-F1, minority-class recall and per-class F1 per strategy."""
    from longtail.pipeline.balance_step import run_classification_ablation

    with _progress() as progress:
        task = progress.add_task("ablate", total=len(settings.balance.tabular.strategies))
        experiment = run_classification_ablation(settings, datasets_root, out, on_step=lambda step: progress.update(task, advance=1, description=step))
    rows = experiment["rows"]
    minority = rows[0]["minority_class"]
    table = Table(title=f"{experiment['task']}, {experiment['classifier']}: change vs baseline [95% CI]; every class in the HTML report")
    for column in ("strategy", "train rows", "macro-F1", f"recall {minority}", f"F1 {minority}"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for row in rows:
        compared = row.get("vs_baseline", {})

        def cell(value: float, metric: str) -> str:
            change = compared.get(metric)
            return f"{value:.3f}" + (f" ({change['difference']:+.3f} [{change['low']:+.3f}, {change['high']:+.3f}])" if change else "")

        table.add_row(row["strategy"], f"{row['train_rows']:,}", cell(row["macro_f1"], "macro_f1"), cell(row["minority_recall"], "minority_recall"),
                      f"{row['per_class'][minority]['f1']:.3f}")
    console.print(table)
    console.print(f"Report: [bold]{out / 'ablation.html'}[/]  JSON: {out / 'ablation.json'}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the demo writes its artifacts")] = Path("out/demo"),
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="end by serving the API and web page")] = True,
    port: Annotated[int, typer.Option(help="port for the served demo")] = 8000,
) -> None:
    """Run the end-to-end demo on the bundled real data (Amazon Industrial & Scientific): audit, search, recommend, serve."""
    from longtail.search.engine import SearchEngine
    from longtail.search.filters import parse_filters
    from longtail.serve.server import serve as run_server

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    settings = load_config(DEMO_DATA / "config.yaml")
    console.rule("[bold]1. Data-quality audit")
    audit(items=DEMO_DATA / "items.csv", events=DEMO_DATA / "events.parquet", out=out / "audit", config=DEMO_DATA / "config.yaml", users=None, judgments=None)
    console.rule("[bold]2. Hybrid search index (BM25 + MiniLM vectors) over the clean catalogue")
    clean_items = pl.read_parquet(out / "audit" / "clean" / "items.parquet")
    clean_events = pl.read_parquet(out / "audit" / "clean" / "events.parquet")
    engine = SearchEngine.build(clean_items, settings, events=clean_events, directory=out / "index", show_progress=True)
    for query in DEMO_QUERIES:
        print_search_results(engine, query, engine.search(query, 5, parse_filters([])))
    console.rule("[bold]3. Recommenders on the clean events: full-ranking metrics, head vs tail")
    evaluate(
        out=out / "recommend", model=["popularity", "itemknn", "ease"], dataset=None,
        items=out / "audit" / "clean" / "items.parquet", events=out / "audit" / "clean" / "events.parquet",
        protocol="loo", max_users=None, config=DEMO_DATA / "config.yaml", datasets_root=DEFAULT_DATASETS,
    )
    if not serve_after:
        return
    console.rule("[bold]4. Serving the API and web page")
    with open_store(settings.serve, out / "audit") as store:
        key = create_key(store, ["read", "write_events", "admin"], "demo")
    console.print(f"Web page: [bold]http://127.0.0.1:{port}/[/]  API key (read, write_events, admin): [bold]{key}[/]", soft_wrap=True)
    console.print(f"Try: curl -H 'Authorization: Bearer {key}' 'http://127.0.0.1:{port}/users/A1SWWHE1L3XR3V/recommendations'", soft_wrap=True)
    try:
        run_server(out / "audit", settings, None, port, out / "index")
    except LongtailError as error:
        _fail(error)


if __name__ == "__main__":
    app()
