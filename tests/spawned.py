"""Targets for tests that start processes with `spawn`: a child imports its target's module by name, so these live in a
module that imports nothing from the test tree (a test module's own imports may resolve differently in the child)."""

from __future__ import annotations

from typing import Any

from longtail.serve.ratelimit import BucketTable, RateLimiter


def spend_tokens(table: BucketTable, tries: int, allowed: Any) -> None:
    """Spend `tries` tokens of key "k" (burst 10, refilling too slowly to matter) and add the number allowed to `allowed`."""
    limiter = RateLimiter(rate_per_second=1e-6, burst=10, table=table)
    granted = sum(limiter.acquire("k") == 0.0 for _ in range(tries))
    with allowed.get_lock():
        allowed.value += granted
