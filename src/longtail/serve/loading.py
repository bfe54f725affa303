"""Open what `longtail serve --data DIR [--index DIR] [--model DIR]` serves: the items table, the event store seeded once from
the events table, the services."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from pydantic import ValidationError

from longtail.core.config import CONFIG_FILENAME, LongtailConfig
from longtail.core.errors import EventValidationError, InputDataError, LongtailError
from longtail.data.loaders import INVALID_FIELDS, load_table
from longtail.data.schema import EVENTS, ITEMS
from longtail.search.engine import ITEMS_FILE, SearchEngine
from longtail.serve.catalogue import Catalogue
from longtail.serve.defaults import DefaultServices
from longtail.serve.events import EventIn, StoredEvent, validate_events
from longtail.serve.recommending import FolderServices, ServedModel
from longtail.serve.services import Services
from longtail.serve.store import EventStore, open_store

if TYPE_CHECKING:
    from longtail.serve.model_services import ModelServices

log = logging.getLogger("longtail.serve")
# Where a table may sit in a served directory: a plain export, or the clean tables an audit wrote.
_CANDIDATES = ("{name}.parquet", "clean/{name}.parquet", "audit/clean/{name}.parquet", "{name}.csv", "{name}.jsonl")
SEEDED_META = "seeded_from"
INDEX_DIR = "index"  # a search index inside the served directory is used without being named
LEXICAL_COPY = "lexical"  # the served BM25 index's private copy, in the server's working folder


@dataclass
class Served:
    """Everything the app factory needs, opened from one data directory (and an index folder, when given)."""

    config: LongtailConfig
    store: EventStore
    services: Services
    seeded_events: int
    skipped_events: int
    workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    data_dir: Path | None = None  # the served folder, whose report files an erasure scrubs
    model: ServedModel | None = field(default=None, repr=False)

    def close(self) -> None:
        """Stop watching the model folder, close the store and remove the working copy of the BM25 index."""
        if self.model is not None:
            self.model.close()
        self.store.close()
        if self.workdir is not None:
            self.workdir.cleanup()


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
            # Tables hold attributes as JSON text; a posted event holds the object.
            row["attributes"] = json.loads(row["attributes"]) if row["attributes"] else None
            stored.extend(validate_events([EventIn.model_validate(row)], config.quality))
        except (ValidationError, EventValidationError, json.JSONDecodeError):
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


def find_index(data_dir: Path) -> Path | None:
    """The search index folder inside a served directory, if one was built there."""
    folder = data_dir / INDEX_DIR
    return folder if (folder / CONFIG_FILENAME).is_file() and (folder / ITEMS_FILE).is_file() else None


def open_index(index_dir: Path, lexical_copy: Path) -> SearchEngine:
    """Open a search index whose files match its manifest; a damaged file is an error naming it, never a traceback."""
    try:
        return SearchEngine.open(index_dir, lexical_copy=lexical_copy)
    except LongtailError:
        raise
    # What numpy, polars, faiss and tantivy raise on a file the manifest could not vouch for (an index built before manifests).
    except (OSError, ValueError, RuntimeError, pl.exceptions.PolarsError) as error:
        raise InputDataError(index_dir, f"cannot load the search index ({type(error).__name__}: {error}); rebuild it with `longtail index`") from None


def _index_swapper(search: ModelServices, workdir: Path) -> Callable[[Path], None]:
    """What a model folder swap does to search when the index came from the folder: open the new folder's index (its
    own private BM25 copy) and switch the search services to it; the old copy is removed once nothing reads it."""
    copies = itertools.count(1)
    served_copy = [workdir / LEXICAL_COPY]

    def swap(model_dir: Path) -> None:
        index_dir = find_index(model_dir)
        if index_dir is None:
            raise InputDataError(model_dir, f"the new model folder has no search index ({INDEX_DIR}/) but the served one had")
        fresh = workdir / f"{LEXICAL_COPY}-{next(copies)}"
        search.swap_engine(open_index(index_dir, fresh))
        shutil.rmtree(served_copy[0], ignore_errors=True)  # swap_engine returns once no search reads the old engine
        served_copy[0] = fresh

    return swap


def open_served(data_dir: str | Path, config: LongtailConfig, index_dir: str | Path | None = None, model_dir: str | Path | None = None) -> Served:
    """Load the catalogue (file items overlaid with posted items), open and seed the store, and build the services:
    model-backed search over a search index (`index_dir`, else the model folder's `index/`, else DIR/index when built),
    the model-free defaults otherwise; with `model_dir`, recommendations and similar items come from that model folder."""
    data_dir = Path(data_dir)
    model_index = find_index(Path(model_dir)) if index_dir is None and model_dir is not None else None
    index_from_model = model_index is not None
    if model_index is not None:
        index_dir = model_index
    index_dir = index_dir if index_dir is not None else find_index(data_dir)
    items_path = find_table(data_dir, "items")
    if items_path is None:
        raise InputDataError(data_dir, "no items table found; expected one of " + ", ".join(p.format(name="items") for p in _CANDIDATES))
    catalogue = Catalogue.from_table(load_table(items_path, ITEMS, config.data.columns.items, config.data.csv_separator))
    # The model is loaded (and verified) before the store is opened: a refused folder leaves nothing to close.
    model = (
        ServedModel(model_dir, config.serve.model_reload_seconds, config.serve.compute_threads, config.serve.compiled_ranker_dir)
        if model_dir is not None
        else None
    )
    store = open_store(config.serve, data_dir)
    catalogue.upsert(store.items())
    events_path = find_table(data_dir, "events")
    seeded, skipped = seed_store(store, events_path, config) if events_path is not None else (0, 0)
    defaults = DefaultServices(store, catalogue, config.serve.popularity_refresh_seconds)

    def with_model(base: Services) -> Services:
        """The base services, with recommendations and similar items answered by the model folder when one is served."""
        return base if model is None else FolderServices(base, model, store, catalogue, config.serve)

    if index_dir is None:
        return Served(config, store, with_model(defaults), seeded, skipped, data_dir=data_dir, model=model)
    from longtail.serve.model_services import ModelServices

    # Items posted later are added to a private copy of the BM25 index; the index folder stays as built.
    workdir = tempfile.TemporaryDirectory(prefix="longtail-serve-")
    try:
        engine = open_index(Path(index_dir), Path(workdir.name) / LEXICAL_COPY)
        search = ModelServices(engine, store, defaults, config)
        services = with_model(search)
        if index_from_model and model is not None:
            model.on_reload = _index_swapper(search, Path(workdir.name))
    except BaseException:
        workdir.cleanup()
        store.close()
        if model is not None:
            model.close()
        raise
    return Served(config, store, services, seeded, skipped, workdir, data_dir, model)
