"""Run the API with uvicorn on a served data directory."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from longtail.core.config import LongtailConfig
from longtail.serve.app import create_app
from longtail.serve.loading import Served, open_served


def _bad_request(msg: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the API's JSON 400 for a request the HTTP parser refused."""
    body = json.dumps({"error": {"code": "bad_request", "message": f"{msg} Check the request line and headers, e.g. Content-Length."}}).encode()
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")], body


class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools' C parser), answering a request it cannot parse (e.g. a bad Content-Length)
    in the API's JSON error shape."""

    def send_400_response(self, msg: str) -> None:
        headers, body = _bad_request(msg)
        lines = [b"HTTP/1.1 400 Bad Request\r\n", *(name + b": " + value + b"\r\n" for name, value in headers), b"\r\n", body]
        self.transport.write(b"".join(lines))
        self.transport.close()


def uvicorn_config(app: FastAPI, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    """How the API is served: uvicorn with the JSON-error HTTP protocol, no access log. The C parser (httptools) and
    event loop (uvloop) rather than the pure-Python h11 and asyncio: the server's own HTTP handling runs under the
    interpreter lock that the model calls need."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, http=JsonErrorHttpToolsProtocol, loop="uvloop")


def build_app(data_dir: str | Path, config: LongtailConfig, index_dir: str | Path | None = None,
              model_dir: str | Path | None = None) -> tuple[FastAPI, Served]:
    """The app over a data directory (model-backed search with an index, recommendations from a model folder), and what it
    opened (to close afterwards)."""
    served = open_served(data_dir, config, index_dir, model_dir)
    return create_app(config, served.services, served.store, reports_dir=served.data_dir), served


def limit_compute_threads(threads: int) -> None:
    """Let one torch, BLAS (numpy's matrix products) or OpenMP (faiss, LightGBM) call use at most `threads` threads,
    process-wide, for the libraries loaded so far."""
    # Measured on two shared cores: with torch's default (a thread per core) a one-user scoring call sometimes waited
    # ~100 ms for a descheduled pool thread (p99 100 ms, p50 8 ms); with one thread p99 was 25-32 ms. OpenBLAS did the
    # same to the content source's (16 users x 4,385 items) product: 16 ms on two threads under load, 3 ms on one.
    # Concurrent requests use the cores instead, and the results are bit-identical.
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def serve(data_dir: str | Path, config: LongtailConfig, host: str | None = None, port: int | None = None, index_dir: str | Path | None = None,
          model_dir: str | Path | None = None) -> None:
    """Serve until interrupted; the store is closed on the way out."""
    app, served = build_app(data_dir, config, index_dir, model_dir)
    limit_compute_threads(config.serve.compute_threads)
    # Everything loaded so far (catalogue, index, model: ~570k objects on the demo) lives as long as the server. Frozen,
    # the garbage collector no longer walks it on every full collection (one walk held the GIL 1.3 s, measured under load).
    gc.freeze()
    try:
        # One process: the rate limiter and catalogue live in memory. Run several behind a proxy with the PostgreSQL store.
        uvicorn.Server(uvicorn_config(app, host or config.serve.host, config.serve.port if port is None else port)).run()
    finally:
        served.close()
