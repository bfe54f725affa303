"""Where commands find their inputs: the public-datasets folder, the demo data, and a catalogue from files or a dataset."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from longtail.cli.terminal import warn
from longtail.core.config import LongtailConfig
from longtail.core.errors import ConfigError, LongtailError
from longtail.data.adapters import Dataset, load_dataset
from longtail.data.loaders import load_table
from longtail.data.schema import EVENTS, ITEMS, TableSpec
from longtail.quality.audit import apply_event_rules

DATASETS_ENV = "LONGTAIL_DATASETS"
DEMO_DATA = Path("data") / "demo"


def resolve_datasets_root(option: Path | None, cwd: Path | None = None) -> Path:
    """The public-datasets folder: --datasets-root, else $LONGTAIL_DATASETS, else ../shared/datasets searched upward from the working directory."""
    if option is not None:
        return option
    if os.environ.get(DATASETS_ENV):
        return Path(os.environ[DATASETS_ENV])
    start = (cwd or Path.cwd()).resolve()
    # Checkouts sit beside `shared/` (../shared/datasets); a subfolder of a checkout looks one level further up each time.
    for folder in start.parents:
        candidate = folder / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"no public-datasets folder: pass --datasets-root DIR or set {DATASETS_ENV} (no ../shared/datasets above {start})")


def resolve_demo_data(option: Path | None, cwd: Path | None = None) -> Path:
    """The demo's folder (items.csv, events.parquet, config.yaml): --demo-data, else data/demo in the checkout holding the working directory."""
    if option is not None:
        if not (option / "config.yaml").is_file():
            raise ConfigError(f"{option}: not a demo data folder (needs items.csv, events.parquet and config.yaml)")
        return option
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / DEMO_DATA / "config.yaml").is_file():
            return folder / DEMO_DATA
    raise ConfigError(f"no demo data: run from the Longtail checkout (it holds {DEMO_DATA}) or pass --demo-data DIR (searched from {start})")


def bundled_dataset(name: str, datasets_root: Path | None) -> Dataset:
    """A bundled public dataset by name, from the resolved datasets folder."""
    return load_dataset(name, resolve_datasets_root(datasets_root))


def read_canonical(path: Path, spec: TableSpec, settings: LongtailConfig) -> pl.DataFrame:
    """A user's table with the config's column mapping applied, reduced to the canonical columns."""
    mapping: dict[str, str] = getattr(settings.data.columns, spec.name)
    return load_table(path, spec, mapping, settings.data.csv_separator).select(spec.column_names)


def load_catalogue(
    items: Path | None, events: Path | None, dataset: str | None, datasets_root: Path | None, settings: LongtailConfig
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Items (and optional events) from files in the canonical schema or from a bundled dataset."""
    if (items is None) == (dataset is None):
        raise LongtailError("give either --items FILE or --dataset NAME")
    if dataset is not None:
        data = bundled_dataset(dataset, datasets_root)
        return data.items, data.events
    assert items is not None  # guaranteed by the either/or check above
    item_table = read_canonical(items, ITEMS, settings)
    if events is None:
        return item_table, None
    # The audit's event rules apply here too: a raw file cannot slip in an event type or time the audit would reject.
    mapping: dict[str, str] = settings.data.columns.events
    event_table, rejected = apply_event_rules(load_table(events, EVENTS, mapping, settings.data.csv_separator, settings.data), settings)
    if rejected:
        warn(f"{events}: skipped events the audit rejects: " + ", ".join(f"{reason} {count:,}" for reason, count in rejected.items()))
    return item_table, event_table
