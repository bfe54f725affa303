"""`longtail check`, `backup` and `restore`: verify a served directory without serving, copy the store while it is written."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from longtail.cli import app
from longtail.core.config import LongtailConfig
from longtail.search.engine import VECTORS_FILE, SearchEngine
from longtail.serve.auth import create_key, verify_key
from longtail.serve.events import StoredEvent
from longtail.serve.sqlite_store import SqliteEventStore

runner = CliRunner()


def says(result: object, text: str) -> bool:
    """Whether the command printed `text`, however rich wrapped its lines (it may break inside a long path)."""
    return "".join(text.split()) in "".join(result.output.split())  # type: ignore[attr-defined]


@pytest.fixture
def data(tmp_path: Path, demo_data: Path) -> Path:
    """A served directory: 300 demo items, a store holding one key and 50 events."""
    folder = tmp_path / "data"
    folder.mkdir()
    pl.read_csv(demo_data / "items.csv").head(300).write_csv(folder / "items.csv")
    with SqliteEventStore(folder / "longtail.db") as store:
        create_key(store, ["read"], "check")
        store.append([StoredEvent(f"u{n % 5}", "B0000223SI", "view", datetime(2024, 5, 1, tzinfo=UTC)) for n in range(50)])
    return folder


def test_check_passes_a_sound_directory_and_names_what_it_verified(data: Path) -> None:
    items = pl.read_csv(data / "items.csv").head(50)
    vectors = np.random.default_rng(3).normal(size=(items.height, 8)).astype(np.float32)
    SearchEngine.build(items, LongtailConfig.model_validate({"encode": {"encoder": "minilm-int8"}}), directory=data / "index", vectors=vectors)
    result = runner.invoke(app, ["check", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert says(result, "ok store") and says(result, "50 events, 1 API keys")
    assert says(result, "ok index") and says(result, "every file matches its manifest")
    (data / "index" / VECTORS_FILE).write_bytes(b"")
    damaged = runner.invoke(app, ["check", "--data", str(data)])
    assert damaged.exit_code == 2 and says(damaged, "FAILED index") and says(damaged, VECTORS_FILE)


def test_check_fails_an_empty_store_file_without_touching_it(data: Path) -> None:
    for name in ("longtail.db", "longtail.db-wal", "longtail.db-shm"):
        (data / name).unlink(missing_ok=True)
    (data / "longtail.db").write_bytes(b"")
    result = runner.invoke(app, ["check", "--data", str(data)])
    assert result.exit_code == 2 and says(result, "FAILED store") and says(result, "empty (0 bytes)")
    assert (data / "longtail.db").read_bytes() == b""


def test_a_backup_taken_while_events_are_written_is_consistent_and_restores(data: Path, tmp_path: Path) -> None:
    stop = threading.Event()

    def write() -> None:
        with SqliteEventStore(data / "longtail.db") as store:
            while not stop.is_set():
                store.append([StoredEvent("writer", "B0000223SI", "click", datetime(2024, 5, 2, tzinfo=UTC))] * 10)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        result = runner.invoke(app, ["backup", "--data", str(data), "--out", str(tmp_path / "backups")])
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 0, result.output
    (copy,) = (tmp_path / "backups").glob("longtail-*.db")
    with SqliteEventStore(copy) as backed_up:
        assert backed_up.count() >= 50 and (backed_up.count() - 50) % 10 == 0  # whole batches only
        saved = backed_up.count()
    fresh = tmp_path / "fresh"
    shutil.copytree(data, fresh, ignore=shutil.ignore_patterns("longtail.db*"))
    restored = runner.invoke(app, ["restore", "--data", str(fresh), "--from", str(copy)])
    assert restored.exit_code == 0, restored.output
    with SqliteEventStore(fresh / "longtail.db") as store:
        assert store.count() == saved and len(store.keys()) == 1


def test_restore_keeps_the_store_it_replaces_and_needs_replace_to_do_it(data: Path, tmp_path: Path) -> None:
    backup = tmp_path / "one.db"
    assert runner.invoke(app, ["backup", "--data", str(data), "--out", str(backup)]).exit_code == 0
    with SqliteEventStore(data / "longtail.db") as store:
        key = create_key(store, ["admin"], "made after the backup")
    refused = runner.invoke(app, ["restore", "--data", str(data), "--from", str(backup)])
    assert refused.exit_code == 2 and says(refused, "--replace")
    done = runner.invoke(app, ["restore", "--data", str(data), "--from", str(backup), "--replace"])
    assert done.exit_code == 0, done.output
    with SqliteEventStore(data / "longtail.db") as store:
        assert verify_key(store, key) is None and len(store.keys()) == 1
    (kept,) = data.glob("longtail.db.replaced-*[!lm]")
    with SqliteEventStore(kept) as old:
        assert verify_key(old, key) is not None


def test_restore_refuses_a_file_that_is_not_a_longtail_store(data: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.db").write_bytes(b"definitely not sqlite" * 100)
    result = runner.invoke(app, ["restore", "--data", str(data), "--from", str(tmp_path / "bad.db"), "--replace"])
    assert result.exit_code == 2 and says(result, "not an SQLite database")
    with SqliteEventStore(data / "longtail.db") as store:
        assert store.count() == 50


def test_backup_of_a_postgres_store_points_to_pg_dump(data: Path, tmp_path: Path) -> None:
    config = tmp_path / "pg.yaml"
    config.write_text("serve:\n  store: postgres\n  postgres_dsn: host=127.0.0.1 dbname=none\n")
    result = runner.invoke(app, ["backup", "--data", str(data), "--out", str(tmp_path / "x.db"), "--config", str(config)])
    assert result.exit_code == 2 and says(result, "pg_dump")
