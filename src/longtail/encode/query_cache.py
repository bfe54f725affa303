"""Query vectors for a server: a bounded LRU cache in front of one encoder, with concurrent misses encoded in one pass."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np

from longtail.core.lru import CacheStats, LruCache
from longtail.encode.encoder import TextEncoder, encode_queries


def query_key(text: str) -> str:
    """The cache key of a query: its words joined by single spaces (every tokenizer here splits on white space first)."""
    return " ".join(text.split())


class QueryVectorCache:
    """Wraps an encoder so `encode_queries` answers repeated queries from memory and batches concurrent new ones.

    A thread whose query is not cached waits up to `window_seconds` for other threads' queries and encodes them all in
    one forward pass (on two cores a batch of 16 short queries costs about three single ones). Item texts (`encode`)
    go straight to the wrapped encoder. The cache belongs to one encoder object: an index served with another encoder
    gets another cache, so a vector is never reused across encoders."""

    def __init__(self, encoder: TextEncoder, capacity: int = 4096, window_seconds: float = 0.002, max_batch: int = 32) -> None:
        self.encoder = encoder
        self.name = encoder.name
        self.dimension = encoder.dimension
        self.window_seconds = window_seconds
        self.max_batch = max_batch
        self.batches = 0  # forward passes run for queries
        self._cache: LruCache[str, np.ndarray] = LruCache(capacity)
        self._lock = threading.Lock()
        self._pending: dict[str, Future[np.ndarray]] = {}
        self._queue: list[str] = []
        self._encoding = False  # a thread is collecting and encoding the queue

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        """Item texts: encoded by the wrapped encoder, never cached here."""
        return self.encoder.encode(texts, batch_size, show_progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors, from the cache where present, the rest encoded together with other threads' queries."""
        keys = [query_key(text) for text in texts]
        found: dict[str, np.ndarray] = {}
        waiting: dict[str, Future[np.ndarray]] = {}
        lead = False
        with self._lock:
            for key in dict.fromkeys(keys):
                vector = self._cache.get(key)
                if vector is not None:
                    found[key] = vector
                    continue
                future = self._pending.get(key)
                if future is None:  # nobody is encoding this query yet
                    future = self._pending[key] = Future()
                    self._queue.append(key)
                waiting[key] = future
            if waiting and not self._encoding:
                self._encoding = lead = True
        if lead:
            self._drain()
        found.update({key: future.result() for key, future in waiting.items()})
        return np.stack([found[key] for key in keys]) if keys else np.zeros((0, self.dimension), dtype=np.float32)

    def _drain(self) -> None:
        """Encode queued queries a batch at a time until the queue is empty; the first batch waits for company."""
        time.sleep(self.window_seconds)
        while True:
            with self._lock:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                if not batch:
                    self._encoding = False
                    return
            try:
                vectors = np.asarray(encode_queries(self.encoder, batch), dtype=np.float32)
            except Exception as error:  # every waiting thread sees the error; queries queued meanwhile still get encoded
                with self._lock:
                    for key in batch:
                        self._pending.pop(key).set_exception(error)
                continue
            with self._lock:
                self.batches += 1
                for key, vector in zip(batch, vectors, strict=True):
                    vector.setflags(write=False)  # one array is shared by every request for this query
                    self._cache.put(key, vector)
                    self._pending.pop(key).set_result(vector)

    def clear(self) -> None:
        """Forget every cached vector."""
        self._cache.clear()

    def stats(self) -> CacheStats:
        """Hits, misses (queries encoded or joined to a pass already under way), vectors held and capacity."""
        return self._cache.stats()
