"""Real servers for the serving tests: the API under uvicorn on loopback, and a throwaway PostgreSQL."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import uvicorn
from fastapi import FastAPI

from longtail.core.config import LongtailConfig
from longtail.search.engine import SearchEngine
from longtail.serve.app import create_app
from longtail.serve.auth import create_key
from longtail.serve.loading import Served, open_served
from longtail.serve.server import uvicorn_config
from longtail.serve.store import EventStore

SLICE_EVENTS = 3_000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """An app served by a real uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def postgres_bin() -> Path | None:
    """The folder with initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on a loopback port, run as a non-root user (postgres refuses root)."""

    bin_dir: Path
    data_dir: Path
    port: int
    user: str | None

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")

    def start(self) -> PostgresServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            record = pwd.getpwnam(self.user)
            os.chown(self.data_dir, record.pw_uid, record.pw_gid)
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c fsync=on"
        self._run("pg_ctl", "start", "-D", str(self.data_dir), "-w", "-t", "60", "-o", options, "-l", str(self.data_dir / "server.log"))
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")


def start_postgres() -> PostgresServer:
    """Start a cluster in a new temporary folder; as root, run it as the `postgres` system user."""
    bin_dir = postgres_bin()
    assert bin_dir is not None
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        user = "postgres"
    # Not under pytest's tmp_path: that sits in a root-only folder the postgres user cannot enter.
    base = Path(tempfile.mkdtemp(prefix="longtail-pg-"))
    os.chmod(base, 0o755)
    return PostgresServer(bin_dir, base / "pgdata", free_port(), user).start()


@pytest.fixture(scope="session")
def served_dir(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Path:
    """The demo catalogue with the first few thousand demo events: real data, quick to seed."""
    folder = tmp_path_factory.mktemp("served")
    shutil.copy(demo_data / "items.csv", folder / "items.csv")
    pl.read_parquet(demo_data / "events.parquet").head(SLICE_EVENTS).write_parquet(folder / "events.parquet")
    return folder


@dataclass
class Api:
    """A running API, its store (to check what was written) and one key per scope."""

    url: str
    store: EventStore
    served: Served
    keys: dict[str, str]

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}


def write_demo_slice(folder: Path, demo_data: Path, users: int, settings: dict) -> Path:
    """The first `users` demo users' events, the items they touched, and a search index over those items, in `folder`."""
    events = pl.read_parquet(demo_data / "events.parquet")
    events = events.filter(pl.col("user_id").is_in(events["user_id"].unique(maintain_order=True).head(users).implode()))
    items = pl.read_csv(demo_data / "items.csv", schema_overrides={"price": pl.Float64})
    items = items.filter(pl.col("item_id").is_in(events["item_id"].unique().implode()))
    items.write_csv(folder / "items.csv")
    events.write_parquet(folder / "events.parquet")
    SearchEngine.build(items, LongtailConfig.model_validate(settings), events=events, directory=folder / "index")
    return folder


def make_keys(store: EventStore) -> dict[str, str]:
    """One key per scope, one with two scopes, and one revoked."""
    keys = {
        "read": create_key(store, ["read"]),
        "write": create_key(store, ["write_events"]),
        "admin": create_key(store, ["admin"]),
        "read_write": create_key(store, ["read", "write_events"]),
        "revoked": create_key(store, ["admin"]),
    }
    store.revoke_key(keys["revoked"].split("_")[1])
    return keys


@pytest.fixture(scope="session")
def api(served_dir: Path) -> Iterator[Api]:
    """The API over the demo slice with the default SQLite store, served for the whole session."""
    config = LongtailConfig()
    served = open_served(served_dir, config)
    keys = make_keys(served.store)
    with LiveServer(create_app(config, served.services, served.store)) as server:
        yield Api(server.url, served.store, served, keys)
    served.store.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on loopback for the session; skipped only where PostgreSQL is not installed."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed; `make setup` installs them with apt-get")
    server = start_postgres()
    yield server
    server.stop()
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)


def fresh_postgres_dsn(server: PostgresServer) -> str:
    """A new empty database on the shared server, so each test starts from a blank schema."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"host=127.0.0.1 port={server.port} user=postgres dbname={name}"
