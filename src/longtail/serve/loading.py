"""Open what `longtail serve --data DIR` serves: the items table, the event store, seeded once from the events table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from longtail.config import LongtailConfig
from longtail.data.loaders import INVALID_FIELDS, load_table
from longtail.data.schema import EVENTS, ITEMS
from longtail.errors import EventValidationError, InputDataError
from longtail.serve.catalogue import Catalogue
from longtail.serve.defaults import DefaultServices
from longtail.serve.events import EventIn, StoredEvent, validate_events
from longtail.serve.store import EventStore, open_store

log = logging.getLogger("longtail.serve")
# Where a table may sit in a served directory: a plain export, or the clean tables an audit wrote.
_CANDIDATES = ("{name}.parquet", "clean/{name}.parquet", "audit/clean/{name}.parquet", "{name}.csv", "{name}.jsonl")
SEEDED_META = "seeded_from"


@dataclass
class Served:
    """Everything the app factory needs, opened from one data directory."""

    config: LongtailConfig
    store: EventStore
    services: DefaultServices
    seeded_events: int
    skipped_events: int


def find_table(data_dir: Path, name: str) -> Path | None:
    """The first file holding a canonical table in a served directory, if any."""
    for pattern in _CANDIDATES:
        path = data_dir / pattern.format(name=name)
        if path.is_file():
            return path
    return None


def _storable_events(events: pl.DataFrame, config: LongtailConfig) -> tuple[list[StoredEvent], int]:
    """Rows of an events table that pass the same checks as posted events; the rest are counted, not written."""
    valid = events.filter(pl.col(INVALID_FIELDS) == "") if INVALID_FIELDS in events.columns else events
    stored, skipped = [], events.height - valid.height
    for row in valid.select(EVENTS.column_names).iter_rows(named=True):
        try:
            stored.extend(validate_events([EventIn.model_validate(row)], config.quality))
        except (ValidationError, EventValidationError):
            skipped += 1
    return stored, skipped


def seed_store(store: EventStore, events_path: Path, config: LongtailConfig) -> tuple[int, int]:
    """Copy a served directory's events into an empty store once, so popularity and profiles start from history."""
    if store.get_meta(SEEDED_META) is not None or store.count() > 0:
        return 0, 0
    events, skipped = _storable_events(load_table(events_path, EVENTS, config.data.columns.events, config.data.csv_separator), config)
    # One transaction: a crash mid-seed leaves the store empty and the next start seeds again, never half a history.
    store.append(events)
    store.set_meta(SEEDED_META, str(events_path))
    if skipped:
        log.warning("%s: %d events failed the event checks and were not seeded", events_path, skipped)
    return len(events), skipped


def open_served(data_dir: str | Path, config: LongtailConfig) -> Served:
    """Load the catalogue (file items overlaid with posted items), open and seed the store, build the default services."""
    data_dir = Path(data_dir)
    items_path = find_table(data_dir, "items")
    if items_path is None:
        raise InputDataError(data_dir, "no items table found; expected one of " + ", ".join(p.format(name="items") for p in _CANDIDATES))
    catalogue = Catalogue.from_table(load_table(items_path, ITEMS, config.data.columns.items, config.data.csv_separator))
    store = open_store(config.serve, data_dir)
    catalogue.upsert(store.items())
    events_path = find_table(data_dir, "events")
    seeded, skipped = seed_store(store, events_path, config) if events_path is not None else (0, 0)
    services = DefaultServices(store, catalogue, config.serve.popularity_refresh_seconds)
    return Served(config, store, services, seeded, skipped)
