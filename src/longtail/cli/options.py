"""Options several commands share, declared once so their flags and help read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[Path | None, typer.Option(help="YAML config; defaults when omitted")]
DatasetsRootOption = Annotated[
    Path | None, typer.Option(help="folder holding the public datasets (default: $LONGTAIL_DATASETS, else ../shared/datasets above the working directory)")
]
ItemsFileOption = Annotated[Path | None, typer.Option(help="your items file (.csv, .tsv, .parquet, .jsonl), instead of --dataset")]
EventsFileOption = Annotated[Path | None, typer.Option(help="your events file, instead of --dataset")]
BundledDatasetOption = Annotated[
    str | None, typer.Option(help="a bundled public dataset instead of --items/--events: beauty, sports, toys, scientific, zh-reviews, gram-beauty, gram-toys")
]
DataOption = Annotated[Path, typer.Option("--data", help="served directory: items (and events) tables; the SQLite store lives here")]
