"""Run the API with uvicorn on a served data directory."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from fastapi import FastAPI

from longtail.core.config import LongtailConfig
from longtail.serve.app import create_app
from longtail.serve.loading import Served, open_served


def build_app(data_dir: str | Path, config: LongtailConfig, index_dir: str | Path | None = None,
              model_dir: str | Path | None = None) -> tuple[FastAPI, Served]:
    """The app over a data directory (model-backed search with an index, recommendations from a model folder), and what it
    opened (to close afterwards)."""
    served = open_served(data_dir, config, index_dir, model_dir)
    return create_app(config, served.services, served.store), served


def serve(data_dir: str | Path, config: LongtailConfig, host: str | None = None, port: int | None = None, index_dir: str | Path | None = None,
          model_dir: str | Path | None = None) -> None:
    """Serve until interrupted; the store is closed on the way out."""
    app, served = build_app(data_dir, config, index_dir, model_dir)
    try:
        # One process: the rate limiter and catalogue live in memory. Run several behind a proxy with the PostgreSQL store.
        uvicorn.run(app, host=host or config.serve.host, port=config.serve.port if port is None else port, log_level="info", access_log=False)
    finally:
        served.close()
