"""Model-backed services: hybrid search personalised by live profiles, live profiles updated by every event, vector similarity."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from longtail.core.config import LongtailConfig
from longtail.core.errors import UnknownIdError
from longtail.core.lru import CacheStats, LruCache
from longtail.data.schema import ITEMS
from longtail.encode.item_text import item_texts
from longtail.encode.query_cache import QueryVectorCache
from longtail.encode.query_onnx import minilm_inside, onnx_query_encoder
from longtail.profile.profiles import ProfileItem, UserProfile, build_profile, interest_vector, summarise, update
from longtail.search.engine import SearchEngine
from longtail.search.filters import SearchFilter
from longtail.search.recovery import search_with_recovery
from longtail.serve.catalogue import Catalogue
from longtail.serve.defaults import ITEM_SYNC_MARGIN, DefaultServices
from longtail.serve.events import StoredEvent, returned_event
from longtail.serve.recovery import recovery_fields
from longtail.serve.schemas import (
    ItemHit,
    ItemIn,
    Profile,
    ProfileDetail,
    Recommendations,
    SearchRequest,
    SearchResponse,
    Share,
    SimilarItems,
)
from longtail.serve.store import EventStore

RECENT_EVENTS = 20
# Columns of a posted item the engine indexes or shows; created_at is not one of them.
_INDEXED_COLUMNS = tuple(name for name in ITEMS.column_names if name != "created_at")


@dataclass
class _Live:
    """A cached profile and the largest store event id folded into it, so no event is counted twice."""

    profile: UserProfile
    last_event_id: int
    built_at: float


def items_frame(records: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Posted item records (ItemIn dumps or stored JSON) as a canonical items table the engine can index."""
    rows = []
    for record in records:
        row = {name: record.get(name) for name in _INDEXED_COLUMNS}
        if row["attributes"] is not None and not isinstance(row["attributes"], str):
            row["attributes"] = json.dumps(row["attributes"], ensure_ascii=False, sort_keys=True)
        rows.append(row)
    return pl.DataFrame(rows, schema={name: ITEMS.columns[name] for name in _INDEXED_COLUMNS})


def _record_key(record: Mapping[str, Any]) -> str:
    return json.dumps({name: record.get(name) for name in _INDEXED_COLUMNS}, sort_keys=True, default=str, ensure_ascii=False)


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers, so a stream of searches cannot starve it.
    Not re-entrant: a thread holding it must not ask for it again."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the lock shared with other readers."""
        with self._condition:
            while self._writing or self._writers_waiting:
                self._condition.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if not self._readers:
                    self._condition.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the lock alone."""
        with self._condition:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._condition.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


class ModelServices:
    """Search, similar items and profiles from a search index and profiles updated by every event; recommendations are
    the default services' (a recommender comes from a model folder: `longtail serve --model DIR`).

    Searches share the engine (a read lock: concurrent searches run side by side, so their query encodes can share one
    forward pass); adding items changes the BM25 and ANN structures in place and takes it alone. The profile cache has
    its own lock, so an event folded into a profile never waits for a search: a profile must not be rebuilt from the
    store while an event is being folded into it. Lock order: profiles, then engine.

    Non-personalised answers are cached by the whole request, invalidated whenever the catalogue changes; query vectors
    are cached by query text (they do not depend on the catalogue)."""

    def __init__(self, engine: SearchEngine, store: EventStore, fallback: DefaultServices, config: LongtailConfig) -> None:
        self.engine = engine
        self.store = store
        self.fallback = fallback
        self.settings = config.profile
        self._engine_lock = ReadWriteLock()
        self._profiles_lock = threading.Lock()
        self._sync_lock = threading.Lock()  # one thread at a time picks up what other processes changed
        serve = config.serve
        self._query_cache = (serve.query_cache_size, serve.batch_window_ms / 1000, serve.batches_at_once(serve.query_batch_concurrency))
        self._onnx_dir = config.serve.onnx_query_encoder_dir
        self.query_vectors = self._cache_queries(engine)
        self._results: LruCache[tuple[Any, ...], SearchResponse] = LruCache(config.serve.result_cache_size)
        self._catalogue_version = 0  # bumped by every change to the indexed items; part of each cached answer's key
        self._profiles: OrderedDict[str, _Live] = OrderedDict()
        self._versions: dict[str, str] = {}
        self._synced_at = datetime.now(UTC)
        # Read before the items: a change committed after this read shows as a new version at the next request.
        self._store_version = store.catalogue_version()
        self._add_records(store.items())

    def _cache_queries(self, engine: SearchEngine) -> QueryVectorCache:
        """Put a query-vector cache in front of the engine's encoder: the cache belongs to that encoder, so no vector
        crosses encoders when the engine is swapped. A MiniLM encoder's queries run on its ONNX copy when one can be made
        and agrees with torch (`serve.onnx_query_encoder_dir`)."""
        size, window, concurrency = self._query_cache
        minilm = minilm_inside(engine.encoder) if self._onnx_dir is not None else None
        query_encoder = onnx_query_encoder(minilm, self._onnx_dir) if minilm is not None and self._onnx_dir is not None else None
        cache = QueryVectorCache(engine.encoder, size, window, concurrency=concurrency, query_encoder=query_encoder)
        engine.encoder = cache
        return cache

    def swap_engine(self, engine: SearchEngine) -> None:
        """Serve searches from another index (a swapped model folder's), with the posted items added to it first; a
        search in flight finishes on the old one, the next starts on the new one, and none fails."""
        query_vectors = self._cache_queries(engine)
        records = self.store.items()
        versions = {record["item_id"]: _record_key(record) for record in records}
        if records:
            # The new engine is not shared yet: posted items are encoded and added without holding any lock.
            frame = items_frame(records)
            engine.add_items(frame, engine.encoder.encode(item_texts(frame)))
        # Live profiles hold item vectors of the old encoder: dropped, they are rebuilt from the store on next use.
        with self._profiles_lock, self._engine_lock.writing():
            self.engine, self.query_vectors, self._versions = engine, query_vectors, versions
            self._catalogue_version += 1
            self._results.clear()
            self._profiles.clear()

    # -- items ---------------------------------------------------------------------------------

    def _add_records(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Encode and index posted items whose content the engine does not have yet."""
        fresh = {record["item_id"]: record for record in records if self._versions.get(record["item_id"]) != _record_key(record)}
        if not fresh:
            return
        frame = items_frame(fresh.values())
        # Encoding is the slow part; it runs outside the lock so searches carry on meanwhile.
        vectors = self.engine.encoder.encode(item_texts(frame))
        with self._engine_lock.writing():
            self.engine.add_items(frame, vectors)
            self._versions.update({item_id: _record_key(record) for item_id, record in fresh.items()})
            self._catalogue_version += 1
            self._results.clear()

    def _catch_up(self) -> None:
        """Pick up what another server process changed in the shared store, checked at every request by one cheap read:
        items it was sent are indexed here too (and laid over the catalogue), and after an erasure the live profiles
        and the index's in-memory recent items of users without stored events are dropped."""
        version = self.store.catalogue_version()
        if version == self._store_version:
            return
        with self._sync_lock:
            seen = self._store_version
            if version == seen:
                return  # another request caught up meanwhile
            if version[2] != seen[2]:
                users = self.store.user_ids()
                with self._profiles_lock, self._engine_lock.writing():
                    self._profiles.clear()
                    # Memory only: the process that erased the user rewrote the index folder's copy.
                    self.engine.recent = self.engine.recent.filter(pl.col("user_id").is_in(users))
            if version[:2] != seen[:2]:
                synced_at = datetime.now(UTC)
                records = self.store.items(updated_since=self._synced_at - ITEM_SYNC_MARGIN)
                self._add_records(records)
                self.fallback.catalogue.upsert(records)
                self._synced_at = synced_at
            self._store_version = version

    def unknown_items(self, item_ids: Iterable[str]) -> list[str]:
        """Ids in neither the index nor the catalogue, after picking up items other processes were sent."""
        wanted = list(item_ids)
        if any(self.engine.row_of(item_id) is None for item_id in wanted):
            self._catch_up()
        return self.fallback.unknown_items(wanted)

    def upsert_items(self, items: Sequence[ItemIn]) -> None:
        """Encode the items and add them to the BM25 and ANN indexes: searchable and recommendable on return."""
        records = [item.model_dump() for item in items]
        self._add_records(records)
        self.fallback.upsert_items(items)

    def _hit(self, row: int, score: float) -> ItemHit:
        item = self.engine.items.row(row, named=True)
        return ItemHit(
            item_id=item["item_id"],
            title=item["title"],
            category=item.get("category"),
            brand=item.get("brand"),
            price=item.get("price"),
            score=round(float(score), 6),
        )

    def _profile_items(self, item_ids: Iterable[str | None]) -> dict[str, ProfileItem]:
        found = {}
        with self._engine_lock.reading():
            for item_id in {item_id for item_id in item_ids if item_id is not None}:
                row = self.engine.row_of(item_id)
                if row is not None:
                    item = self.engine.items.row(row, named=True)
                    found[item_id] = ProfileItem(item_id, self.engine.dense.vectors[row], item.get("category"), item.get("brand"), item.get("price"))
        return found

    # -- live profiles -------------------------------------------------------------------------

    def live_profile(self, user_id: str) -> UserProfile | None:
        """The user's profile: from the cache with the events stored since folded in (another server process may have
        taken them), else built from their latest events in the store (None: no events)."""
        with self._profiles_lock:
            self._expire()
            cached = self._profiles.get(user_id)
            if cached is not None:
                self._profiles.move_to_end(user_id)
                self._fold(cached, self.store.user_events_after(user_id, cached.last_event_id))
                return cached.profile
            events = self.store.user_events(user_id, self.settings.max_events)
            if not events:
                return None
            frame = pl.DataFrame(
                {"item_id": [e.item_id for e in events], "event_type": [e.event_type for e in events], "timestamp": [e.timestamp for e in events]},
                schema={"item_id": pl.String, "event_type": pl.String, "timestamp": pl.Datetime("us", "UTC")},
            )
            profile = build_profile(user_id, frame, self._profile_items(e.item_id for e in events), self.settings)
            self._profiles[user_id] = _Live(profile, max(e.id or 0 for e in events), time.monotonic())
            while len(self._profiles) > self.settings.cache_users:
                self._profiles.popitem(last=False)
            return profile

    def _expire(self) -> None:
        """Drop profiles older than profile.cache_seconds: another process may have added events or erased the user."""
        oldest = time.monotonic() - self.settings.cache_seconds
        for user_id in [user_id for user_id, live in self._profiles.items() if live.built_at < oldest]:
            del self._profiles[user_id]

    def cached_users(self) -> list[str]:
        """Users whose live profile is in memory."""
        with self._profiles_lock:
            return list(self._profiles)

    def observe(self, events: Sequence[StoredEvent]) -> None:
        """Fold just-committed events into the cached profiles of their users; others are built on first use."""
        by_user: dict[str, list[StoredEvent]] = defaultdict(list)
        for event in events:
            by_user[event.user_id].append(event)
        with self._profiles_lock:
            for user_id, batch in by_user.items():
                live = self._profiles.get(user_id)
                if live is not None:
                    self._fold(live, batch)

    def _fold(self, live: _Live, events: Sequence[StoredEvent]) -> None:
        """Fold a user's events into their cached profile, skipping those it already holds (profiles lock held)."""
        if not events:
            return
        items = self._profile_items(event.item_id for event in events)
        for event in events:
            # A profile built from the store after this event committed already holds it.
            if event.id is not None and event.id <= live.last_event_id:
                continue
            live.profile = update(live.profile, event, items.get(event.item_id) if event.item_id else None, self.settings)
            live.last_event_id = max(live.last_event_id, event.id or 0)

    def model_version(self) -> str | None:
        """None: no model folder is served."""
        return None

    def cache_stats(self) -> dict[str, CacheStats]:
        """The query-vector cache and the non-personalised answer cache."""
        return {"query_vectors": self.query_vectors.stats(), "search_results": self._results.stats()}

    def forget_user(self, user_id: str) -> None:
        """Drop the user's live profile and their recent items in the index (memory and folder)."""
        with self._profiles_lock, self._engine_lock.writing():
            self._profiles.pop(user_id, None)
            self.engine.forget_users([user_id])
        self.fallback.forget_user(user_id)

    # -- Services ------------------------------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        """The served catalogue (the items table with posted items laid over it)."""
        return self.fallback.catalogue

    def search(self, request: SearchRequest) -> SearchResponse:
        """Hybrid BM25 + dense search; with a user id, re-ranked by the user's live interest vector."""
        self._catch_up()
        profile = self.live_profile(request.user_id) if request.user_id else None
        vector = interest_vector(profile, self.settings.short_term_weight) if profile is not None else None
        search_filter = SearchFilter(request.category, request.brand, request.price_min, request.price_max)
        with self._engine_lock.reading():
            # A personalised answer depends on the live profile, which every event changes: only the others are cached.
            key = None if vector is not None else (self._catalogue_version, request.query, request.k, request.correct, search_filter)
            cached = self._results.get(key) if key is not None else None
            if cached is not None:
                return cached
            results, recovery = search_with_recovery(self.engine, request.query, request.k, search_filter, vector, request.correct)
            hits = [self._hit(hit.row, hit.score) for hit in results.hits]
        facets = {name: dict(counts) for name, counts in results.facets.items()}
        source = ("model:dense" if recovery.dense_only else "model:hybrid") + ("+profile" if results.personalised else "")
        response = SearchResponse(
            query=request.query, total=results.total, items=hits, facets=facets, source=source, **recovery_fields(request.query, recovery)
        )
        if key is not None:
            self._results.put(key, response)
        return response

    def recommend(self, user_id: str, k: int) -> Recommendations:
        """The default services' recommendations: a search index holds no recommender; serve a model folder
        (`longtail serve --model DIR`) for the evaluated one."""
        return self.fallback.recommend(user_id, k)

    def similar(self, item_id: str, k: int) -> SimilarItems:
        """The items whose text vectors are closest to this item's."""
        self._catch_up()
        with self._engine_lock.reading():
            row = self.engine.row_of(item_id)
            if row is None:
                if item_id in self.fallback.catalogue:
                    return self.fallback.similar(item_id, k)
                raise UnknownIdError(f"unknown item_id {item_id!r}")
            rows, scores = self.engine.nearest(self.engine.dense.vectors[row], k + 1)
            hits = [self._hit(other, score) for other, score in zip(rows.tolist(), scores.tolist(), strict=True) if other != row][:k]
        return SimilarItems(item_id=item_id, items=hits, source="model:item-vectors")

    def profile(self, user_id: str) -> Profile:
        """The live profile with its explanation, plus the user's latest stored events."""
        self._catch_up()
        profile = self.live_profile(user_id)
        if profile is None or profile.last_seen is None:
            raise UnknownIdError(f"no events for user_id {user_id!r}")
        summary = summarise(profile, self.settings)
        events = self.store.user_events(user_id, RECENT_EVENTS)
        detail = {key: value for key, value in asdict(summary).items() if key in ProfileDetail.model_fields}
        return Profile(
            user_id=user_id,
            event_count=self.store.count(user_id),
            last_seen=profile.last_seen,
            event_types=dict(profile.event_types),
            top_categories=[Share(name=a.name, share=a.affinity) for a in summary.categories],
            top_brands=[Share(name=a.name, share=a.affinity) for a in summary.brands],
            recent_events=[returned_event(e) for e in events],
            source="model:live-profile",
            detail=ProfileDetail.model_validate(detail),
        )
