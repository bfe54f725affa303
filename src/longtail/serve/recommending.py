"""Recommendations and similar items from a model folder: the evaluated recommender's own methods on each user's live
sequence, and the folder reloaded, without dropping a request, when `longtail update` swaps it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from longtail.core.artifacts import load_json
from longtail.core.batching import MicroBatcher
from longtail.core.config import ServeConfig
from longtail.core.errors import LongtailError, UnknownIdError
from longtail.core.lru import CacheStats, LruCache
from longtail.models.fusion import FusionRanker
from longtail.pipeline.model_folder import FOLDER_FILE, ModelFolder, load_model_folder
from longtail.serve.catalogue import Catalogue
from longtail.serve.events import StoredEvent
from longtail.serve.schemas import ItemHit, ItemIn, Profile, Recommendations, SearchRequest, SearchResponse, SimilarItems
from longtail.serve.services import Services
from longtail.serve.store import EventStore

log = logging.getLogger("longtail.serve")
# A user's sequence is read from the store whole: SASRec reads its last max_len items, but the other sources and the
# "never recommend a history item" rule read all of it.
SEQUENCE_EVENTS = 5_000
COLD_SOURCE = "fallback:popularity (cold user: no event on an item the model knows)"


class ServedModel:
    """The model folder being served, swapped whole when the folder's version changes (checked every few seconds).

    A request takes `current` once and uses that object to the end, so a swap never mixes two versions in one answer
    and never fails a request: the new folder is loaded completely before the reference moves."""

    def __init__(self, directory: str | Path, reload_seconds: float, compute_threads: int = 0, compiled_dir: str | Path | None = None) -> None:
        self.directory = Path(directory)
        self.compute_threads = compute_threads
        self.compiled_dir = compiled_dir
        # Called with the folder's path after a new version loaded and before it is served, e.g. to switch search to
        # the folder's own index; an error there keeps the old version serving.
        self.on_reload: Callable[[Path], None] | None = None
        self.current: ModelFolder = self._load()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if reload_seconds > 0:
            self._watcher = threading.Thread(target=self._watch, args=(reload_seconds,), name="model-reload", daemon=True)
            self._watcher.start()

    def reload_if_changed(self) -> bool:
        """Load the folder again if its version changed; True when a new version is now served."""
        try:
            version = load_json(self.directory / FOLDER_FILE)["version"]
        except (OSError, ValueError, KeyError):
            return False  # mid-swap (the folder is renamed aside for an instant) or unreadable: keep serving the old one
        if version == self.current.version:
            return False
        try:
            fresh = self._load()
            if self.on_reload is not None:
                self.on_reload(self.directory)
        except (OSError, ValueError, LongtailError) as error:
            log.warning("model folder %s changed but could not be loaded (%s); still serving %s", self.directory, error, self.current.version)
            return False
        self.current = fresh
        log.info("now serving model %s from %s", fresh.version, self.directory)
        return True

    def _load(self) -> ModelFolder:
        """The folder as served: its fusion ranker's trees compiled to native code when `compiled_dir` is set (compiled
        once per model, off the request path), else scored with `compute_threads` LightGBM threads (0: one per core)."""
        folder = load_model_folder(self.directory)
        if isinstance(folder.recommender, FusionRanker):
            folder.recommender.predict_threads = self.compute_threads
            if self.compiled_dir is not None:
                folder.recommender.compile_booster(self.compiled_dir)
        return folder

    def _watch(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self.reload_if_changed()

    def close(self) -> None:
        """Stop watching the folder."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)


def _hit(catalogue: Catalogue, item_id: str, score: float) -> ItemHit | None:
    item = catalogue.get(item_id)
    if item is None:
        return None
    return ItemHit(item_id=item_id, title=item.title, category=item.category, brand=item.brand, price=item.price, score=round(float(score), 6))


Ranked = tuple[np.ndarray, np.ndarray]  # item indices best first, and their scores
_Ask = tuple[ModelFolder, np.ndarray, int]  # the folder answering, a user's sequence, k


def _recommend_together(asks: list[_Ask]) -> list[Ranked]:
    """Concurrent recommendation requests answered by one recommender call per (folder, k): the sources score the
    users as one matrix, as the offline evaluation does."""
    groups: dict[tuple[int, int], list[int]] = {}
    for position, (folder, _, k) in enumerate(asks):
        groups.setdefault((id(folder), k), []).append(position)
    answers: dict[int, Ranked] = {}
    for positions in groups.values():
        folder, _, k = asks[positions[0]]
        top, scores = folder.recommend([asks[position][1] for position in positions], k)
        answers.update((position, (top[row], scores[row])) for row, position in enumerate(positions))
    return [answers[position] for position in range(len(asks))]


class FolderServices:
    """Recommendations and similar items from a model folder; search, profiles and item and event handling from `base`.

    A user's sequence is every stored event on an item (posted since training included), oldest first, in the order the
    training split reads it (time, then arrival); items the model does not know are left out. A user with none of
    those gets the folder's popularity, and the answer's `source` says which path answered.

    Requests arriving together are scored in one recommender call, and answers are cached by (model version, k,
    sequence): a new event changes the sequence and a swapped folder the version, so a cached list is never stale."""

    def __init__(self, base: Services, model: ServedModel, store: EventStore, catalogue: Catalogue, settings: ServeConfig | None = None) -> None:
        settings = settings or ServeConfig()
        self.base = base
        self.model = model
        self.store = store
        self.catalogue = catalogue
        self._cache: LruCache[tuple[str, int, bytes], Ranked] = LruCache(settings.recommendation_cache_size)
        self._batcher: MicroBatcher[_Ask, Ranked] = MicroBatcher(
            _recommend_together, settings.batch_window_ms / 1000, concurrency=settings.batches_at_once(settings.recommend_batch_concurrency)
        )

    def model_version(self) -> str | None:
        """The version of the model folder answering now."""
        return self.model.current.version

    def cache_stats(self) -> dict[str, CacheStats]:
        """The base services' caches and the recommendation cache."""
        return {**self.base.cache_stats(), "recommendations": self._cache.stats()}

    def _hits(self, item_ids: Iterable[str], scores: Iterable[float], k: int) -> list[ItemHit]:
        hits = [hit for item_id, score in zip(item_ids, scores, strict=True) if (hit := _hit(self.catalogue, item_id, score)) is not None]
        return hits[:k]

    def recommend(self, user_id: str, k: int) -> Recommendations:
        """The folder's recommender on the user's live sequence (cold users: its popularity); never a history item."""
        folder = self.model.current
        events = reversed(self.store.user_events(user_id, SEQUENCE_EVENTS))
        sequence = folder.sequence([event.item_id for event in events if event.item_id is not None])
        if len(sequence):
            key = (folder.version, k, sequence.tobytes())
            ranked = self._cache.get(key)
            if ranked is None:
                ranked = self._batcher((folder, sequence, k))
                self._cache.put(key, ranked)
            (rows, values), source = ranked, f"model:{folder.name}"
        else:
            rows, values = folder.popular(k, sequence)
            source = COLD_SOURCE
        ids = [folder.item_ids[row] for row in rows.tolist()]
        return Recommendations(user_id=user_id, items=self._hits(ids, values.tolist(), k), source=source, model=folder.version)

    def similar(self, item_id: str, k: int) -> SimilarItems:
        """Nearest items by the folder's learned item vectors; an item posted after training falls back to `base`."""
        folder = self.model.current
        index = folder.index_of.get(item_id)
        if index is None:
            if item_id not in self.catalogue:
                raise UnknownIdError(f"unknown item_id {item_id!r}")
            return self.base.similar(item_id, k).model_copy(update={"model": folder.version})
        rows = folder.similar_items(index, k)
        ids = [folder.item_ids[row] for row in rows.tolist()]
        # Rank-based scores: the item vectors' cosine is not comparable across models, the order is what counts.
        return SimilarItems(
            item_id=item_id,
            items=self._hits(ids, [1.0 / (rank + 1) for rank in range(len(ids))], k),
            source=f"model:{folder.sequential.name}-item-vectors",
            model=folder.version,
        )

    def search(self, request: SearchRequest) -> SearchResponse:
        """Search as the base services do (the search index, when the folder or the server has one)."""
        return self.base.search(request)

    def profile(self, user_id: str) -> Profile:
        """The profile as the base services build it, with the folder's intent model's prediction when it has one."""
        profile = self.base.profile(user_id)
        folder = self.model.current
        if folder.intent is None:
            return profile
        recent = list(reversed(self.store.user_events(user_id, folder.intent.config.window + folder.intent.config.min_history + 1)))
        events = pl.DataFrame(
            [{"user_id": e.user_id, "item_id": e.item_id, "event_type": e.event_type, "timestamp": e.timestamp} for e in recent],
            schema={"user_id": pl.String, "item_id": pl.String, "event_type": pl.String, "timestamp": pl.Datetime("us", "UTC")},
        )
        prediction = folder.intent.predict_next(self._side_table(), events, folder.counts_by_id, datetime.now(UTC))
        return profile.model_copy(update={"intent_prediction": prediction or None})

    def _side_table(self) -> pl.DataFrame:
        """The catalogue's ids, categories and brands: what the intent features count over."""
        items = self.catalogue.snapshot().values()
        return pl.DataFrame(
            {"item_id": [i.item_id for i in items], "category": [i.category for i in items], "brand": [i.brand for i in items]},
            schema={"item_id": pl.String, "category": pl.String, "brand": pl.String},
        )

    def unknown_items(self, item_ids: Iterable[str]) -> list[str]:
        """Ids not in the catalogue."""
        return self.base.unknown_items(item_ids)

    def upsert_items(self, items: Sequence[ItemIn]) -> None:
        """Add items (searchable at once; the models learn them at the next `longtail update`)."""
        self.base.upsert_items(items)

    def observe(self, events: Sequence[StoredEvent]) -> None:
        """Let the base services fold the events into live profiles; recommendations read the store at each request."""
        self.base.observe(events)

    def forget_user(self, user_id: str) -> None:
        """Drop what the base services derived from the user; the models hold no per-user state."""
        self.base.forget_user(user_id)
