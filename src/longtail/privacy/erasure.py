"""Erase one user from a set of tables, by raw or pseudonymised id, and say what was removed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from longtail.privacy.pseudonym import Pseudonymiser


@dataclass(frozen=True)
class Erasure:
    """The tables without the user's rows, and how many rows left each table."""

    tables: dict[str, pl.DataFrame]
    removed: dict[str, int]

    @property
    def total_removed(self) -> int:
        return sum(self.removed.values())


def erase_user(
    tables: Mapping[str, pl.DataFrame], user_id: str, pseudonymiser: Pseudonymiser | None = None, column: str = "user_id"
) -> Erasure:
    """Every table with the user's rows removed; with a pseudonymiser the raw id also matches its pseudonym."""
    # Tables may hold raw ids (before ingestion) or pseudonyms (after), so both spellings are erased.
    ids = [user_id] if pseudonymiser is None else [user_id, pseudonymiser.pseudonym(user_id)]
    kept: dict[str, pl.DataFrame] = {}
    removed: dict[str, int] = {}
    for name, table in tables.items():
        if column not in table.columns:
            kept[name], removed[name] = table, 0
            continue
        remaining = table.filter(~pl.col(column).cast(pl.String).is_in(ids).fill_null(False))
        kept[name], removed[name] = remaining, table.height - remaining.height
    return Erasure(kept, removed)
