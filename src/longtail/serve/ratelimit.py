"""Token buckets (per API key, or per client address for failed keys): a burst allowance refilled at a steady rate, held
in a fixed-size table that one server process owns or that all of a server's processes share."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext
from typing import Any

import numpy as np

# Slots a key may land in: its hashed slot and the next ones. When all are taken by other keys, the one refilled longest
# ago is reused (that key starts again from a full burst), so a flood of client addresses cannot grow the table.
PROBES = 8
DEFAULT_SLOTS = 65_536


@dataclass
class BucketTable:
    """Buckets as three arrays (key digest, tokens, last refill time) and the lock that guards them. The arrays live in
    this process, or in shared memory made before the server's processes start (`shared`), so that a key's requests
    spend one bucket whichever process answers them."""

    digests: np.ndarray
    tokens: np.ndarray
    refilled: np.ndarray
    lock: Any
    # The shared-memory arrays behind the numpy views (None for a local table): what a process start hands over.
    raw: tuple[Any, Any, Any] | None = field(default=None, repr=False)

    @classmethod
    def local(cls, slots: int = DEFAULT_SLOTS) -> BucketTable:
        """A table for one process."""
        return cls(np.zeros(slots, np.int64), np.zeros(slots, np.float64), np.zeros(slots, np.float64), threading.Lock())

    @classmethod
    def shared(cls, context: SpawnContext, slots: int = DEFAULT_SLOTS) -> BucketTable:
        """A table in shared memory, to hand to processes started from `context` (it pickles to the same memory)."""
        return cls._over(context.RawArray("q", slots), context.RawArray("d", slots), context.RawArray("d", slots), context.Lock())

    @classmethod
    def _over(cls, digests: Any, tokens: Any, refilled: Any, lock: Any) -> BucketTable:
        return cls(np.frombuffer(digests, np.int64), np.frombuffer(tokens, np.float64), np.frombuffer(refilled, np.float64), lock, (digests, tokens, refilled))

    def __reduce__(self) -> tuple[Callable[..., BucketTable], tuple[Any, ...]]:
        if self.raw is None:
            raise TypeError("only a shared bucket table can be handed to another process")
        return BucketTable._over, (*self.raw, self.lock)

    def slot(self, key: str, now: float, burst: float) -> int:
        """The slot of `key`'s bucket, claimed (full) when the key has none; call with the lock held."""
        # A digest, not hash(): it must be the same in every process. 0 marks a free slot.
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little", signed=True) or 1
        slots = len(self.digests)
        candidates = [(int(digest) % slots + probe) % slots for probe in range(PROBES)]
        for index in candidates:
            if self.digests[index] == digest:
                return index
        free = [index for index in candidates if self.digests[index] == 0]
        index = free[0] if free else min(candidates, key=lambda i: self.refilled[i])
        self.digests[index], self.tokens[index], self.refilled[index] = digest, burst, now
        return index


@dataclass(frozen=True)
class LimitTables:
    """The API's two bucket tables: per API key, and per client address for requests with a failed key."""

    keys: BucketTable
    addresses: BucketTable

    @classmethod
    def local(cls) -> LimitTables:
        """Tables for one server process."""
        return cls(BucketTable.local(), BucketTable.local())

    @classmethod
    def shared(cls, context: SpawnContext) -> LimitTables:
        """Tables every process started from `context` shares, so a limit holds for the server as a whole."""
        return cls(BucketTable.shared(context), BucketTable.shared(context))


class RateLimiter:
    """One token bucket per key; a request spends a token or is told how long to wait."""

    def __init__(self, rate_per_second: float, burst: int, clock: Callable[[], float] = time.monotonic, table: BucketTable | None = None) -> None:
        self.rate = rate_per_second
        self.burst = float(burst)
        # time.monotonic reads one system-wide clock, so processes sharing a table agree on refill times.
        self._clock = clock
        self._table = table or BucketTable.local()

    def _refill(self, key: str, now: float) -> tuple[int, float]:
        index = self._table.slot(key, now, self.burst)
        elapsed = max(0.0, now - float(self._table.refilled[index]))
        return index, min(self.burst, float(self._table.tokens[index]) + elapsed * self.rate)

    def wait(self, key: str) -> float:
        """Seconds until the bucket holds a token again (0.0 when it has one), spending nothing."""
        with self._table.lock:
            _, tokens = self._refill(key, self._clock())
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def acquire(self, key: str) -> float:
        """Spend one token; return 0.0 when allowed, else the seconds until a token is available."""
        with self._table.lock:
            now = self._clock()
            index, tokens = self._refill(key, now)
            allowed = tokens >= 1.0
            self._table.tokens[index] = tokens - 1.0 if allowed else tokens
            self._table.refilled[index] = now
            return 0.0 if allowed else (1.0 - tokens) / self.rate
