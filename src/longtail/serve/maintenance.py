"""Operating a served directory without serving it: verify the store and index, back the store up and restore it."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from longtail.core.artifacts import verify_manifest
from longtail.core.config import LongtailConfig, ServeConfig
from longtail.core.errors import InputDataError, LongtailError, StoreError
from longtail.serve.loading import find_index, find_table
from longtail.serve.sqlite_store import SqliteEventStore
from longtail.serve.store import open_store, sqlite_path

PG_DUMP_GUIDANCE = (
    "the PostgreSQL store is backed up with PostgreSQL's own tools: `pg_dump --format=custom --file=longtail.dump DSN` "
    "while serving, and `pg_restore --clean --if-exists --dbname=DSN longtail.dump` with the servers stopped"
)


@dataclass(frozen=True)
class Finding:
    """One checked part of a served directory: what it is, whether it is fine, and what was found."""

    part: str
    ok: bool
    detail: str


def check_served(data_dir: Path, config: LongtailConfig, index_dir: Path | None = None) -> list[Finding]:
    """Everything `longtail serve` would refuse, checked without serving: the items table, the store, the index manifest."""
    findings = []
    items = find_table(data_dir, "items")
    findings.append(Finding("items", items is not None, str(items) if items else f"{data_dir}: no items table"))
    store_path = sqlite_path(config.serve, data_dir) if config.serve.store == "sqlite" else None
    if store_path is not None and not store_path.exists():
        findings.append(Finding("store", True, f"{store_path}: none yet; `longtail serve` creates it"))
    else:
        try:
            with open_store(config.serve, data_dir) as store:
                findings.append(Finding("store", True, f"{store.location}: {store.count():,} events, {len(store.keys())} API keys"))
        except StoreError as error:
            findings.append(Finding("store", False, str(error)))
    index = index_dir if index_dir is not None else find_index(data_dir)
    if index is not None:
        try:
            verified = verify_manifest(index)
            detail = "every file matches its manifest" if verified else "no manifest.json; rebuild it with `longtail index` to have it checked"
            findings.append(Finding("index", verified, f"{index}: {detail}"))
        except InputDataError as error:
            findings.append(Finding("index", False, str(error)))
    return findings


def _require_sqlite(config: ServeConfig) -> None:
    if config.store != "sqlite":
        raise LongtailError(PG_DUMP_GUIDANCE)


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup of `source` into a new file renamed to `target`: consistent even while a server writes."""
    staging = target.with_name(f".{target.name}.copying")
    staging.unlink(missing_ok=True)
    try:
        with closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as reader, closing(sqlite3.connect(staging)) as writer:
            reader.backup(writer)
            # The copy is a plain rollback-journal file: one self-contained file to move around.
            writer.execute("PRAGMA journal_mode=DELETE")
            problem = writer.execute("PRAGMA integrity_check").fetchone()[0]
        if problem != "ok":
            raise StoreError(f"{source}: the copy failed SQLite's integrity check ({problem}); nothing was written to {target}")
        os.replace(staging, target)
    except sqlite3.Error as error:
        raise StoreError(f"{source}: cannot copy the event store ({error}); nothing was written to {target}") from None
    finally:
        staging.unlink(missing_ok=True)


def backup_store(data_dir: Path, config: LongtailConfig, target: Path) -> Path:
    """Copy the served SQLite store to `target` (a file, or a folder for a time-stamped one) with SQLite's online
    backup, safe while serving; the copy is checked."""
    _require_sqlite(config.serve)
    source = sqlite_path(config.serve, data_dir)
    if not source.exists():
        raise StoreError(f"{source}: no event store to back up")
    SqliteEventStore.check_file(source)
    if target.is_dir() or not target.suffix:  # a folder (made if need be) gets a time-stamped file
        target.mkdir(parents=True, exist_ok=True)
        target = target / f"longtail-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.db"
    _copy(source, target)
    SqliteEventStore.check_file(target)
    return target


def restore_store(data_dir: Path, config: LongtailConfig, source: Path, replace: bool = False) -> Path | None:
    """Put a backup in place of the served SQLite store (the server must be stopped); returns where a replaced store was
    moved aside. A store already there is replaced only with `replace`, and is kept beside it, never deleted."""
    _require_sqlite(config.serve)
    target = sqlite_path(config.serve, data_dir)
    SqliteEventStore.check_file(source)
    moved = None
    if target.exists():
        if not replace:
            raise StoreError(f"{target}: a store is already there; stop the server and pass --replace to replace it (it is kept beside it)")
        moved = target.with_name(f"{target.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{target}{suffix}").exists():
                os.replace(f"{target}{suffix}", f"{moved}{suffix}")
    _copy(source, target)
    SqliteEventStore(target).close()  # opens, migrates an older backup to the current schema, checks every table
    return moved
