"""Query vectors for a server: a bounded LRU cache in front of one encoder, with concurrent misses encoded in one pass."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from longtail.core.batching import MicroBatcher
from longtail.core.lru import CacheStats, LruCache
from longtail.encode.encoder import TextEncoder, encode_queries


def query_key(text: str) -> str:
    """The cache key of a query: its words joined by single spaces (every tokenizer here splits on white space first)."""
    return " ".join(text.split())


class QueryVectorCache:
    """Wraps an encoder so `encode_queries` answers repeated queries from memory and batches concurrent new ones.

    A thread whose query is not cached waits up to `window_seconds` for other threads' queries and encodes them all in
    one forward pass (on two cores a batch of 16 short queries costs about three single ones); up to `concurrency`
    such passes run at once, so a batch need not wait for the one before it. `query_encoder`, when given, encodes
    the queries: the same model run another way (its vectors checked against the encoder's). Item texts (`encode`)
    go straight to the wrapped encoder. The cache belongs to one encoder object: an index served with another encoder
    gets another cache, so a vector is never reused across encoders."""

    def __init__(
        self,
        encoder: TextEncoder,
        capacity: int = 4096,
        window_seconds: float = 0.002,
        max_batch: int = 32,
        concurrency: int = 1,
        query_encoder: TextEncoder | None = None,
    ) -> None:
        self.encoder = encoder
        self.query_encoder = query_encoder or encoder  # the same model by another route (e.g. its ONNX copy)
        self.name = encoder.name
        self.dimension = encoder.dimension
        self._cache: LruCache[str, np.ndarray] = LruCache(capacity)
        self.batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(self._encode, window_seconds, max_batch, concurrency)

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        """Item texts: encoded by the wrapped encoder, never cached here."""
        return self.encoder.encode(texts, batch_size, show_progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors, from the cache where present, the rest encoded together with other threads' queries."""
        keys = [query_key(text) for text in texts]
        found = {key: vector for key in dict.fromkeys(keys) if (vector := self._cache.get(key)) is not None}
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        found.update(zip(missing, self.batcher.many(missing), strict=True))
        return np.stack([found[key] for key in keys]) if keys else np.zeros((0, self.dimension), dtype=np.float32)

    def _encode(self, keys: list[str]) -> list[np.ndarray]:
        """One forward pass over the distinct queries of a batch; each vector is cached and shared read-only."""
        unique = list(dict.fromkeys(keys))
        vectors = np.asarray(encode_queries(self.query_encoder, unique), dtype=np.float32)
        vectors.setflags(write=False)
        by_key = dict(zip(unique, vectors, strict=True))
        for key, vector in by_key.items():
            self._cache.put(key, vector)
        return [by_key[key] for key in keys]

    def clear(self) -> None:
        """Forget every cached vector."""
        self._cache.clear()

    def stats(self) -> CacheStats:
        """Hits, misses, vectors held and capacity."""
        return self._cache.stats()
