"""The default event store: one SQLite file in WAL mode, fsynced on every commit."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from longtail.core.errors import StoreError
from longtail.serve.store import EventStore

SQLITE_HEADER = b"SQLite format 3\x00"

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
        if self.path.exists():
            self.check_file(self.path)
        else:
            self._create()
        self.migrate()
        self.check_tables()

    @property
    def location(self) -> str:
        return str(self.path)

    @staticmethod
    def check_file(path: Path) -> None:
        """Refuse an existing file that is empty, not SQLite, or another program's database, instead of starting afresh in it."""
        restore = "restore it from a backup (`longtail restore`), or move it away to start a new store"
        if not path.is_file():
            raise StoreError(f"{path}: no such file")
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if not header:
            raise StoreError(f"{path}: the event store file is empty (0 bytes); {restore}")
        if header != SQLITE_HEADER:
            raise StoreError(f"{path}: not an SQLite database; {restore}")
        # Read-only, and not through _connect: opening must not switch a foreign database to WAL mode.
        try:
            with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
                tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as error:
            raise StoreError(f"{path}: cannot read it as an SQLite database ({error}); {restore}") from None
        if "schema_version" not in tables:
            raise StoreError(f"{path}: an SQLite database but not a Longtail event store (no schema_version table); {restore}")

    def _create(self) -> None:
        """Create and migrate a new store under a temporary name, then rename it into place: a crash midway leaves
        no half-made file that a later start would have to refuse."""
        final = self.path
        self.path = final.with_name(f".{final.name}.creating")
        for leftover in (self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        try:
            self.migrate()
            self._close_connections()  # the last close checkpoints the WAL into the file and removes it
            os.replace(self.path, final)
            directory = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives power loss
            finally:
                os.close(directory)
        except OSError as error:
            raise StoreError(f"{final}: cannot create the event store: {error}") from None
        finally:
            self.path = final

    def _table_names(self) -> set[str]:
        return {row[0] for row in self._read("SELECT name FROM sqlite_master WHERE type = 'table'")}

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
