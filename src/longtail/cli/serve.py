"""Serving commands: `serve` the HTTP API, manage API `keys`, and show one user's `profile`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer
from rich.table import Table

from longtail.cli.inputs import load_catalogue
from longtail.cli.options import BundledDatasetOption, ConfigOption, DataOption, DatasetsRootOption, ItemsFileOption
from longtail.cli.terminal import console, error_console, shorten_label
from longtail.core.config import load_config
from longtail.core.errors import LongtailError
from longtail.serve.auth import create_key, key_id_of
from longtail.serve.store import EventStore, KeyRecord, open_store

if TYPE_CHECKING:
    from longtail.profile.profiles import ProfileSummary

commands = typer.Typer()
keys_app = typer.Typer(help="Create, list and revoke API keys (stored hashed in the event store).", no_args_is_help=True)
commands.add_typer(keys_app, name="keys")


@commands.command()
def serve(
    data: DataOption,
    port: Annotated[int | None, typer.Option(help="TCP port (default: serve.port, 8000)")] = None,
    host: Annotated[str | None, typer.Option(help="interface (default: serve.host, 127.0.0.1)")] = None,
    index_dir: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="a search index from `longtail index` (default: the model folder's, else DATA/index when built there): model-backed search and live profiles",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="a model folder from `longtail train`: recommendations and similar items from the evaluated recommender; "
            "reloaded when `longtail update` replaces it",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="server processes sharing the port and the event store (default: serve.workers)")] = None,
    config: ConfigOption = None,
) -> None:
    """Serve search, recommendations, events and profiles over HTTP until interrupted (model-free defaults without an index or model)."""
    from longtail.serve.server import serve as run_server

    run_server(data, load_config(config), host, port, index_dir, model, workers)


def open_key_store(data: Path, config: Path | None) -> EventStore:
    """The event store of a served directory, where the hashed API keys live."""
    return open_store(load_config(config).serve, data)


@keys_app.command("create")
def keys_create(
    data: DataOption,
    scope: Annotated[list[str], typer.Option("--scope", help="read, write_events or admin; repeat for several")],
    label: Annotated[str, typer.Option(help="a note saying who or what uses the key")] = "",
    config: ConfigOption = None,
) -> None:
    """Create an API key and print it once; only its salted hash is stored."""
    with open_key_store(data, config) as store:
        key = create_key(store, scope, label)
    error_console.print(f"scopes: {', '.join(dict.fromkeys(scope))}. Save the key now: it cannot be shown again.")
    # Plain print: the key alone on stdout, so scripts can capture it.
    print(key)


def print_keys(records: list[KeyRecord]) -> None:
    """Keys by id, scopes, label and dates; never their secrets."""
    table = Table(title="API keys")
    for column in ("key id", "scopes", "label", "created", "revoked"):
        table.add_column(column)
    for record in records:
        revoked = record.revoked_at.isoformat(timespec="seconds") if record.revoked_at else "-"
        table.add_row(record.key_id, " ".join(record.scopes), record.label, record.created_at.isoformat(timespec="seconds"), revoked)
    console.print(table)


@keys_app.command("list")
def keys_list(data: DataOption, config: ConfigOption = None) -> None:
    """List keys by id, scopes and state (never their secrets)."""
    with open_key_store(data, config) as store:
        records = store.keys()
    print_keys(records)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key id (the part after 'lt_'), or the whole key")],
    data: DataOption,
    config: ConfigOption = None,
) -> None:
    """Revoke a key; requests with it get 401 from then on."""
    with open_key_store(data, config) as store:
        revoked = store.revoke_key(key_id_of(key_id))
    if not revoked:
        raise LongtailError(f"no active key with id {key_id_of(key_id)!r}")
    console.print(f"revoked {key_id_of(key_id)}")


def build_profile_summary(
    user: str, items: Path | None, events: Path | None, dataset: str | None, config: Path | None, datasets_root: Path | None, dp_epsilon: float | None
) -> tuple[ProfileSummary, dict[str, str]]:
    """One user's profile summary from an events file, and the titles of the items it touched."""
    from longtail.encode.factory import build_encoder
    from longtail.encode.item_text import item_texts
    from longtail.privacy.dp import category_domain
    from longtail.profile.profiles import build_profile, dp_category_shares, profile_items, summarise

    settings = load_config(config)
    if dp_epsilon is not None and dp_epsilon <= 0:
        raise LongtailError("--dp-epsilon must be positive")
    item_table, event_table = load_catalogue(items, events, dataset, datasets_root, settings)
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
    return summary, dict(zip(touched["item_id"].to_list(), touched["title"].to_list(), strict=True))


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
            table.add_row(shorten_label(affinity.name, 60), f"{affinity.affinity:.1%}", ", ".join(f"{c.item_id} ({c.share:.0%})" for c in affinity.items))
        console.print(table)
    console.print(
        "[bold]Intent[/] (event types in the recent window): " + (", ".join(f"{kind} {share:.0%}" for kind, share in summary.intent.items()) or "-"),
        highlight=False,
    )


@commands.command()
def profile(
    user: Annotated[str, typer.Argument(help="the user id, as it appears in the events")],
    items: ItemsFileOption = None,
    events: Annotated[Path | None, typer.Option(help="events file")] = None,
    dataset: BundledDatasetOption = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (sections profile and encode); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = None,
    dp_epsilon: Annotated[float | None, typer.Option(help="release the category affinities with this ε (event-level differential privacy)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines instead of tables")] = False,
) -> None:
    """Build one user's profile from an events file and print it with the items and events behind each part."""
    summary, titles = build_profile_summary(user, items, events, dataset, config, datasets_root, dp_epsilon)
    if as_json:
        print(json.dumps(dataclasses.asdict(summary), default=str, ensure_ascii=False, indent=2))
        return
    print_profile(summary, titles)
