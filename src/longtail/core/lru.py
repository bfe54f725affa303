"""A bounded, thread-safe least-recently-used cache that counts its hits and misses."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class CacheStats:
    """What a cache did since it was made: look-ups answered, look-ups missed, entries held, entries allowed."""

    hits: int
    misses: int
    size: int
    capacity: int


class LruCache(Generic[K, V]):
    """At most `capacity` entries; a look-up or store makes an entry the newest, a store past capacity drops the oldest.
    A capacity of 0 stores nothing (every look-up misses)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"a cache capacity cannot be negative (got {capacity})")
        self.capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = 0

    def get(self, key: K) -> V | None:
        """The value stored under `key` (now the newest entry), or None; counted as a hit or a miss."""
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: K, value: V) -> None:
        """Store a value, dropping the least recently used entries beyond capacity."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry (the counters stay: they describe the cache's whole life)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> CacheStats:
        """Hits, misses, entries held and capacity."""
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._entries), self.capacity)
