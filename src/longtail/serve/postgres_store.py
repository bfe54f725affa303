"""The event store for several server processes: PostgreSQL through psycopg 3."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from longtail.core.errors import StoreError
from longtail.serve.store import EventStore

_MIGRATION_LOCK = 0x4C6F6E67  # any constant shared by every Longtail process: "Long"


class PostgresEventStore(EventStore):
    """PostgreSQL: commits are durable once acknowledged, and many API processes can share one database."""

    placeholder = "%s"
    id_column = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    float_column = "DOUBLE PRECISION"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self.migrate()
        self.check_tables()

    @property
    def location(self) -> str:
        return f"PostgreSQL database {psycopg.conninfo.conninfo_to_dict(self.dsn).get('dbname', '')!r}"

    def _table_names(self) -> set[str]:
        return {row[0] for row in self._read("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}

    @property
    def database_errors(self) -> tuple[type[Exception], ...]:
        return (psycopg.Error,)

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as error:
            raise StoreError(f"cannot connect to PostgreSQL ({error}); check serve.postgres_dsn") from None

    @contextmanager
    def _transaction(self, connection: psycopg.Connection) -> Iterator[psycopg.Cursor]:
        with connection.transaction(), connection.cursor() as cursor:
            yield cursor

    def _lock_migrations(self, cursor: psycopg.Cursor) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
