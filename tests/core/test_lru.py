"""The bounded LRU cache: what it keeps, what it drops, what it counts."""

from __future__ import annotations

import pytest

from longtail.core.lru import CacheStats, LruCache


def test_lru_drops_the_least_recently_used_entry_and_counts_lookups() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the newest, so "b" goes first
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    assert cache.stats() == CacheStats(hits=3, misses=1, size=2, capacity=2)


def test_lru_of_capacity_zero_keeps_nothing_and_clear_keeps_the_counters() -> None:
    empty: LruCache[str, int] = LruCache(0)
    empty.put("a", 1)
    assert empty.get("a") is None and len(empty) == 0
    cache: LruCache[str, int] = LruCache(4)
    cache.put("a", 1)
    cache.get("a")
    cache.clear()
    assert cache.get("a") is None
    assert cache.stats() == CacheStats(hits=1, misses=1, size=0, capacity=4)


def test_lru_refuses_a_negative_capacity() -> None:
    with pytest.raises(ValueError, match="negative"):
        LruCache(-1)
