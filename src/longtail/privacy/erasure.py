"""Erase one user from a set of tables (by raw or pseudonymised id, saying what was removed) and from report files."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from longtail.core.errors import PrivacyError
from longtail.privacy.pseudonym import Pseudonymiser


@dataclass(frozen=True)
class Erasure:
    """The tables without the user's rows, and how many rows left each table."""

    tables: dict[str, pl.DataFrame]
    removed: dict[str, int]

    @property
    def total_removed(self) -> int:
        return sum(self.removed.values())


def erase_user(tables: Mapping[str, pl.DataFrame], user_id: str, pseudonymiser: Pseudonymiser | None = None, column: str = "user_id") -> Erasure:
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


ERASED = "[erased]"
REPORT_FILES = ("report.json", "report.html")
# Characters that may sit inside an id: a match must not be part of a longer id ("u1" inside "u12").
_ID_CHARACTER = r"[0-9A-Za-z_\-]"


def _id_pattern(spellings: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(spelling) for spelling in sorted(set(spellings), key=len, reverse=True) if spelling)
    return re.compile(f"(?<!{_ID_CHARACTER})(?:{alternatives})(?!{_ID_CHARACTER})")


def _scrub_json(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(ERASED, value)
    if isinstance(value, list):
        return [_scrub_json(item, pattern) for item in value]
    if isinstance(value, dict):
        return {pattern.sub(ERASED, key): _scrub_json(item, pattern) for key, item in value.items()}
    return value


def scrub_reports(folder: str | Path, user_ids: Sequence[str]) -> list[Path]:
    """Replace a user's ids with "[erased]" in every report.json / report.html under a folder; return the files changed.

    Reports (e.g. an audit's examples of quarantined rows) are derived data that a served folder keeps beside its
    tables, so an erasure must reach them too. Each file is rewritten atomically."""
    pattern = _id_pattern(user_ids)
    changed = []
    for root, _, names in os.walk(folder):
        for name in set(names) & set(REPORT_FILES):
            path = Path(root) / name
            try:
                text = path.read_text(encoding="utf-8")
                if name.endswith(".json"):
                    report = json.loads(text)
                    kept = _scrub_json(report, pattern)
                    scrubbed = text if kept == report else json.dumps(kept, indent=2, ensure_ascii=False)
                else:
                    # The page shows ids HTML-escaped ('&' as '&amp;'); match them as written there.
                    scrubbed = _id_pattern([html.escape(spelling) for spelling in user_ids]).sub(ERASED, text)
                if scrubbed != text:
                    staging = path.with_name(f".{name}.erasing")
                    staging.write_text(scrubbed, encoding="utf-8")
                    os.replace(staging, path)
                    changed.append(path)
            except (OSError, ValueError) as error:  # unreadable, not UTF-8, not JSON, or not writable
                raise PrivacyError(f"{path}: cannot remove the erased user's ids from this report ({error}); fix or delete it, then erase again") from None
    return changed
