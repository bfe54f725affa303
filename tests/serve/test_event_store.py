"""Both event store backends keep the same contract: atomic batches, recent-first reads, erasure, keys, migrations."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from longtail.core.config import LongtailConfig, ServeConfig
from longtail.core.errors import StoreError
from longtail.serve.events import StoredEvent
from longtail.serve.loading import open_served
from longtail.serve.postgres_store import PostgresEventStore
from longtail.serve.sqlite_store import SqliteEventStore
from longtail.serve.store import MIGRATIONS, EventStore, KeyRecord, open_store

from conftest import SLICE_EVENTS, PostgresServer, fresh_postgres_dsn

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def event(user: str, item: str | None, minutes: int, kind: str = "view", **extra: object) -> StoredEvent:
    return StoredEvent(user_id=user, item_id=item, event_type=kind, timestamp=T0 + timedelta(minutes=minutes), **extra)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        opened: EventStore = SqliteEventStore(tmp_path / "events.db")
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        opened = PostgresEventStore(fresh_postgres_dsn(server))
    yield opened
    opened.close()


def test_append_returns_ids_in_order_and_reads_come_back_recent_first(store: EventStore) -> None:
    ids = store.append([event("u1", "a", 0), event("u1", "b", 5, "rating", rating=4.0), event("u2", None, 1, "search", query="glue 胶水")])
    assert ids == sorted(ids) and len(set(ids)) == 3
    recent = store.user_events("u1")
    assert [(e.item_id, e.timestamp, e.rating) for e in recent] == [("b", T0 + timedelta(minutes=5), 4.0), ("a", T0, None)]
    assert [e.id for e in recent] == [ids[1], ids[0]]
    assert store.user_events("u2")[0].query == "glue 胶水"
    assert [e.item_id for e in store.user_events("u1", limit=1)] == ["b"]
    assert (store.count(), store.count("u1"), store.count("nobody")) == (3, 2, 0)


def test_a_batch_with_one_bad_row_writes_nothing(store: EventStore) -> None:
    store.append([event("u1", "a", 0)])
    broken = StoredEvent(user_id=None, item_id="b", event_type="view", timestamp=T0)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="rolled back"):
        store.append([event("u1", "b", 1), event("u1", "c", 2), broken])
    assert store.count() == 1
    assert store.append([event("u1", "d", 3)])  # the store is usable after the rollback


def test_delete_user_erases_only_that_user(store: EventStore) -> None:
    store.append([event("u1", "a", 0), event("u1", "b", 1), event("u2", "a", 2)])
    assert store.delete_user("u1") == 2
    assert store.delete_user("u1") == 0
    assert (store.count("u1"), store.count("u2")) == (0, 1)


def test_popular_items_counts_events_per_item(store: EventStore) -> None:
    store.append([event("u1", "a", 0), event("u2", "a", 1), event("u3", "b", 2), event("u3", None, 3, "search", query="q")])
    assert store.popular_items(10) == [("a", 2), ("b", 1)]


def test_keys_are_stored_revoked_and_listed(store: EventStore) -> None:
    record = KeyRecord("k1", "salt", "digest", ("read", "admin"), "ops", T0)
    store.put_key(record)
    assert store.get_key("k1") == record
    assert store.revoke_key("k1") and not store.revoke_key("k1")
    assert store.get_key("k1").revoked_at is not None  # type: ignore[union-attr]
    assert store.get_key("missing") is None
    listed = store.keys()
    assert [k.key_id for k in listed] == ["k1"]


def test_items_upsert_replaces_by_id(store: EventStore) -> None:
    store.upsert_items([{"item_id": "n1", "title": "old"}, {"item_id": "n2", "title": "两个"}])
    store.upsert_items([{"item_id": "n1", "title": "new"}])
    assert {item["item_id"]: item["title"] for item in store.items()} == {"n1": "new", "n2": "两个"}


def test_migration_runs_once_and_reopening_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with SqliteEventStore(path) as first:
        first.append([event("u1", "a", 0)])
    with SqliteEventStore(path) as second:
        assert second.count() == 1
        assert second.migrate() == 4
    versions = sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchall()
    assert versions == [(1,), (2,), (3,), (4,)]


def test_events_keep_their_attributes(store: EventStore) -> None:
    line = {"invoice": "536365", "quantity": 6, "price": 2.55, "title": "WHITE HANGING HEART"}
    store.append([event("u1", "85123A", 0, "purchase", attributes=line), event("u1", "b", 1)])
    assert [e.attributes for e in store.user_events("u1")] == [None, line]


def test_a_store_from_before_event_attributes_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in MIGRATIONS[0]:
            old.execute(statement.format(id="INTEGER PRIMARY KEY AUTOINCREMENT", float="REAL"))
        old.execute("INSERT INTO schema_version (version) VALUES (1)")
        old.execute("INSERT INTO events (user_id, item_id, event_type, ts_us, received_us) VALUES ('u1', 'a', 'view', 0, 0)")
    with SqliteEventStore(path) as upgraded:
        [kept] = upgraded.user_events("u1")
        assert (kept.item_id, kept.attributes) == ("a", None)
        upgraded.append([event("u1", "b", 1, attributes={"quantity": 2})])
        assert upgraded.user_events("u1")[0].attributes == {"quantity": 2}


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        connection = store._connection()
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_acknowledged_events_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    writer = textwrap.dedent(
        f"""
        import sys, time
        from datetime import UTC, datetime
        from longtail.serve.events import StoredEvent
        from longtail.serve.sqlite_store import SqliteEventStore
        store = SqliteEventStore({str(path)!r})
        for n in range(10_000):
            ids = store.append([StoredEvent("u", "i", "view", datetime.now(UTC))])
            print(ids[0], flush=True)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    acknowledged = []
    assert process.stdout is not None
    for line in process.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) == 200:
            process.kill()  # SIGKILL: no chance to flush or close anything
            break
    process.wait()
    with SqliteEventStore(path) as reopened:
        assert set(acknowledged) <= reopened.event_ids()


def test_postgres_store_needs_a_dsn() -> None:
    with pytest.raises(StoreError, match="postgres_dsn"):
        open_store(ServeConfig(store="postgres"))


def test_a_served_directory_seeds_its_events_once(served_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "audit" / "clean"
    data.mkdir(parents=True)
    shutil.copy(served_dir / "events.parquet", data / "events.parquet")
    shutil.copy(served_dir / "items.csv", tmp_path / "items.csv")
    first = open_served(tmp_path, LongtailConfig())
    assert (first.seeded_events, first.skipped_events) == (SLICE_EVENTS, 0)
    assert first.store.count() == SLICE_EVENTS
    first.store.append([event("u-new", "B0000223SI", 0)])
    first.store.close()
    again = open_served(tmp_path, LongtailConfig())
    assert again.seeded_events == 0 and again.store.count() == SLICE_EVENTS + 1
    again.store.close()
