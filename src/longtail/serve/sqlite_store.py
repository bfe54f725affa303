"""The default event store: one SQLite file in WAL mode, fsynced on every commit."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from longtail.core.errors import StoreError
from longtail.serve.store import EventStore

log = logging.getLogger("longtail.serve")


class SqliteEventStore(EventStore):
    """SQLite in WAL mode with synchronous=FULL, so an acknowledged event survives kill -9 and power loss."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"{self.path}: cannot create its folder: {error}") from None
        self.migrate()

    @property
    def database_errors(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error,)

    def _connect(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: we issue BEGIN ourselves so a batch is exactly one transaction.
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            connection.execute("PRAGMA journal_mode=WAL")
            # FULL fsyncs the WAL at every commit; NORMAL (the usual WAL choice) may lose the last commits on power loss.
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA busy_timeout=30000")
            # Deleted rows are overwritten with zeros, so an erased user cannot be read back from the file's free pages.
            connection.execute("PRAGMA secure_delete=ON")
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: cannot open as an SQLite database: {error}") from None
        return connection

    @contextmanager
    def _transaction(self, connection: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
        cursor = connection.cursor()
        # IMMEDIATE takes the write lock up front, so two writers queue instead of failing on upgrade.
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        else:
            cursor.execute("COMMIT")
        finally:
            cursor.close()

    def _after_erasure(self) -> None:
        """Copy the zeroed pages into the database and truncate the WAL, which still holds the old page images."""
        try:
            busy = self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error as error:
            busy, reason = 1, str(error)
        else:
            reason = "readers held the WAL"
        if busy:
            # The erasure is committed either way; the next checkpoint overwrites what is left in the WAL.
            log.warning("%s: events were erased but the WAL could not be truncated yet (%s)", self.path, reason)

    def _lock_migrations(self, cursor: sqlite3.Cursor) -> None:
        """BEGIN IMMEDIATE already holds the database's single write lock."""
