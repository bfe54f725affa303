"""The end-to-end `demo` on the bundled Amazon Industrial & Scientific slice: audit, search, recommend, serve."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from longtail.cli.data import audit_with_progress, print_audit_summary
from longtail.cli.inputs import resolve_demo_data
from longtail.cli.recommend import evaluate_recommenders, print_evaluation
from longtail.cli.search import print_search_results
from longtail.cli.terminal import console
from longtail.core.config import load_config
from longtail.serve.auth import create_key
from longtail.serve.store import open_store

commands = typer.Typer()
DEMO_QUERIES = ("sanding roll 120 grit", "3d printer filamnet pla", "digital caliper stainless")
DEMO_MODELS = ["popularity", "itemknn", "ease"]


@commands.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the demo writes its artifacts")] = Path("out/demo"),
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="end by serving the API and web page")] = True,
    port: Annotated[int, typer.Option(help="port for the served demo")] = 8000,
    demo_data: Annotated[
        Path | None, typer.Option(help="folder with the demo's items.csv, events.parquet and config.yaml (default: data/demo of the checkout you run in)")
    ] = None,
) -> None:
    """Run the end-to-end demo on the bundled real data (Amazon Industrial & Scientific): audit, search, recommend, serve."""
    from longtail.search.engine import SearchEngine
    from longtail.search.filters import parse_filters
    from longtail.serve.server import serve as run_server

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    source = resolve_demo_data(demo_data)
    config = source / "config.yaml"
    settings = load_config(config)
    console.rule("[bold]1. Data-quality audit")
    print_audit_summary(audit_with_progress(source / "items.csv", source / "events.parquet", out / "audit", config), out / "audit")
    console.rule("[bold]2. Hybrid search index (BM25 + MiniLM vectors) over the clean catalogue")
    clean_items, clean_events = out / "audit" / "clean" / "items.parquet", out / "audit" / "clean" / "events.parquet"
    engine = SearchEngine.build(pl.read_parquet(clean_items), settings, events=pl.read_parquet(clean_events), directory=out / "index", show_progress=True)
    for query in DEMO_QUERIES:
        print_search_results(engine, query, engine.search(query, 5, parse_filters([])))
    console.rule("[bold]3. Recommenders on the clean events: full-ranking metrics, head vs tail")
    runs = evaluate_recommenders(out / "recommend", DEMO_MODELS, None, clean_items, clean_events, "loo", None, config, None)
    print_evaluation(runs, out / "recommend")
    if not serve_after:
        return
    console.rule("[bold]4. Serving the API and web page")
    with open_store(settings.serve, out / "audit") as store:
        key = create_key(store, ["read", "write_events", "admin"], "demo")
    console.print(f"Web page: [bold]http://127.0.0.1:{port}/[/]  API key (read, write_events, admin): [bold]{key}[/]", soft_wrap=True)
    console.print(f"Try: curl -H 'Authorization: Bearer {key}' 'http://127.0.0.1:{port}/users/A1SWWHE1L3XR3V/recommendations'", soft_wrap=True)
    run_server(out / "audit", settings, None, port, out / "index")
