"""The event store interface and the SQL both backends share: events, API keys, posted items, migrations."""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from longtail.core.config import ServeConfig
from longtail.core.errors import IdempotencyKeyReusedError, StoreError
from longtail.data.schema import EVENTS
from longtail.serve.events import EPOCH, StoredEvent

DEFAULT_SQLITE_NAME = "longtail.db"
# The spec's event fields in order; the timestamp is stored as UTC microseconds (see to_micros).
_EVENT_FIELDS = tuple(EVENTS.column_names)
_EVENT_COLUMNS = ", ".join("ts_us" if name == "timestamp" else name for name in _EVENT_FIELDS)

# Each migration is applied once, in order, inside one transaction; {id} and {float} are filled per dialect.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE events (id {id}, user_id TEXT NOT NULL, item_id TEXT, event_type TEXT NOT NULL, ts_us BIGINT NOT NULL,"
        " session_id TEXT, query TEXT, rating {float}, text TEXT, received_us BIGINT NOT NULL)",
        "CREATE INDEX events_by_user ON events (user_id, ts_us)",
        "CREATE INDEX events_by_item ON events (item_id)",
        "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, salt TEXT NOT NULL, digest TEXT NOT NULL, scopes TEXT NOT NULL,"
        " label TEXT NOT NULL, created_us BIGINT NOT NULL, revoked_us BIGINT)",
        "CREATE TABLE items (item_id TEXT PRIMARY KEY, record TEXT NOT NULL, updated_us BIGINT NOT NULL)",
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    # Events carry free-form attributes (a transaction line's quantity, price, invoice) as JSON text, like items.
    ("ALTER TABLE events ADD COLUMN attributes TEXT",),
    (
        # A write's answer under the client's Idempotency-Key, committed with the write itself: a retry gets it back.
        (
            "CREATE TABLE idempotency (key_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, route TEXT NOT NULL,"
            " fingerprint TEXT NOT NULL, response TEXT NOT NULL, created_us BIGINT NOT NULL, PRIMARY KEY (key_id, idempotency_key))"
        ),
        "CREATE INDEX idempotency_by_age ON idempotency (created_us)",
    ),
    (
        # Merchandising rules and their audit trail (serve/merchandising.py); a deleted rule keeps its row.
        "CREATE TABLE merch_rules (id {id}, action TEXT NOT NULL, query TEXT, category TEXT, item_id TEXT NOT NULL, position INTEGER,"
        " factor {float}, starts_us BIGINT, ends_us BIGINT, note TEXT NOT NULL, created_by TEXT NOT NULL, created_us BIGINT NOT NULL, deleted_us BIGINT)",
        "CREATE TABLE merch_audit (id {id}, rule_id BIGINT NOT NULL, change TEXT NOT NULL, actor TEXT NOT NULL, at_us BIGINT NOT NULL, record TEXT NOT NULL)",
        "CREATE INDEX events_by_type ON events (event_type, ts_us)",
    ),
)
# Every table the migrations create; a store that says it is migrated but lacks one is damaged, not new.
STORE_TABLES = ("schema_version", "events", "api_keys", "items", "meta", "idempotency", "merch_rules", "merch_audit")


ERASURES_META = "erasures"  # meta row counting erasures, so every server process notices one
IDEMPOTENCY_TTL = timedelta(hours=24)  # how long a retry with the same Idempotency-Key gets the first answer back


@dataclass(frozen=True)
class Idempotency:
    """A client's Idempotency-Key for one write: whose API key sent it, to which route, and a hash of the request."""

    key_id: str
    key: str
    route: str
    fingerprint: str


@dataclass(frozen=True)
class KeyRecord:
    """A stored API key: its public id, the salted digest of its secret, and what it may do."""

    key_id: str
    salt: str
    digest: str
    scopes: tuple[str, ...]
    label: str
    created_at: datetime
    revoked_at: datetime | None = None


def to_micros(moment: datetime) -> int:
    """UTC microseconds since the epoch: one integer type that sorts the same in every backend."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    """The inverse of to_micros."""
    return EPOCH + timedelta(microseconds=value)


def _stored_event(row: Sequence[Any]) -> StoredEvent:
    """A row of the event columns followed by the id, with the timestamp stored as microseconds."""
    fields: dict[str, Any] = {name: _event_value(name, v) for name, v in zip(_EVENT_FIELDS, row[:-1], strict=True)}
    return StoredEvent(**fields, id=row[-1])


def _stored_value(event: StoredEvent, name: str) -> Any:
    """An event field as the events table holds it."""
    value = getattr(event, name)
    if name == "timestamp":
        return to_micros(value)
    if name == "attributes" and value is not None:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def _event_value(name: str, value: Any) -> Any:
    """A stored column as the event field it holds (the inverse of _stored_value)."""
    if value is None:
        return None
    if name == "timestamp":
        return from_micros(value)
    return json.loads(value) if name == "attributes" else value


def _now_us() -> int:
    return to_micros(datetime.now(UTC))


class EventStore(ABC):
    """Durable storage of events, API keys and posted items; every write is one atomic transaction."""

    placeholder = "?"
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT"
    float_column = "REAL"

    def __init__(self) -> None:
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- dialect hooks -------------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection in autocommit mode."""

    @abstractmethod
    def _transaction(self, connection: Any) -> AbstractContextManager[Any]:
        """A context that commits on success and rolls back on any error, yielding a cursor."""

    @abstractmethod
    def _lock_migrations(self, cursor: Any) -> None:
        """Keep two processes opening the store at once from migrating it twice."""

    @abstractmethod
    def _table_names(self) -> set[str]:
        """The tables the database holds now."""

    @property
    @abstractmethod
    def database_errors(self) -> tuple[type[Exception], ...]:
        """The driver's exception types, wrapped into StoreError at this interface."""

    # -- plumbing ------------------------------------------------------------------------------

    def _connection(self) -> Any:
        # One connection per thread: the API runs handlers on a thread pool, and neither driver's
        # connection may be used by two threads at once.
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self._closed:
                raise StoreError("the event store is closed")
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.placeholder) if self.placeholder != "?" else statement

    @staticmethod
    def _execute_rows(cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
        results = []
        for row in rows:
            cursor.execute(statement, row)
            # An INSERT ... RETURNING gives its row back; UPDATE and DELETE report how many rows they touched.
            results.append(cursor.fetchone() if " RETURNING " in statement else cursor.rowcount)
        return results

    def _write(self, statement: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
        try:
            with self._transaction(self._connection()) as cursor:
                return self._execute_rows(cursor, self._sql(statement), rows)
        except self.database_errors as error:
            raise StoreError(f"write failed and was rolled back: {error}") from error

    def _write_once(self, once: Idempotency | None, work: Callable[[Any], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """Run `work` in one transaction and store its answer under the client's Idempotency-Key in the same transaction;
        a key seen before returns its first answer and writes nothing. Returns (answer, whether it was replayed)."""
        try:
            with self._transaction(self._connection()) as cursor:
                if once is not None and (previous := self._recalled(cursor, once)) is not None:
                    return previous, True
                answer = work(cursor)
                if once is not None:
                    now = _now_us()
                    cursor.execute(self._sql("DELETE FROM idempotency WHERE created_us < ?"), (now - IDEMPOTENCY_TTL // timedelta(microseconds=1),))
                    cursor.execute(
                        self._sql("INSERT INTO idempotency (key_id, idempotency_key, route, fingerprint, response, created_us) VALUES (?, ?, ?, ?, ?, ?)"),
                        (once.key_id, once.key, once.route, once.fingerprint, json.dumps(answer), now),
                    )
                return answer, False
        except self.database_errors as error:
            if once is not None:
                # A concurrent retry with the same key committed first (PostgreSQL: our INSERT met its row); ours rolled back.
                with self._transaction(self._connection()) as cursor:
                    if (previous := self._recalled(cursor, once)) is not None:
                        return previous, True
            raise StoreError(f"write failed and was rolled back: {error}") from error

    def _recalled(self, cursor: Any, once: Idempotency) -> dict[str, Any] | None:
        cursor.execute(self._sql("SELECT route, fingerprint, response FROM idempotency WHERE key_id = ? AND idempotency_key = ?"), (once.key_id, once.key))
        row = cursor.fetchone()
        if row is None:
            return None
        if (row[0], row[1]) != (once.route, once.fingerprint):
            raise IdempotencyKeyReusedError(f"Idempotency-Key {once.key!r} was used for a different request ({row[0]}); use a new key for a new request")
        return dict(json.loads(row[2]))

    def _read(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            cursor = self._connection().cursor()
            try:
                cursor.execute(self._sql(statement), parameters)
                return list(cursor.fetchall())
            finally:
                cursor.close()
        except self.database_errors as error:
            raise StoreError(f"read failed: {error}") from error

    def migrate(self) -> int:
        """Bring the schema up to date; return the version it is at."""
        try:
            with self._transaction(self._connection()) as cursor:
                self._lock_migrations(cursor)
                cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                cursor.execute("SELECT MAX(version) FROM schema_version")
                current = cursor.fetchone()[0] or 0
                for version, statements in enumerate(MIGRATIONS, start=1):
                    if version <= current:
                        continue
                    for statement in statements:
                        cursor.execute(statement.format(id=self.id_column, float=self.float_column))
                    cursor.execute(self._sql("INSERT INTO schema_version (version) VALUES (?)"), (version,))
                return len(MIGRATIONS)
        except self.database_errors as error:
            raise StoreError(f"cannot migrate the event store: {error}") from error

    def check_tables(self) -> None:
        """Refuse a store missing any of its tables: serving it would lose keys or events silently."""
        missing = [name for name in STORE_TABLES if name not in self._table_names()]
        if missing:
            raise StoreError(f"{self.location}: the event store lacks table(s) {', '.join(missing)}; restore it from a backup (`longtail restore`)")

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store lives, for messages: a file path or the database name."""

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            self._closed = True
            self._close_connections()

    def _close_connections(self) -> None:
        for connection in self._connections:
            connection.close()
        self._connections.clear()
        self._local = threading.local()  # each thread opens a new connection next time

    # -- events --------------------------------------------------------------------------------

    def append(self, events: Sequence[StoredEvent], once: Idempotency | None = None) -> list[int]:
        """Write a batch in one transaction (all or nothing) and return the new ids in order (see `append_once`)."""
        return list(self.append_once(events, once)[0]["ids"])

    def append_once(self, events: Sequence[StoredEvent], once: Idempotency | None) -> tuple[dict[str, Any], bool]:
        """Write a batch in one transaction; with an Idempotency-Key a repeat returns the first {"count", "ids"} and
        writes nothing. Returns the answer and whether it was replayed."""
        received = _now_us()
        rows = [(*(_stored_value(e, name) for name in _EVENT_FIELDS), received) for e in events]
        statement = self._sql(f"INSERT INTO events ({_EVENT_COLUMNS}, received_us) VALUES ({', '.join('?' * (len(_EVENT_FIELDS) + 1))}) RETURNING id")

        def insert(cursor: Any) -> dict[str, Any]:
            ids = [row[0] for row in self._execute_rows(cursor, statement, rows)]
            return {"count": len(ids), "ids": ids}

        return self._write_once(once, insert)

    def user_events(self, user_id: str, limit: int = 100) -> list[StoredEvent]:
        """A user's events, most recent first."""
        rows = self._read(f"SELECT {_EVENT_COLUMNS}, id FROM events WHERE user_id = ? ORDER BY ts_us DESC, id DESC LIMIT ?", (user_id, limit))
        return [_stored_event(r) for r in rows]

    def user_events_after(self, user_id: str, after_id: int) -> list[StoredEvent]:
        """A user's events with an id above `after_id` (what another server process stored since), oldest first."""
        rows = self._read(f"SELECT {_EVENT_COLUMNS}, id FROM events WHERE user_id = ? AND id > ? ORDER BY id", (user_id, after_id))
        return [_stored_event(r) for r in rows]

    def user_ids(self) -> list[str]:
        """Every user id with a stored event."""
        return [row[0] for row in self._read("SELECT DISTINCT user_id FROM events")]

    def count(self, user_id: str | None = None) -> int:
        """How many events are stored, in total or for one user."""
        if user_id is None:
            return int(self._read("SELECT COUNT(*) FROM events")[0][0])
        return int(self._read("SELECT COUNT(*) FROM events WHERE user_id = ?", (user_id,))[0][0])

    def event_ids(self) -> set[int]:
        """Every stored event id, for checking that acknowledged writes survived a crash."""
        return {row[0] for row in self._read("SELECT id FROM events")}

    def delete_user(self, user_id: str) -> int:
        """Erase every event of a user; return how many were deleted."""
        return self.delete_users([user_id])

    def delete_users(self, user_ids: Sequence[str]) -> int:
        """Erase every event of several user ids (e.g. an id and its pseudonym) in one transaction; how many were deleted."""
        deleted = sum(int(count) for count in self._write("DELETE FROM events WHERE user_id = ?", [(user_id,) for user_id in user_ids]))
        if deleted:
            # Other server processes compare this count at each request and drop what they derived from erased events.
            self._write(
                "INSERT INTO meta (name, value) VALUES (?, '1') ON CONFLICT (name) DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)",
                [(ERASURES_META,)],
            )
            self._after_erasure()
        return deleted

    def _after_erasure(self) -> None:
        """Backend hook: make erased rows unrecoverable from the database files, where the backend can."""
        return None  # deliberately not abstract: a backend whose deletes leave nothing behind needs no extra step

    def events(self, since: datetime | None = None, event_types: Sequence[str] | None = None) -> list[StoredEvent]:
        """Events (of some types, since a time), oldest first: the input of search analytics and the query log."""
        clauses = ["ts_us >= ?"]
        parameters: list[Any] = [to_micros(since) if since is not None else 0]
        if event_types is not None:
            clauses.append(f"event_type IN ({', '.join('?' * len(event_types))})")
            parameters.extend(event_types)
        rows = self._read(f"SELECT {_EVENT_COLUMNS}, id FROM events WHERE {' AND '.join(clauses)} ORDER BY ts_us, id", parameters)
        return [_stored_event(row) for row in rows]

    def popular_items(self, limit: int) -> list[tuple[str, int]]:
        """Items by how many events reference them, most first."""
        rows = self._read(
            "SELECT item_id, COUNT(*) AS n FROM events WHERE item_id IS NOT NULL GROUP BY item_id ORDER BY n DESC, item_id LIMIT ?",
            (limit,),
        )
        return [(row[0], int(row[1])) for row in rows]

    # -- posted items --------------------------------------------------------------------------

    def upsert_items(self, records: Sequence[dict[str, Any]], once: Idempotency | None = None) -> tuple[dict[str, Any], bool]:
        """Store added or updated catalogue items (canonical columns as JSON) in one transaction; returns the answer
        {"count", "item_ids"} and whether it was replayed for a repeated Idempotency-Key (then nothing is written)."""
        now = _now_us()
        rows = [(record["item_id"], json.dumps(record, ensure_ascii=False, default=str), now) for record in records]
        statement = self._sql(
            "INSERT INTO items (item_id, record, updated_us) VALUES (?, ?, ?)"
            " ON CONFLICT (item_id) DO UPDATE SET record = excluded.record, updated_us = excluded.updated_us"
        )

        def upsert(cursor: Any) -> dict[str, Any]:
            self._execute_rows(cursor, statement, rows)
            return {"count": len(rows), "item_ids": [row[0] for row in rows]}

        return self._write_once(once, upsert)

    def catalogue_version(self) -> tuple[int, int, int]:
        """What changes whenever an item is posted (the latest update time and the count of posted items) or a user is
        erased (the erasure count): one cheap read that tells a server process whether another one changed something."""
        latest, count, erasures = self._read(
            "SELECT COALESCE(MAX(updated_us), 0), COUNT(*), (SELECT value FROM meta WHERE name = ?) FROM items", (ERASURES_META,)
        )[0]
        return int(latest), int(count), int(erasures or 0)

    def items(self, updated_since: datetime | None = None) -> list[dict[str, Any]]:
        """Items posted to the API (all, or those updated since a time), oldest update first, to lay over the catalogue."""
        since = to_micros(updated_since) if updated_since is not None else 0
        rows = self._read("SELECT record FROM items WHERE updated_us >= ? ORDER BY updated_us, item_id", (since,))
        return [json.loads(row[0]) for row in rows]

    # -- API keys ------------------------------------------------------------------------------

    def put_key(self, record: KeyRecord) -> None:
        """Store a new API key (its digest, never its secret)."""
        self._write(
            "INSERT INTO api_keys (key_id, salt, digest, scopes, label, created_us, revoked_us) VALUES (?, ?, ?, ?, ?, ?, NULL)",
            [(record.key_id, record.salt, record.digest, " ".join(record.scopes), record.label, to_micros(record.created_at))],
        )

    def get_key(self, key_id: str) -> KeyRecord | None:
        """The stored key with this id, revoked or not."""
        rows = self._read("SELECT key_id, salt, digest, scopes, label, created_us, revoked_us FROM api_keys WHERE key_id = ?", (key_id,))
        return _key_record(rows[0]) if rows else None

    def keys(self) -> list[KeyRecord]:
        """Every stored key, oldest first."""
        rows = self._read("SELECT key_id, salt, digest, scopes, label, created_us, revoked_us FROM api_keys ORDER BY created_us")
        return [_key_record(row) for row in rows]

    def revoke_key(self, key_id: str) -> bool:
        """Mark a key revoked; False when no active key has this id."""
        return bool(self._write("UPDATE api_keys SET revoked_us = ? WHERE key_id = ? AND revoked_us IS NULL", [(_now_us(), key_id)])[0])

    # -- small settings ------------------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        """A store-level setting, e.g. which file seeded the events."""
        rows = self._read("SELECT value FROM meta WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def set_meta(self, name: str, value: str) -> None:
        """Set a store-level setting."""
        self._write("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value", [(name, value)])

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _key_record(row: Sequence[Any]) -> KeyRecord:
    return KeyRecord(row[0], row[1], row[2], tuple(row[3].split()), row[4], from_micros(row[5]), None if row[6] is None else from_micros(row[6]))


def open_store(config: ServeConfig, data_dir: str | Path | None = None) -> EventStore:
    """Open (and migrate) the backend the config selects."""
    if config.store == "postgres":
        if not config.postgres_dsn:
            raise StoreError("serve.store is postgres but serve.postgres_dsn is empty; set it to a libpq connection string")
        from longtail.serve.postgres_store import PostgresEventStore

        return PostgresEventStore(config.postgres_dsn)
    from longtail.serve.sqlite_store import SqliteEventStore

    return SqliteEventStore(sqlite_path(config, data_dir))


def sqlite_path(config: ServeConfig, data_dir: str | Path | None = None) -> Path:
    """Where the SQLite store lives: serve.sqlite_path, else longtail.db in the served directory."""
    if config.sqlite_path:
        return Path(config.sqlite_path)
    if data_dir is not None:
        return Path(data_dir) / DEFAULT_SQLITE_NAME
    raise StoreError("no SQLite path: set serve.sqlite_path or serve a data directory")
