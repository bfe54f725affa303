"""Faults injected into a real server on loopback: a full disk, a database locked by another process, slow clients
holding connections, an index rebuild killed halfway. Each ends with every acknowledged write in the store (or the
served index whole) and a clear status for the rest."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from longtail.core.artifacts import verify_manifest
from longtail.core.config import LongtailConfig
from longtail.search.engine import SearchEngine
from longtail.serve.app import create_app
from longtail.serve.loading import Served, open_served
from longtail.serve.sqlite_store import SqliteEventStore

from conftest import LiveServer, make_keys

ITEM = "B0000223SI"


@pytest.fixture
def served(served_dir: Path, tmp_path: Path) -> Iterator[tuple[Served, str, str]]:
    """A server over its own copy of the demo slice: what it opened, its URL and an admin key."""
    data = tmp_path / "data"
    shutil.copytree(served_dir, data, ignore=shutil.ignore_patterns("longtail.db*"))
    config = LongtailConfig()
    opened = open_served(data, config)
    key = make_keys(opened.store)["admin"]
    with LiveServer(create_app(config, opened.services, opened.store)) as server:
        yield opened, server.url, key
    opened.close()


def batch(user: str, size: int = 5) -> dict[str, Any]:
    return {"events": [{"user_id": user, "item_id": ITEM, "event_type": "view"}] * size}


def test_a_full_disk_refuses_writes_with_503_and_loses_no_acknowledged_event(served: tuple[Served, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    opened, url, key = served
    store = opened.store
    assert isinstance(store, SqliteEventStore)
    pages = store._read("PRAGMA page_count")[0][0]
    connect = store._connect

    def capped() -> sqlite3.Connection:
        # SQLite's own "database or disk is full" (SQLITE_FULL), raised by the engine exactly as on a full file system.
        connection = connect()
        connection.execute(f"PRAGMA max_page_count = {pages + 4}")
        return connection

    monkeypatch.setattr(store, "_connect", capped)
    store._close_connections()  # every thread reconnects through the cap
    acknowledged: list[int] = []
    statuses = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, timeout=30) as http:
        for n in range(200):
            before = store.count()
            response = http.post("/events", json=batch(f"disk-{n}", 20), headers=headers)
            statuses.append(response.status_code)
            if response.status_code == 201:
                acknowledged.extend(response.json()["ids"])
            else:
                assert response.status_code == 503 and response.json()["error"]["code"] == "store_unavailable", response.text
                assert store.count() == before  # the failed batch was rolled back whole
                break
        assert statuses[-1] == 503 and acknowledged, statuses
        assert http.get("/health").json()["status"] == "ok"  # reads still answer on a full disk
        monkeypatch.setattr(store, "_connect", connect)
        store._close_connections()  # space freed: the same client's retry now succeeds
        assert http.post("/events", json=batch("disk-after"), headers=headers).status_code == 201
    assert set(acknowledged) <= store.event_ids()


def test_writes_wait_for_a_lock_held_by_another_process_and_then_commit(served: tuple[Served, str, str]) -> None:
    opened, url, key = served
    path = opened.store.path  # type: ignore[attr-defined]
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sqlite3, sys, time
        connection = sqlite3.connect({str(path)!r}, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO meta (name, value) VALUES ('locked-by', 'test')")
        print("locked", flush=True)
        time.sleep(2.0)
        connection.execute("ROLLBACK")
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with httpx.Client(base_url=url, timeout=60) as http:
            health = http.get("/health")  # readers are not blocked by a writer in WAL mode
            assert health.status_code == 200 and time.monotonic() - start < 1.5
            response = http.post("/events", json=batch("locked-user"), headers={"Authorization": f"Bearer {key}"})
        waited = time.monotonic() - start
    finally:
        holder.wait(timeout=30)
    assert response.status_code == 201, response.text
    assert waited >= 1.0  # it queued behind the other process instead of failing
    assert set(response.json()["ids"]) <= opened.store.event_ids()
    assert opened.store.get_meta("locked-by") is None  # the other process's rolled-back write left nothing


def test_slow_clients_holding_connections_do_not_stop_writes(served: tuple[Served, str, str]) -> None:
    opened, url, key = served
    port = int(url.rsplit(":", 1)[1])
    stop = threading.Event()
    sockets: list[socket.socket] = []

    def trickle() -> None:
        # Slowloris, bounded: 64 connections each sending a header line every 0.2 s and never finishing the request,
        # plus bodies that promise more bytes than they send.
        for n in range(64):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            start = b"GET /health HTTP/1.1\r\nHost: x\r\n" if n % 2 else b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"
            connection.sendall(start)
            sockets.append(connection)
        while not stop.wait(0.2):
            for n, connection in enumerate(sockets):
                with contextlib.suppress(OSError):  # the server may have hung up on this one already
                    connection.sendall(b"X-Slow: 1\r\n" if n % 2 else b" ")

    slow = threading.Thread(target=trickle)
    slow.start()
    acknowledged: list[int] = []
    try:
        time.sleep(0.5)
        with httpx.Client(base_url=url, timeout=30) as http:
            started = time.monotonic()
            for n in range(20):
                response = http.post("/events", json=batch(f"slowloris-{n}", 2), headers={"Authorization": f"Bearer {key}"})
                assert response.status_code == 201, response.text
                acknowledged.extend(response.json()["ids"])
            elapsed = time.monotonic() - started
    finally:
        stop.set()
        slow.join()
        for connection in sockets:
            connection.close()
    assert len(sockets) == 64 and elapsed < 20
    assert set(acknowledged) <= opened.store.event_ids() and len(acknowledged) == 40


def test_an_index_rebuild_killed_halfway_leaves_the_served_index_whole(served_dir: Path, tmp_path: Path) -> None:
    """`longtail index` over an index a server uses, killed with SIGKILL mid-build: the folder still verifies and opens."""
    items = tmp_path / "items.csv"
    pl.read_csv(served_dir / "items.csv").head(400).write_csv(items)
    config = tmp_path / "fast.yaml"
    config.write_text("encode:\n  encoder: minilm-int8\n")
    index = tmp_path / "index"
    command = [sys.executable, "-m", "longtail.cli", "index", "--items", str(items), "--out", str(index), "--config", str(config)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    before = {path.relative_to(index): path.read_bytes() for path in index.rglob("*") if path.is_file()}
    rebuild = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Kill once the new index is being written beside the old one (its staging folder appears).
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".index.*.staging")) and time.monotonic() < deadline and rebuild.poll() is None:
            time.sleep(0.01)
        os.killpg(rebuild.pid, signal.SIGKILL)
    finally:
        rebuild.wait(timeout=30)
    assert rebuild.returncode == -signal.SIGKILL
    assert {path.relative_to(index): path.read_bytes() for path in index.rglob("*") if path.is_file()} == before
    assert verify_manifest(index) and SearchEngine.open(index).items.height == 400
