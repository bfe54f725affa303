"""Run the API with uvicorn on a served data directory."""

from __future__ import annotations

import ctypes
import gc
import json
import multiprocessing
import signal
import socket
import time
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from longtail.core.config import LongtailConfig
from longtail.core.errors import LongtailError
from longtail.serve.app import create_app
from longtail.serve.loading import Served, open_served
from longtail.serve.ratelimit import LimitTables


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


def build_app(
    data_dir: str | Path,
    config: LongtailConfig,
    index_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
    limit_tables: LimitTables | None = None,
) -> tuple[FastAPI, Served]:
    """The app over a data directory (model-backed search with an index, recommendations from a model folder), and what it
    opened (to close afterwards); `limit_tables` are the rate-limit buckets it shares with other processes, if any."""
    served = open_served(data_dir, config, index_dir, model_dir)
    return create_app(config, served.services, served.store, reports_dir=served.data_dir, limit_tables=limit_tables), served


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


def _reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound (not yet listening) to host:port with SO_REUSEPORT: each server process gets its own, and the
    kernel spreads new connections over those that listen, so a process starts taking connections only when it is ready."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise LongtailError(f"cannot bind {host}:{port}: {error}") from None
    sock.set_inheritable(True)
    return sock


def _claim_port(host: str, port: int) -> int:
    """The port to serve on (a free one for 0), refused when anything already listens there: the workers' sockets share
    the port with any socket that allows it, so without this check a second server could silently take half the traffic."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise LongtailError(f"cannot bind {host}:{port}: {error}") from None
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the process that started it dies (also by kill -9), so no worker is left
    holding the port."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _run(app: FastAPI, served: Served, config: LongtailConfig, host: str, port: int, sockets: list[socket.socket] | None) -> None:
    """Serve `app` on this process until interrupted, then close what it opened."""
    limit_compute_threads(config.serve.compute_threads)
    # Everything loaded so far (catalogue, index, model: ~570k objects on the demo) lives as long as the server. Frozen,
    # the garbage collector no longer walks it on every full collection (one walk held the GIL 1.3 s, measured under load).
    gc.freeze()
    try:
        uvicorn.Server(uvicorn_config(app, host, port)).run(sockets=sockets)
    finally:
        served.close()


def _worker(
    data_dir: Path,
    config: LongtailConfig,
    host: str,
    port: int,
    index_dir: Path | None,
    model_dir: Path | None,
    sock: socket.socket,
    ready: ProcessEvent,
    limit_tables: LimitTables,
) -> None:
    """One more server process: load everything, say so, then listen on its own SO_REUSEPORT socket."""
    _die_with_parent()
    app, served = build_app(data_dir, config, index_dir, model_dir, limit_tables)
    ready.set()
    _run(app, served, config, host, port, [sock])


def serve(
    data_dir: str | Path,
    config: LongtailConfig,
    host: str | None = None,
    port: int | None = None,
    index_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
    workers: int | None = None,
) -> None:
    """Serve until interrupted, with `workers` processes (default serve.workers); the store is closed on the way out.

    Several processes each load the whole app and share the event store, the one source of truth: each reads a user's
    events from it per request and picks up items and model versions the others were sent (docs/serving.md)."""
    host = host or config.serve.host
    port = config.serve.port if port is None else port
    workers = workers or config.serve.workers
    if workers == 1:
        app, served = build_app(data_dir, config, index_dir, model_dir)
        _run(app, served, config, host, port, None)
        return
    port = _claim_port(host, port)
    first, *others = [_reuseport_socket(host, port) for _ in range(workers)]
    # This process loads first: it seeds an empty store once and fills the compiled-ranker and ONNX caches the others read.
    context = multiprocessing.get_context("spawn")
    # One set of rate-limit buckets for all processes: a key's limit holds for the server, whichever process answers.
    limit_tables = LimitTables.shared(context)
    app, served = build_app(data_dir, config, index_dir, model_dir, limit_tables)
    children: list[tuple[multiprocessing.process.BaseProcess, ProcessEvent]] = []
    try:
        for sock in others:
            ready = context.Event()
            child = context.Process(
                target=_worker,
                args=(Path(data_dir), config, host, port, index_dir and Path(index_dir), model_dir and Path(model_dir), sock, ready, limit_tables),
                name="longtail-serve-worker",
            )
            child.start()
            children.append((child, ready))
        # This process listens last: once /health answers, every worker takes connections.
        try:
            while not all(ready.is_set() for _, ready in children):
                exits = [worker.exitcode for worker, ready in children if not ready.is_set() and not worker.is_alive()]
                if exits:
                    raise LongtailError(f"a server worker exited with {exits[0]} while loading; see its log above")
                time.sleep(0.1)
        except BaseException:
            served.close()  # _run closes it otherwise
            raise
        _run(app, served, config, host, port, [first])
    finally:
        for worker, _ in children:
            worker.terminate()
        for worker, _ in children:
            worker.join(timeout=20)
