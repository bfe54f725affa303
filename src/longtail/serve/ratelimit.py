"""Token buckets, in process (per API key, or per client address for failed keys): a burst allowance refilled at a steady rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """One token bucket per API key; a request spends a token or is told how long to wait."""

    def __init__(self, rate_per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_second
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        """Seconds until the bucket holds a token again (0.0 when it has one), spending nothing."""
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, self._clock()))
            tokens = min(self.burst, tokens + (self._clock() - last) * self.rate)
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def acquire(self, key: str) -> float:
        """Spend one token; return 0.0 when allowed, else the seconds until a token is available."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
