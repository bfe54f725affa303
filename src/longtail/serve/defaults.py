"""Model-free services so the API is useful without an index or a model folder: BM25 over item text (the search
package's lexical index, built in memory), popularity, recent events."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from longtail.core.errors import UnknownIdError
from longtail.core.lru import CacheStats
from longtail.search.lexical import LexicalIndex
from longtail.serve.catalogue import Catalogue, CatalogueItem
from longtail.serve.events import StoredEvent, returned_event
from longtail.serve.schemas import (
    ItemHit,
    ItemIn,
    Profile,
    Recommendations,
    SearchRequest,
    SearchResponse,
    Share,
    SimilarItems,
)
from longtail.serve.store import EventStore

PROFILE_EVENTS = 500
FACET_VALUES = 20
# Items are re-read from a little before the last sync: a clock a bit behind on another server, or a
# transaction that committed just after we looked, must not hide an item for good. Re-applying is harmless.
ITEM_SYNC_MARGIN = timedelta(seconds=60)


def _hit(item: CatalogueItem, score: float) -> ItemHit:
    return ItemHit(item_id=item.item_id, title=item.title, category=item.category, brand=item.brand, price=item.price, score=round(score, 6))


class DefaultServices:
    """Search by query terms found in item text, recommend by popularity within a user's categories, profile from recent events."""

    def __init__(self, store: EventStore, catalogue: Catalogue, popularity_refresh_seconds: float = 10.0) -> None:
        """`catalogue` must already hold the store's posted items; later ones are picked up at each refresh."""
        self.store = store
        self.catalogue = catalogue
        self.refresh_seconds = popularity_refresh_seconds
        # One tuple swapped in whole, so a reader never pairs new counts with an old ranking.
        self._ranking: tuple[dict[str, int], list[str]] = ({}, [])
        self._refreshed_at = float("-inf")
        self._refresh_lock = threading.Lock()
        self._items_synced_at = datetime.now(UTC)
        self._items_version = (-1, -1)  # unknown: the first request re-reads the items posted lately
        # BM25 over the catalogue, built at the first search; rows are appended as items are added or changed.
        self._lexical: LexicalIndex | None = None
        self._lexical_lock = threading.Lock()
        self._indexed: dict[str, CatalogueItem] = {}
        self._row_items: list[str] = []
        self._row_of: dict[str, int] = {}

    # -- popularity and items posted to other processes -----------------------------------------

    def popularity(self) -> tuple[dict[str, int], list[str]]:
        """Event counts per item and the catalogue items ranked by them, refreshed every few seconds; items another server
        process was sent are laid over the catalogue at the first request after (one cheap store read tells)."""
        version = self.store.catalogue_version()[:2]
        if version != self._items_version:
            with self._refresh_lock:
                self._sync_items()
                self._items_version = version
        # A GROUP BY over every event per request would dominate latency; a ranking a few seconds old is fine.
        if time.monotonic() - self._refreshed_at > self.refresh_seconds and self._refresh_lock.acquire(blocking=False):
            try:
                counts = dict(self.store.popular_items(max(len(self.catalogue), 1) * 2))
                self._ranking = (counts, [item_id for item_id in counts if item_id in self.catalogue])
                self._refreshed_at = time.monotonic()
            finally:
                self._refresh_lock.release()
        return self._ranking

    def _sync_items(self) -> None:
        """Lay items posted since the last sync (to this or another process) over the catalogue."""
        synced_at = datetime.now(UTC)
        self.catalogue.upsert(self.store.items(updated_since=self._items_synced_at - ITEM_SYNC_MARGIN))
        self._items_synced_at = synced_at

    def _fill(self, chosen: list[str], exclude: set[str], k: int) -> list[str]:
        """Top up a list with the most popular items, then any catalogue items, skipping excluded ones."""
        _, ranked = self.popularity()
        taken = set(chosen) | exclude
        for item_id in (*ranked, *self.catalogue.snapshot()):
            if len(chosen) >= k:
                break
            if item_id not in taken:
                chosen.append(item_id)
                taken.add(item_id)
        return chosen

    def _hits(self, item_ids: Iterable[str]) -> list[ItemHit]:
        popularity, _ = self.popularity()
        hits = []
        for item_id in item_ids:
            item = self.catalogue.get(item_id)
            if item is not None:
                hits.append(_hit(item, float(popularity.get(item_id, 0))))
        return hits

    # -- Services ------------------------------------------------------------------------------

    def _sync_lexical(self, snapshot: dict[str, CatalogueItem]) -> LexicalIndex:
        """The lexical index over `snapshot`: items added or changed since the last search are indexed first (lock held)."""
        if snapshot is not self._indexed or self._lexical is None:
            # The catalogue swaps in a new dict (and new item objects) on every upsert, so identity finds what changed.
            fresh = [item for item_id, item in snapshot.items() if self._indexed.get(item_id) is not item]
            texts = [" ".join(str(part) for part in (item.title, item.category, item.brand, item.description) if part) for item in fresh]
            if self._lexical is None:
                self._lexical = LexicalIndex.build(texts)
            elif fresh:
                self._lexical.add(texts, len(self._row_items))
            for item in fresh:
                self._row_of[item.item_id] = len(self._row_items)
                self._row_items.append(item.item_id)
            self._indexed = snapshot
        return self._lexical

    def search(self, request: SearchRequest) -> SearchResponse:
        """BM25 over title, category, brand and description (`search/lexical.py`, typo-tolerant), then the filters; ties by popularity."""
        popularity, _ = self.popularity()
        with self._lexical_lock:
            snapshot = self.catalogue.snapshot()
            rows, scores = self._matches(self._sync_lexical(snapshot), snapshot, request)
            row_items = self._row_items
        matches = [
            (float(score), popularity.get(row_items[row], 0), snapshot[row_items[row]]) for row, score in zip(rows.tolist(), scores.tolist(), strict=True)
        ]
        matches.sort(key=lambda match: (-match[0], -match[1], match[2].item_id))
        facets = {
            "category": dict(Counter(m[2].category for m in matches if m[2].category).most_common(FACET_VALUES)),
            "brand": dict(Counter(m[2].brand for m in matches if m[2].brand).most_common(FACET_VALUES)),
        }
        hits = [_hit(item, score) for score, _, item in matches[: request.k]]
        return SearchResponse(query=request.query, total=len(matches), items=hits, facets=facets, source="default:bm25")

    def _matches(self, lexical: LexicalIndex, snapshot: dict[str, CatalogueItem], request: SearchRequest) -> tuple[np.ndarray, np.ndarray]:
        """Every row matching the query and passing the request's filters, with its BM25 score (lock held)."""
        category = request.category.lower() if request.category else None
        brand = request.brand.lower() if request.brand else None
        allowed = np.zeros(len(self._row_items), dtype=bool)
        for row, item_id in enumerate(self._row_items):
            item = snapshot.get(item_id)
            # A changed item was indexed again under a new row: only its latest row may match.
            if item is None or self._row_of.get(item_id) != row:
                continue
            if category is not None and (item.category is None or category not in item.category.lower()):
                continue
            if brand is not None and (item.brand is None or item.brand.lower() != brand):
                continue
            if request.price_min is not None and (item.price is None or item.price < request.price_min):
                continue
            if request.price_max is not None and (item.price is None or item.price > request.price_max):
                continue
            allowed[row] = True
        return lexical.search(request.query, max(int(allowed.sum()), 1), allowed)

    def recommend(self, user_id: str, k: int) -> Recommendations:
        """Popular items in the user's most frequent categories, then popular items overall; never ones already seen."""
        events = self.store.user_events(user_id, PROFILE_EVENTS)
        seen = {event.item_id for event in events if event.item_id}
        categories = Counter(item.category for item in map(self.catalogue.get, seen) if item is not None and item.category)
        favourite = {name for name, _ in categories.most_common(3)}
        _, ranked = self.popularity()
        chosen: list[str] = []
        for item_id in ranked:
            if len(chosen) >= k:
                break
            item = self.catalogue.get(item_id)
            if item_id not in seen and item is not None and item.category in favourite:
                chosen.append(item_id)
        source = "default:category-popularity" if chosen else "default:popularity"
        return Recommendations(user_id=user_id, items=self._hits(self._fill(chosen, seen, k)), source=source)

    def similar(self, item_id: str, k: int) -> SimilarItems:
        """Popular items of the same category, then of the same brand, then popular overall."""
        item = self.catalogue.get(item_id)
        if item is None:
            raise UnknownIdError(f"unknown item_id {item_id!r}")
        _, ranked = self.popularity()
        same_category = [other for other in ranked if other != item_id and item.category and self._field(other, "category") == item.category]
        same_brand = [other for other in ranked if other != item_id and item.brand and self._field(other, "brand") == item.brand]
        chosen = list(dict.fromkeys([*same_category, *same_brand]))[:k]
        return SimilarItems(item_id=item_id, items=self._hits(self._fill(chosen, {item_id}, k)), source="default:category-popularity")

    def _field(self, item_id: str, name: str) -> str | None:
        item = self.catalogue.get(item_id)
        return None if item is None else getattr(item, name)

    def profile(self, user_id: str) -> Profile:
        """Counts by event type, category and brand shares, and the most recent events."""
        events = self.store.user_events(user_id, PROFILE_EVENTS)
        if not events:
            raise UnknownIdError(f"no events for user_id {user_id!r}")
        items = [self.catalogue.get(event.item_id) for event in events if event.item_id]
        known = [item for item in items if item is not None]
        return Profile(
            user_id=user_id,
            event_count=self.store.count(user_id),
            last_seen=events[0].timestamp,
            event_types=dict(Counter(event.event_type for event in events)),
            top_categories=_shares([item.category for item in known if item.category]),
            top_brands=_shares([item.brand for item in known if item.brand]),
            recent_events=[returned_event(e) for e in events[:20]],
            source=f"default:last-{PROFILE_EVENTS}-events",
        )

    def unknown_items(self, item_ids: Iterable[str]) -> list[str]:
        """Ids not in the catalogue, after checking the store for items another process was just sent."""
        unknown = {item_id for item_id in item_ids if item_id not in self.catalogue}
        if unknown:
            self._sync_items()
            unknown = {item_id for item_id in unknown if item_id not in self.catalogue}
        return sorted(unknown)

    def upsert_items(self, items: Sequence[ItemIn]) -> None:
        """Swap the items into the catalogue; the next search sees them."""
        self.catalogue.upsert(item.model_dump() for item in items)

    def observe(self, events: Sequence[StoredEvent]) -> None:
        """Nothing to do: profiles and recommendations read the store, so committed events count at once."""

    def model_version(self) -> str | None:
        """None: no model folder is served."""
        return None

    def cache_stats(self) -> dict[str, CacheStats]:
        """None: these services answer from the store and the catalogue each time."""
        return {}

    def forget_user(self, user_id: str) -> None:
        """Nothing to do: this service keeps no per-user state outside the store."""


def _shares(values: list[str], top: int = 5) -> list[Share]:
    total = len(values)
    return [Share(name=name, share=round(count / total, 4)) for name, count in Counter(values).most_common(top)] if total else []
