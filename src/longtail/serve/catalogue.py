"""The served item catalogue in memory: loaded from a canonical items table, updated by posted items."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl


@dataclass(frozen=True)
class CatalogueItem:
    """The fields the default services search, rank and display."""

    item_id: str
    title: str
    category: str | None
    brand: str | None
    price: float | None
    description: str | None


def _item(record: Mapping[str, Any]) -> CatalogueItem:
    title = str(record.get("title") or "")
    category, brand = record.get("category"), record.get("brand")
    price = record.get("price")
    return CatalogueItem(
        item_id=str(record["item_id"]),
        title=title,
        category=category,
        brand=brand,
        price=None if price is None else float(price),
        description=record.get("description"),
    )


class Catalogue:
    """Items by id; readers see a consistent snapshot while posted items are swapped in."""

    def __init__(self, records: Iterable[Mapping[str, Any]] = ()) -> None:
        self._items: dict[str, CatalogueItem] = {}
        self._lock = threading.Lock()
        self.upsert(records)

    @classmethod
    def from_table(cls, items: pl.DataFrame) -> Catalogue:
        """Build from a canonical items table (extra columns are ignored)."""
        wanted = [name for name in ("item_id", "title", "category", "brand", "price", "description") if name in items.columns]
        return cls(items.select(wanted).filter(pl.col("item_id").is_not_null() & pl.col("title").is_not_null()).iter_rows(named=True))

    def upsert(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Add or replace items; copy-on-write so searches running meanwhile never see a half-updated dict."""
        with self._lock:
            updated = dict(self._items)
            for record in records:
                item = _item(record)
                updated[item.item_id] = item
            self._items = updated

    def get(self, item_id: str) -> CatalogueItem | None:
        """The item with this id, if any."""
        return self._items.get(item_id)

    def snapshot(self) -> dict[str, CatalogueItem]:
        """The current items; safe to iterate while others upsert."""
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items
